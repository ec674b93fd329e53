"""Read-side SQL over the lake (what Athena does on AWS), on DuckDB.

Input: ``Settings``. Output: ``lake_counts`` — the figures the reconciliation compares:
clean events per type and in total, quarantined event records, records in the Firehose
error prefix, and the partitions each partitioned clean table's current snapshot has.
"""

from __future__ import annotations

from lifecycle.clients import aws
from lifecycle.lake import iceberg
from lifecycle.lake.catalog import CLEAN_TABLES
from lifecycle.settings import Settings


def has_objects(settings: Settings, bucket: str, prefix: str) -> bool:
    return bool(aws(settings, "s3").list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount"))


def raw_records(settings: Settings, key: str) -> list[bytes]:
    """The non-blank lines of a raw newline-delimited object (GZIP or not)."""
    import gzip

    body = aws(settings, "s3").get_object(Bucket=settings.names.bucket("raw"), Key=key)["Body"].read()
    if key.endswith(".gz"):
        body = gzip.decompress(body)
    return [line for line in body.split(b"\n") if line.strip()]


def processing_failed_records(settings: Settings) -> int:
    """Records the stream consumer sent to Firehose's error prefix (not framable as a line)."""
    s3, total = aws(settings, "s3"), 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.names.bucket("raw"), Prefix="events-errors/"):
        for obj in page.get("Contents", []):
            total += len(raw_records(settings, obj["Key"]))
    return total


def lake_counts(settings: Settings) -> dict:
    from lifecycle.clients import connect_duckdb

    quarantine = settings.names.bucket("quarantine")
    with connect_duckdb(settings) as con:
        by_type = dict(con.execute(
            f"SELECT event_type, count(*) FROM {iceberg.scan_sql(settings, CLEAN_TABLES['events'], ['event_type'])} "
            "GROUP BY 1").fetchall())
        quarantined = 0
        if has_objects(settings, quarantine, "events/data_0.parquet"):
            (quarantined,) = con.execute(
                f"SELECT count(*) FROM read_parquet('s3://{quarantine}/events/data_0.parquet')").fetchone()
    partitions = {name: len(iceberg.partitions(settings, spec))
                  for name, spec in CLEAN_TABLES.items() if spec.partition}
    return {"events_by_type": {k: int(v) for k, v in by_type.items()},
            "events_total": int(sum(by_type.values())), "quarantined_events": int(quarantined),
            "processing_failed_events": processing_failed_records(settings),
            "partitions": partitions}
