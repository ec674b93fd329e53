"""DynamoDB `product_reviews` → raw zone: one export for the first load, then its stream.

Input: ``Settings`` and the run's point in time (the end of the data interval).
Output, in the raw bucket:

- the first load, only when no complete export exists yet (or the stream has a gap):
  ``reviews/AWSDynamoDB/<exportId>/data/part-00000.json`` (one ``{"Item": ...}`` in DynamoDB
  JSON per line) and then ``manifest-summary.json`` next to it (``exportTime``,
  ``itemCount``, ``tableArn``), the layout of DynamoDB's export to S3. ``exportId`` is
  derived from the point in time; ``exportTime`` is the moment the snapshot began.
- every run: the table's DynamoDB stream from its checkpoints, one object per shard batch
  under ``reviews/stream/YYYY/MM/DD/HH/`` (``lifecycle.ingest.review_stream``).

``run`` returns ``{"mode", "export_id", "items", "stream_records", "events", "rows_out",
"files_written"}``: ``items`` is what reached the raw zone in this run (the export's items,
or stream records when there was no export). The clean job rebuilds the current table from
the newest export plus every stream record created at or after its ``exportTime``
(docs/reviews.md explains why that order is safe).

On AWS, ``ExportTableToPointInTime`` (or the Amazon provider's ``DynamoDBToS3Operator``
with ``point_in_time_export``) writes the same export layout; moto does not run exports, so
here a paginated, consistent scan stands in for it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from lifecycle.clients import aws
from lifecycle.ingest import review_stream
from lifecycle.settings import Settings

EXPORT_PREFIX = "reviews/AWSDynamoDB"
MAX_GAP_RESETS = 100  # each reset restarts at least one shard at TRIM_HORIZON


def export_id(point_in_time: datetime) -> str:
    return point_in_time.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def latest_export(settings: Settings) -> str | None:
    """exportId of the newest complete export (one with its manifest), or None."""
    s3 = aws(settings, "s3")
    done = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.names.bucket("raw"),
                                                             Prefix=f"{EXPORT_PREFIX}/"):
        done.extend(o["Key"].split("/")[2] for o in page.get("Contents", [])
                    if o["Key"].endswith("/manifest-summary.json") and o["Key"].count("/") == 3)
    return max(done) if done else None


def export(settings: Settings, point_in_time: datetime) -> dict:
    """Write the whole table in the export layout (data first, the manifest last)."""
    ddb, s3 = aws(settings, "dynamodb"), aws(settings, "s3")
    # The export reflects the table from this moment on (a scan is not instantaneous: items
    # changed while it runs may show either version). Stream records created at or after it
    # are replayed over the export, so nothing changed during or after the scan is lost.
    started = datetime.now(UTC)
    lines: list[str] = []
    for page in ddb.get_paginator("scan").paginate(TableName=settings.names.reviews_table, ConsistentRead=True):
        lines.extend(json.dumps({"Item": item}, sort_keys=True) for item in page["Items"])
    lines.sort()  # deterministic object content for the same table state
    prefix = f"{EXPORT_PREFIX}/{export_id(point_in_time)}"
    bucket = settings.names.bucket("raw")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/data/part-00000.json",
                  Body=("\n".join(lines) + ("\n" if lines else "")).encode())
    table_arn = ddb.describe_table(TableName=settings.names.reviews_table)["Table"]["TableArn"]
    manifest = {"exportTime": review_stream.iso_utc(started), "itemCount": len(lines),
                "tableArn": table_arn, "outputFormat": "DYNAMODB_JSON"}
    s3.put_object(Bucket=bucket, Key=f"{prefix}/manifest-summary.json", Body=json.dumps(manifest).encode())
    return {"export_id": export_id(point_in_time), "export_time": manifest["exportTime"],
            "items": len(lines), "files_written": 2}


def run(settings: Settings, point_in_time: datetime) -> dict:
    """First load = an export; every run = the stream from its checkpoints.

    A stream that cannot continue from its checkpoints (records trimmed after 24 h without
    a run) gets a fresh export, and the affected shards restart at TRIM_HORIZON: the new
    export's ``exportTime`` keeps the records before it from being replayed.
    """
    settings = settings.for_stage("ingest-activity")  # its IAM role when stage roles are on
    exported = None
    if latest_export(settings) is None:
        exported = export(settings, point_in_time)
    stream, resets = None, 0
    while stream is None:
        try:
            stream = review_stream.run(settings)
        except review_stream.StreamGapError as gap:
            if resets > MAX_GAP_RESETS:
                raise
            if not resets:  # one fresh snapshot covers every shard's gap
                # named by when it is taken if that is later than the interval: the newest
                # export (by exportId) must be this one, not one from before the gap
                exported = export(settings, max(point_in_time, datetime.now(UTC)))
            review_stream.reset_checkpoints(settings, gap.shard_ids)
            resets += 1
    stream.pop("objects", None)
    n = stream["records"]
    return {
        "mode": "export+stream" if exported else "stream",
        "export_id": exported["export_id"] if exported else latest_export(settings),
        "items": exported["items"] if exported else n,
        "stream_records": n,
        "events": stream["events"],
        "per_shard": stream["per_shard"],
        "rows_out": (exported["items"] if exported else 0) + n,
        "files_written": (exported["files_written"] if exported else 0) + stream["files_written"],
    }
