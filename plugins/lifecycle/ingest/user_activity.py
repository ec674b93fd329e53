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

Firehose options: ``LIFECYCLE_FIREHOSE_COMPRESSION=gzip`` writes ``<key>.gz`` (GZIP, as
Firehose's ``CompressionFormat=GZIP``). A record that cannot be framed as one line of text
(not UTF-8, or with a line break inside) would corrupt the newline-delimited object, so it
goes to the error prefix ``events-errors/processing-failed/YYYY/MM/DD/HH/`` in Firehose's
error-record format (``errorCode``, ``errorMessage``, base64 ``rawData``), never dropped.
"""

from __future__ import annotations

import base64
import gzip
import json
import time

from lifecycle import faults
from lifecycle.clients import aws
from lifecycle.ingest.shards import parents_first
from lifecycle.settings import Settings

MAX_RECORDS_PER_SHARD_BATCH = 10_000


def _lease_key(settings: Settings, shard_id: str) -> str:
    return f"{settings.names.stream}:{shard_id}"


def get_checkpoint(settings: Settings, shard_id: str) -> str | None:
    ddb = aws(settings, "dynamodb")
    item = ddb.get_item(TableName=settings.names.checkpoint_table,
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
        TableName=settings.names.checkpoint_table,
        Item={"lease_key": {"S": _lease_key(settings, shard_id)}, "checkpoint": {"S": new},
              "shard_end": {"BOOL": shard_closed}},
        **kwargs,
    )



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


def error_key(key: str) -> str:
    return "events-errors/processing-failed/" + key.split("/", 1)[1]


def _encode(body: bytes, settings: Settings) -> bytes:
    # mtime=0: the same records give the same bytes, so a rerun rewrites an identical object
    return gzip.compress(body, mtime=0) if settings.engines.firehose_compression == "gzip" else body


def frame_records(records: list[dict]) -> tuple[list[bytes], list[bytes]]:
    """Records as lines of the delivery object, and error records for those that cannot be."""
    lines, errors = [], []
    for r in records:
        data = r["Data"].rstrip(b"\r\n")  # a trailing line break is framing, not content
        problem = None
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            problem = ("Record.NotUtf8", "the record is not UTF-8 text")
        if problem is None and (b"\n" in data or b"\r" in data):
            problem = ("Record.NotSingleLine", "the record contains a line break")
        if problem:
            ts = int(r["ApproximateArrivalTimestamp"].timestamp() * 1000)
            errors.append(json.dumps({
                "attemptsMade": 1, "arrivalTimestamp": ts, "attemptEndingTimestamp": ts,
                "errorCode": problem[0], "errorMessage": problem[1],
                "sequenceNumber": r["SequenceNumber"], "rawData": base64.b64encode(r["Data"]).decode(),
            }).encode() + b"\n")
        else:
            lines.append(data + b"\n")
    return lines, errors


def run(settings: Settings, max_records: int = MAX_RECORDS_PER_SHARD_BATCH) -> dict:
    settings = settings.for_stage("ingest-activity")  # its IAM role when stage roles are on
    kinesis, s3 = aws(settings, "kinesis"), aws(settings, "s3")
    stream, bucket = settings.names.stream, settings.names.bucket("raw")
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    per_shard: dict[str, int] = {}
    keys: list[str] = []
    error_count = 0
    for shard in parents_first(shards):
        sid = shard["ShardId"]
        total = 0
        while True:
            checkpoint = get_checkpoint(settings, sid)
            records, closed = _read_shard(kinesis, stream, sid, checkpoint, max_records)
            if not records:
                break
            lines, errors = frame_records(records)
            key = object_key(stream, sid, records[0])
            if errors:
                s3.put_object(Bucket=bucket, Key=error_key(key), Body=_encode(b"".join(errors), settings))
                error_count += len(errors)
            if lines:
                s3.put_object(Bucket=bucket, Key=key + (".gz" if settings.engines.firehose_compression == "gzip" else ""),
                              Body=_encode(b"".join(lines), settings), ContentType="application/x-ndjson")
            faults.point("user_activity.write")
            _set_checkpoint(settings, sid, checkpoint, records[-1]["SequenceNumber"], closed)
            keys.append(key)
            total += len(records)
            if len(records) < max_records:
                break
        per_shard[sid] = total
    return {"records": sum(per_shard.values()), "per_shard": per_shard, "objects": keys,
            "processing_failed": error_count, "rows_out": sum(per_shard.values()) - error_count,
            "rejected": error_count, "files_written": len(keys)}
