"""DynamoDB Streams of `product_reviews` → raw zone, one object per shard batch, checkpointed.

Input: ``Settings`` (the reviews table, whose stream must be enabled with ``NEW_IMAGE`` or
``NEW_AND_OLD_IMAGES``; the lease table ``settings.names.checkpoint_table``; the raw bucket).
Output: one object per shard batch at
``reviews/stream/YYYY/MM/DD/HH/product_reviews-<shardId>-<firstSequenceNumber>.json``
(hour prefix = UTC hour of the batch's first ``ApproximateCreationDateTime``), newline-
delimited JSON with one stream record per line exactly as ``GetRecords`` returns it
(``eventName`` INSERT/MODIFY/REMOVE, ``dynamodb.Keys``, ``NewImage``, ``OldImage``,
``SequenceNumber``), except that ``ApproximateCreationDateTime`` is an ISO-8601 UTC string;
then the shard's checkpoint (the last sequence number written) in the lease table under
``product_reviews-stream:<shardId>``. Returns counts per shard and per event name.

Exactly once into the lake, as in ``lifecycle.ingest.user_activity``: the object key is
derived from the shard and the first sequence number after the checkpoint, the object is
written first, and the checkpoint is moved after with a conditional write (two consumers
cannot both move it). A crash in between rereads the same records from the same checkpoint
and overwrites the same key. Parent shards (DynamoDB rolls shards over every few hours) are
drained before their children, so the records of one item stay in order.

A checkpoint older than the stream's 24-hour retention (``TrimmedDataAccessException``)
means changes were lost between two runs: ``StreamGapError`` is raised and
``lifecycle.ingest.reviews.run`` takes a fresh export (see docs/reviews.md).
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from datetime import UTC, datetime

from lifecycle import faults
from lifecycle.clients import aws
from lifecycle.ingest.shards import parents_first
from lifecycle.settings import Settings

MAX_RECORDS_PER_SHARD_BATCH = 10_000
GET_RECORDS_LIMIT = 1000  # the API's maximum per call
# An open shard can answer an empty page before the part that holds records (AWS says so
# for DynamoDB Streams); after this many empty pages in a row the shard counts as caught up.
MAX_EMPTY_POLLS = 3
STREAM_PREFIX = "reviews/stream"


class StreamError(RuntimeError):
    """The table has no usable stream; the message says what to change."""


class StreamGapError(RuntimeError):
    """The stream cannot continue from a checkpoint: changes were lost in between."""

    def __init__(self, shard_ids: list[str], reason: str = "trimmed"):
        self.shard_ids = list(shard_ids)
        self.reason = reason
        why = ("are past the stream's retention (24 h)" if reason == "trimmed"
               else "belong to a stream the table no longer has (it was disabled and re-enabled)")
        super().__init__(f"stream records after the checkpoints of {', '.join(shard_ids)} {why}; "
                         "a fresh export of the table is needed to continue")


# ---- the stream -------------------------------------------------------------------------------

def stream_arn(settings: Settings) -> str:
    """ARN of the table's current stream; raises ``StreamError`` if it has none we can use."""
    table = aws(settings, "dynamodb").describe_table(TableName=settings.names.reviews_table)["Table"]
    spec = table.get("StreamSpecification") or {}
    if not spec.get("StreamEnabled") or not table.get("LatestStreamArn"):
        raise StreamError(f"table {settings.names.reviews_table} has no stream enabled; enable one with "
                          "StreamViewType NEW_AND_OLD_IMAGES (infra/resources.yaml)")
    if spec.get("StreamViewType") not in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        raise StreamError(f"the stream of {settings.names.reviews_table} is {spec.get('StreamViewType')}; "
                          "inserts and updates need the new image (NEW_AND_OLD_IMAGES)")
    return table["LatestStreamArn"]


def list_shards(streams, arn: str) -> list[dict]:
    shards: list[dict] = []
    kwargs: dict = {}
    while True:
        desc = streams.describe_stream(StreamArn=arn, **kwargs)["StreamDescription"]
        shards.extend(desc.get("Shards", []))
        last = desc.get("LastEvaluatedShardId")
        if not last:
            return shards
        kwargs = {"ExclusiveStartShardId": last}



# ---- leases (checkpoints) ---------------------------------------------------------------------

def lease_key(settings: Settings, shard_id: str) -> str:
    return f"{settings.names.reviews_table}-stream:{shard_id}"


def get_lease(settings: Settings, shard_id: str) -> dict:
    """``{"checkpoint": last sequence number written or None, "shard_end": bool}``."""
    item = aws(settings, "dynamodb").get_item(
        TableName=settings.names.checkpoint_table, Key={"lease_key": {"S": lease_key(settings, shard_id)}},
        ConsistentRead=True).get("Item") or {}
    return {"checkpoint": item["checkpoint"]["S"] if "checkpoint" in item else None,
            "shard_end": bool(item.get("shard_end", {}).get("BOOL", False))}


def _set_checkpoint(settings: Settings, shard_id: str, previous: str | None, new: str | None,
                    shard_end: bool, arn: str) -> None:
    kwargs: dict = {}
    if previous is None:
        kwargs["ConditionExpression"] = "attribute_not_exists(checkpoint)"
    else:
        kwargs["ConditionExpression"] = "checkpoint = :prev"
        kwargs["ExpressionAttributeValues"] = {":prev": {"S": previous}}
    item = {"lease_key": {"S": lease_key(settings, shard_id)}, "shard_end": {"BOOL": shard_end},
            "stream_arn": {"S": arn}}
    if new is not None:
        item["checkpoint"] = {"S": new}
    aws(settings, "dynamodb").put_item(TableName=settings.names.checkpoint_table, Item=item, **kwargs)


def stale_leases(settings: Settings, arn: str) -> list[str]:
    """Shards of this table's leases that belong to another stream than ``arn``."""
    prefix = lease_key(settings, "")
    stale = []
    for page in aws(settings, "dynamodb").get_paginator("scan").paginate(
            TableName=settings.names.checkpoint_table, ConsistentRead=True,
            FilterExpression="begins_with(lease_key, :p)", ExpressionAttributeValues={":p": {"S": prefix}}):
        for item in page["Items"]:
            if item.get("stream_arn", {}).get("S") != arn:
                stale.append(item["lease_key"]["S"][len(prefix):])
    return sorted(stale)


def reset_checkpoints(settings: Settings, shard_ids: list[str]) -> None:
    """Forget the checkpoints of ``shard_ids`` (the next read starts at TRIM_HORIZON)."""
    ddb = aws(settings, "dynamodb")
    for sid in shard_ids:
        ddb.delete_item(TableName=settings.names.checkpoint_table, Key={"lease_key": {"S": lease_key(settings, sid)}})


# ---- reading and writing ------------------------------------------------------------------------

def shard_iterator(streams, arn: str, shard_id: str, after: str | None) -> str:
    """An iterator of a DynamoDB stream's shard after sequence number ``after`` (None: from its
    trim horizon); ``StreamGapError`` when the records after ``after`` were trimmed away."""
    kwargs = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
              if after else {"ShardIteratorType": "TRIM_HORIZON"})
    try:
        return streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, **kwargs)["ShardIterator"]
    except streams.exceptions.TrimmedDataAccessException as exc:
        raise StreamGapError([shard_id]) from exc


def _read_shard(streams, arn: str, shard_id: str, after: str | None, limit: int,
                max_empty_polls: int = MAX_EMPTY_POLLS) -> tuple[list[dict], bool]:
    """Up to ``limit`` records after ``after`` (or from TRIM_HORIZON); ``closed`` is True when
    the shard is closed and every record of it has been read."""
    iterator: str | None = shard_iterator(streams, arn, shard_id, after)
    records: list[dict] = []
    closed, empty, backoff = False, 0, 0.2
    while iterator and len(records) < limit:
        try:
            resp = streams.get_records(ShardIterator=iterator,
                                       Limit=min(GET_RECORDS_LIMIT, limit - len(records)))
        except streams.exceptions.LimitExceededException:
            time.sleep(backoff)
            backoff = min(backoff * 2, 5)
            continue
        except streams.exceptions.ExpiredIteratorException:  # iterators live 15 minutes
            iterator = shard_iterator(streams, arn, shard_id,
                                 records[-1]["dynamodb"]["SequenceNumber"] if records else after)
            continue
        except streams.exceptions.TrimmedDataAccessException as exc:
            raise StreamGapError([shard_id]) from exc
        records.extend(resp.get("Records", []))
        iterator = resp.get("NextShardIterator")
        if iterator is None:
            closed = True
        elif resp.get("Records"):
            empty = 0
        else:
            empty += 1
            if records or empty >= max_empty_polls:
                break
    if len(records) > limit:
        records, closed = records[:limit], False
    return records, closed


def _json_default(value):
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, bytes | bytearray):  # B / BS attributes: base64, as on the wire
        return base64.b64encode(value).decode()
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} in a stream record")


def iso_utc(ts: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (a naive time is taken as UTC)."""
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_line(record: dict) -> str:
    """One stream record as a JSON line: the API's shape, the creation time as ISO UTC."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, default=_json_default)


def created_at(record: dict) -> datetime:
    ts = record["dynamodb"]["ApproximateCreationDateTime"]
    if isinstance(ts, int | float):  # epoch seconds, as the wire format has it
        return datetime.fromtimestamp(ts, UTC)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def object_key(settings: Settings, shard_id: str, first: dict) -> str:
    ts = created_at(first)
    return (f"{STREAM_PREFIX}/{ts:%Y/%m/%d/%H}/{settings.names.reviews_table}-{shard_id}-"
            f"{first['dynamodb']['SequenceNumber']}.json")


def run(settings: Settings, max_records: int = MAX_RECORDS_PER_SHARD_BATCH,
        max_empty_polls: int = MAX_EMPTY_POLLS) -> dict:
    """Read every shard of the reviews stream from its checkpoint into the raw zone."""
    streams, s3 = aws(settings, "dynamodbstreams"), aws(settings, "s3")
    arn, bucket = stream_arn(settings), settings.names.bucket("raw")
    stale = stale_leases(settings, arn)
    if stale:
        raise StreamGapError(stale, reason="replaced")
    per_shard: dict[str, int] = {}
    events: Counter = Counter()
    keys: list[str] = []
    shards = parents_first(list_shards(streams, arn))
    listed = {s["ShardId"] for s in shards}
    ended: set[str] = set()
    for shard in shards:
        sid = shard["ShardId"]
        parent = shard.get("ParentShardId")
        per_shard[sid] = total = 0
        if parent in listed and parent not in ended:
            continue  # the parent still has records to give: the child waits for the next run
        while True:
            lease = get_lease(settings, sid)
            if lease["shard_end"]:
                ended.add(sid)
                break
            checkpoint = lease["checkpoint"]
            records, closed = _read_shard(streams, arn, sid, checkpoint, max_records, max_empty_polls)
            if not records:
                if closed:  # drained: its children may start, and it is never read again
                    _set_checkpoint(settings, sid, checkpoint, checkpoint, True, arn)
                    ended.add(sid)
                break
            body = "".join(record_line(r) + "\n" for r in records).encode()
            key = object_key(settings, sid, records[0])
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")
            faults.point("review_stream.write")
            _set_checkpoint(settings, sid, checkpoint, records[-1]["dynamodb"]["SequenceNumber"],
                            closed, arn)
            keys.append(key)
            total += len(records)
            events.update(r.get("eventName", "?") for r in records)
            if closed:
                ended.add(sid)
            if closed or len(records) < max_records:
                break
        per_shard[sid] = total
    n = sum(per_shard.values())
    return {"records": n, "per_shard": per_shard, "events": dict(events), "objects": keys,
            "rows_out": n, "files_written": len(keys)}
