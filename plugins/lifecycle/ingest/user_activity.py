"""Kinesis `user-activity` → raw zone in the Firehose layout, with KCL-style checkpoints.

Input: ``Settings`` (the stream, the DynamoDB checkpoint table, the raw bucket).
Output: one object per shard batch at
``events/YYYY/MM/DD/HH/user-activity-1-YYYY-MM-DD-HH-MM-SS-<shardId>-<firstSeq>``
(arrival time of the batch's first record; newline-delimited payloads), and the shard's
checkpoint (last sequence number written) in the lease table. Returns counts per shard.

Exactly once into the lake: the object key is derived from the shard and the first
sequence number after the checkpoint, the object is written first, and the checkpoint is
moved after (a conditional write, so two concurrent consumers cannot both move it). A crash
in between rereads the same records from the same checkpoint and overwrites the same key.
Parent shards (after a split or merge) are drained before their children.
"""

from __future__ import annotations

import time

from lifecycle.clients import aws
from lifecycle.settings import Settings

MAX_RECORDS_PER_SHARD_BATCH = 10_000


def _lease_key(settings: Settings, shard_id: str) -> str:
    return f"{settings.stream_name}:{shard_id}"


def get_checkpoint(settings: Settings, shard_id: str) -> str | None:
    ddb = aws(settings, "dynamodb")
    item = ddb.get_item(TableName=settings.checkpoint_table,
                        Key={"lease_key": {"S": _lease_key(settings, shard_id)}},
                        ConsistentRead=True).get("Item")
    return item["checkpoint"]["S"] if item and "checkpoint" in item else None


def _set_checkpoint(settings: Settings, shard_id: str, previous: str | None, new: str,
                    shard_closed: bool) -> None:
    ddb = aws(settings, "dynamodb")
    kwargs = {}
    if previous is None:
        kwargs["ConditionExpression"] = "attribute_not_exists(checkpoint)"
    else:
        kwargs["ConditionExpression"] = "checkpoint = :prev"
        kwargs["ExpressionAttributeValues"] = {":prev": {"S": previous}}
    ddb.put_item(
        TableName=settings.checkpoint_table,
        Item={"lease_key": {"S": _lease_key(settings, shard_id)}, "checkpoint": {"S": new},
              "shard_end": {"BOOL": shard_closed}},
        **kwargs,
    )


def _ordered_shards(shards: list[dict]) -> list[dict]:
    """Parents before children (KCL's rule after resharding)."""
    by_id = {s["ShardId"]: s for s in shards}
    ordered, seen = [], set()

    def visit(s):
        if s["ShardId"] in seen:
            return
        for parent in (s.get("ParentShardId"), s.get("AdjacentParentShardId")):
            if parent in by_id:
                visit(by_id[parent])
        seen.add(s["ShardId"])
        ordered.append(s)

    for s in sorted(shards, key=lambda s: s["ShardId"]):
        visit(s)
    return ordered


def _read_shard(kinesis, stream: str, shard_id: str, after: str | None, limit: int):
    kwargs = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
              if after else {"ShardIteratorType": "TRIM_HORIZON"})
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, **kwargs)["ShardIterator"]
    records: list[dict] = []
    closed = False
    backoff = 0.2
    while iterator and len(records) < limit:
        try:
            resp = kinesis.get_records(ShardIterator=iterator, Limit=min(10_000, limit - len(records)))
        except kinesis.exceptions.ProvisionedThroughputExceededException:
            time.sleep(backoff)
            backoff = min(backoff * 2, 5)
            continue
        except kinesis.exceptions.ExpiredIteratorException:
            last = records[-1]["SequenceNumber"] if records else after
            kwargs = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": last}
                      if last else {"ShardIteratorType": "TRIM_HORIZON"})
            iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, **kwargs)["ShardIterator"]
            continue
        records.extend(resp["Records"])
        iterator = resp.get("NextShardIterator")
        if iterator is None:
            closed = True
        if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
            break
    return records[:limit], closed


def object_key(stream: str, shard_id: str, first: dict) -> str:
    ts = first["ApproximateArrivalTimestamp"]
    return (f"events/{ts:%Y/%m/%d/%H}/{stream}-1-{ts:%Y-%m-%d-%H-%M-%S}-"
            f"{shard_id}-{first['SequenceNumber']}")


def run(settings: Settings, max_records: int = MAX_RECORDS_PER_SHARD_BATCH) -> dict:
    kinesis, s3 = aws(settings, "kinesis"), aws(settings, "s3")
    stream, bucket = settings.stream_name, settings.bucket("raw")
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    per_shard: dict[str, int] = {}
    keys: list[str] = []
    for shard in _ordered_shards(shards):
        sid = shard["ShardId"]
        total = 0
        while True:
            checkpoint = get_checkpoint(settings, sid)
            records, closed = _read_shard(kinesis, stream, sid, checkpoint, max_records)
            if not records:
                break
            body = b"".join(r["Data"] if r["Data"].endswith(b"\n") else r["Data"] + b"\n" for r in records)
            key = object_key(stream, sid, records[0])
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")
            _set_checkpoint(settings, sid, checkpoint, records[-1]["SequenceNumber"], closed)
            keys.append(key)
            total += len(records)
            if len(records) < max_records:
                break
        per_shard[sid] = total
    return {"records": sum(per_shard.values()), "per_shard": per_shard, "objects": keys,
            "rows_out": sum(per_shard.values()), "files_written": len(keys)}
