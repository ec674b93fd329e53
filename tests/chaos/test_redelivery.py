"""Case 2: the same Kinesis batch and the same CDC batch delivered twice. Nothing doubled.

- Kinesis, to the consumer: its checkpoints are lost after a run (the lease table rolled
  back), so the next run reads the same records again: it must rewrite the same raw objects.
- Kinesis, from the producer: a batch of records is put into the stream a second time (a
  producer retry after a timeout): every copy is a new stream record with the same
  ``event_id``; the clean zone keeps one, the copies are quarantined as ``duplicate_event_id``.
- CDC: a batch of changes lands in raw a second time (a second file with the same rows,
  right after the first in replay order): the current state and the status history must
  not change.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from chaos.harness import assert_reconciled, fresh, reconcile, run_in_process, s3_snapshot
from lifecycle.clients import aws
from lifecycle.pipeline.stages import TO_LANDING


def _stream_records(settings) -> list[dict]:
    kinesis, out = aws(settings, "kinesis"), []
    for shard in kinesis.list_shards(StreamName=settings.names.stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=settings.names.stream, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            resp = kinesis.get_records(ShardIterator=it, Limit=10_000)
            out += resp["Records"]
            it = resp.get("NextShardIterator")
            if not resp["Records"]:
                break
    return out


def test_kinesis_batch_delivered_twice(settings, chaos_case):
    from lifecycle.sources.simulator import put_events

    chaos_case.fault = "Kinesis: checkpoints lost (batch re-read) + a batch of 40 records re-put by the producer"
    summary = fresh(settings, scale=15)
    run_in_process(settings, "ingest_events")
    raw_before = {k: v for k, v in s3_snapshot(settings, ("raw",)).items() if "/events/" in "/" + k}
    # the consumer's progress is lost: it reads the very same batch again
    ddb = aws(settings, "dynamodb")
    for item in ddb.scan(TableName=settings.names.checkpoint_table)["Items"]:
        ddb.delete_item(TableName=settings.names.checkpoint_table, Key={"lease_key": item["lease_key"]})
    run_in_process(settings, "ingest_events")
    raw_after = {k: v for k, v in s3_snapshot(settings, ("raw",)).items() if "/events/" in "/" + k}
    assert raw_after == raw_before, "a re-read batch must rewrite the same raw objects, not add new ones"
    # the producer sends a batch again: new stream records, same events
    again = _stream_records(settings)[:40]
    put_events(settings, [r["Data"] for r in again], [r["PartitionKey"] for r in again])
    run_in_process(settings, *TO_LANDING)
    report = reconcile(settings, chaos_case, bad_expected={"duplicate_event_id": len(again)})
    assert_reconciled(report)
    chaos_case.outcome = (f"re-read batch rewrote the same {len(raw_before)} raw object(s); {len(again)} re-put "
                          f"records quarantined as duplicate_event_id; {sum(summary['events_good'].values())} "
                          "events once each")


@pytest.mark.chaos_slow
def test_cdc_batch_delivered_twice(settings, chaos_case):
    from lifecycle.sources.simulator import simulate_day

    chaos_case.fault = "CDC: every CDC file of a day delivered a second time, after it was applied"
    fresh(settings, scale=15)
    run_in_process(settings, "ingest_sales", "lake")
    simulate_day(settings, date(2026, 11, 21), scale=15)  # a second day: inserts, updates, deletes
    run_in_process(settings, "ingest_sales", "lake")  # the day's CDC files applied (incremental)
    s3, bucket = aws(settings, "s3"), settings.names.bucket("raw")
    cdc = [k for k in s3_snapshot(settings, ("raw",)) if k.startswith("raw/sales/public/")
           and not k.rsplit("/", 1)[-1].startswith("LOAD")]
    assert cdc, "the second day must have produced CDC files"
    for key in cdc:
        key = key[len("raw/"):]
        # same rows, a name that replays right after the original (before any later batch)
        s3.copy_object(Bucket=bucket, Key=key.replace(".parquet", "-redelivered.parquet"),
                       CopySource={"Bucket": bucket, "Key": key})
    result = run_in_process(settings, "ingest_events", "ingest_reviews", "lake", "warehouse")
    # the repeated files replay before files already applied: the job must not apply them on
    # top of the current state (that would undo the later changes) but rebuild
    assert "arrived after" in result["lake"]["jobs"]["clean_sales"].get("full_rebuild_reason", "")
    report = reconcile(settings, chaos_case)
    history = _history_duplicates(settings)
    report["checks"].append({"name": "order_status_history: no duplicate (order_id, valid_from)",
                             "expected": 0, "actual": history, "ok": history == 0})
    chaos_case.reconciled({"checks": report["checks"][-1:]})
    assert_reconciled(report)
    chaos_case.outcome = f"{len(cdc)} CDC file(s) delivered twice: current state and status history unchanged"


def _history_duplicates(settings) -> int:
    from lifecycle.clients import connect_duckdb
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import CLEAN_TABLES

    with connect_duckdb(settings) as con:
        rows = con.execute(f"SELECT order_id, valid_from FROM "
                           f"{iceberg.scan_sql(settings, CLEAN_TABLES['order_status_history'])}").fetchall()
    return sum(n - 1 for n in Counter(rows).values())


@pytest.mark.chaos_slow
def test_dynamodb_stream_records_delivered_twice(settings, chaos_case):
    """The reviews stream's leases lost after a day of edits and deletes was applied: the
    consumer re-reads every record from the start of the stream (inserts, then the updates and
    deletes of the same reviews). The clean zone must keep each review's last image, and the
    deleted ones deleted: DynamoDB = clean = landing, value for value."""
    from lifecycle.ingest.review_stream import STREAM_PREFIX, lease_key
    from lifecycle.sources.simulator import change_reviews, simulate_day

    chaos_case.fault = "DynamoDB stream: the review leases lost after edits and deletes were applied (all re-read)"
    fresh(settings, scale=15)
    run_in_process(settings, *TO_LANDING)
    simulate_day(settings, date(2026, 11, 21), scale=15)
    changed = change_reviews(settings, date(2026, 11, 21), 42, n_updates=1, n_deletes=1)
    assert changed["updated"] and changed["deleted"], changed
    run_in_process(settings, *TO_LANDING)
    stream_objects = {k for k in s3_snapshot(settings, ("raw",)) if k.startswith(f"raw/{STREAM_PREFIX}/")}
    ddb, prefix = aws(settings, "dynamodb"), lease_key(settings, "")
    leases = [i["lease_key"] for i in ddb.scan(TableName=settings.names.checkpoint_table)["Items"]
              if i["lease_key"]["S"].startswith(prefix)]
    assert leases
    for key in leases:
        ddb.delete_item(TableName=settings.names.checkpoint_table, Key={"lease_key": key})
    again = run_in_process(settings, "ingest_reviews")["ingest_reviews"]
    assert again["stream_records"] > 0, again  # everything read a second time
    run_in_process(settings, "lake", "warehouse")
    report = reconcile(settings, chaos_case)
    assert_reconciled(report)
    after = {k for k in s3_snapshot(settings, ("raw",)) if k.startswith(f"raw/{STREAM_PREFIX}/")}
    chaos_case.outcome = (f"{again['stream_records']} stream records read again ({len(after - stream_objects)} new raw "
                          f"objects beside {len(stream_objects)}); {len(changed['updated'])} edits and "
                          f"{len(changed['deleted'])} deletes kept; reconciled at values")
