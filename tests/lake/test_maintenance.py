"""Iceberg table maintenance and rollback on the lake's tables, through the project's moto.

Input: the hand-written raw zone of ``test_jobs``, cleaned once; ``events`` then split into
one data file per row in one partition (what many small appends, or Spark's one file per
task, leave).
Asserts: compaction rewrites only the crowded partition, to one file, with the same rows, in
one commit marked as maintenance, and publishes the file count per partition; a second run
changes nothing; old snapshots are expired past the newest kept, the files only they named
and a killed writer's stray file are deleted once old enough (not before), and every file
the table still names is there; a table rolls back to an earlier snapshot (by id, by time)
without a data file written, and its readers see that snapshot's rows.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from conftest import reset_lake
from raw_lake import END, START, read, write_raw

from lifecycle.clients import aws
from lifecycle.jobs.maintenance import files_per_partition, maintain, referenced
from lifecycle.lake import iceberg
from lifecycle.lake.catalog import CLEAN_TABLES

EVENTS = CLEAN_TABLES["events"]
DAY = EVENTS.partition[0]


def _rows(settings) -> list:
    return read(settings, "SELECT * FROM {clean.events} ORDER BY ALL")


def _with(settings, **maintenance):
    return replace(settings, maintenance=replace(settings.maintenance, **maintenance))


def _objects(settings) -> set[str]:
    bucket = settings.names.bucket("clean")
    pages = aws(settings, "s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="events/")
    return {f"s3://{bucket}/{o['Key']}" for p in pages for o in p.get("Contents", [])}


@pytest.fixture
def crowded(settings):
    """``events`` cleaned, then its fullest partition rewritten as one data file per row."""
    from lifecycle.jobs.engine.runner import run_lake_clean

    reset_lake(settings)
    write_raw(settings)
    run_lake_clean(settings, START, END)
    table = iceberg.load_table(settings, EVENTS)
    partition, _ = files_per_partition(table).most_common(1)[0]
    rows = table.scan(row_filter=iceberg.partition_filter(DAY, [partition])).to_arrow()
    assert rows.num_rows >= 2, "the raw zone of test_jobs has several events on one day"
    iceberg.overwrite_partitions(table, rows.slice(0, 1), DAY, [partition])
    for i in range(1, rows.num_rows):
        table.append(rows.slice(i, 1))
    assert files_per_partition(table)[partition] == rows.num_rows
    return partition, rows.num_rows


def test_compaction_bounds_the_files_per_partition_and_keeps_the_rows(settings, crowded):
    partition, files = crowded
    before, table = _rows(settings), iceberg.load_table(settings, EVENTS)
    others = {f.uri for f in iceberg.data_file_entries(table) if f.partition != partition}
    tight = _with(settings, max_files_per_partition=1)

    out = maintain(tight)

    events = out["tables"]["events"]
    assert events["compacted"] == [partition]
    assert events["files_per_partition_max"] == 1 and out["files_per_partition_max"] == 1
    table = iceberg.load_table(settings, EVENTS)
    assert files_per_partition(table)[partition] == 1
    assert others <= {f.uri for f in iceberg.data_file_entries(table)}  # no other partition rewritten
    snapshot = table.current_snapshot()
    # pyiceberg's overwrite: a delete snapshot and an append, made current in one commit
    deleted = table.snapshot_by_id(snapshot.parent_snapshot_id)
    assert snapshot.summary["lifecycle.maintenance"] == deleted.summary["lifecycle.maintenance"] == "compaction"
    assert deleted.summary["deleted-data-files"] == str(files) and snapshot.summary["added-data-files"] == "1"
    assert _rows(settings) == before
    metrics = aws(settings, "cloudwatch").list_metrics(
        Namespace=settings.names.metrics_namespace, MetricName="LakeFilesPerPartitionMax",
        Dimensions=[{"Name": "Table", "Value": "events"}])["Metrics"]
    assert metrics
    # rerun = no change: nothing crowded, no commit
    again = maintain(tight)
    assert again["compacted"] == 0
    assert iceberg.load_table(settings, EVENTS).current_snapshot().snapshot_id == snapshot.snapshot_id


def test_a_compaction_whose_commit_fails_leaves_the_table_and_its_files_are_swept(settings, crowded, monkeypatch):
    """A compaction killed at its commit: the table is at its previous snapshot, whole; the
    files the compaction wrote are named by nothing and go with the next sweep."""
    from pyiceberg.catalog.glue import GlueCatalog

    partition, files = crowded
    before_rows, before_objects = _rows(settings), _objects(settings)
    snapshot = iceberg.load_table(settings, EVENTS).current_snapshot().snapshot_id

    def unreachable(self, table, requirements, updates):
        raise ConnectionError("injected: Glue unreachable at commit")

    monkeypatch.setattr(GlueCatalog, "commit_table", unreachable)
    with pytest.raises(ConnectionError, match="Glue unreachable"):
        maintain(_with(settings, max_files_per_partition=1))
    monkeypatch.undo()
    table = iceberg.load_table(settings, EVENTS)
    assert table.current_snapshot().snapshot_id == snapshot
    assert files_per_partition(table)[partition] == files and _rows(settings) == before_rows
    written = _objects(settings) - before_objects
    assert written and not written & referenced(table)
    out = maintain(_with(settings, max_files_per_partition=files, orphan_min_age_hours=0),
                   datetime.now(UTC) + timedelta(seconds=5))
    assert out["tables"]["events"]["compacted"] == []
    assert not written & _objects(settings)
    assert _rows(settings) == before_rows and iceberg.damage(settings, EVENTS) is None


def test_expiry_deletes_what_no_kept_snapshot_names_once_old_enough(settings, crowded):
    table = iceberg.load_table(settings, EVENTS)
    assert len(table.metadata.snapshots) >= 3
    before, first = _rows(settings), table.metadata.snapshots[0].snapshot_id
    stray = f"{table.location()}/data/event_date=2026-01-02/00000-0-killed-writer.parquet"
    bucket = settings.names.bucket("clean")
    aws(settings, "s3").put_object(Bucket=bucket, Key=stray.split(f"s3://{bucket}/", 1)[1], Body=b"PAR1")

    # the defaults (5 days, 3 days): everything here is minutes old, nothing goes
    kept = maintain(settings)["tables"]["events"]
    assert kept["snapshots_expired"] == 0 and kept["files_deleted"] == 0
    assert stray in _objects(settings)

    later = datetime.now(UTC) + timedelta(seconds=5)
    out = maintain(_with(settings, snapshot_max_age_hours=0, snapshots_kept=2, orphan_min_age_hours=0), later)
    events = out["tables"]["events"]
    table = iceberg.load_table(settings, EVENTS)
    assert events["snapshots_expired"] >= 1 and len(table.metadata.snapshots) == events["snapshots"] == 2
    assert table.snapshot_by_id(first) is None
    present = _objects(settings)
    assert stray not in present and events["files_deleted"] >= 2
    assert referenced(table) <= present | {None}  # every file the table names is still there
    assert present <= referenced(table)  # and nothing else is left under its location
    assert iceberg.damage(settings, EVENTS) is None
    assert _rows(settings) == before


def test_a_table_rolls_back_to_a_snapshot_by_id_and_by_time(settings, crowded):
    from lifecycle.ops.recovery import rollback_table

    table = iceberg.load_table(settings, EVENTS)
    history = sorted(table.metadata.snapshots, key=lambda s: s.timestamp_ms)
    first, newest = history[0], history[-1]
    assert len(history) >= 3
    then = read(settings, f"SELECT * FROM {iceberg.scan_sql(settings, EVENTS, as_of=str(first.snapshot_id))} ORDER BY ALL")
    with pytest.raises(ValueError, match="unknown snapshot"):
        rollback_table(settings, "events", "12345")
    files_before = _objects(settings)

    # by time: the newest snapshot committed at or before it
    at = datetime.fromtimestamp(history[1].timestamp_ms / 1000, UTC).isoformat()
    assert rollback_table(settings, "events", at)["to_snapshot"] == history[1].snapshot_id
    out = rollback_table(settings, "events", str(first.snapshot_id))

    assert out["from_snapshot"] == history[1].snapshot_id and out["to_snapshot"] == first.snapshot_id
    assert out["rows"] == int(first.summary["total-records"]) == len(then)
    assert iceberg.load_table(settings, EVENTS).current_snapshot().snapshot_id == first.snapshot_id
    assert _rows(settings) == then
    assert not {u for u in _objects(settings) - files_before if "/data/" in u}  # no data file written
    # the newest is no longer an ancestor of the current snapshot: Iceberg refuses to go there
    with pytest.raises(ValueError, match="not an ancestor"):
        rollback_table(settings, "events", str(newest.snapshot_id))


def test_the_commands_list_snapshots_roll_back_and_maintain(settings, crowded):
    import json

    from typer.testing import CliRunner

    from lifecycle.cli import app

    runner = CliRunner()
    table = iceberg.load_table(settings, EVENTS)
    first = min(table.metadata.snapshots, key=lambda s: s.timestamp_ms).snapshot_id
    listed = runner.invoke(app, ["lake", "snapshots", "events"])
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.output.splitlines() if line[:1].isdigit()]
    assert len(lines) == len(table.metadata.snapshots) and str(first) in lines[0]
    assert lines[-1].rstrip().endswith("*")  # the current one, last
    back = runner.invoke(app, ["recover", "lake", "--table", "events", "--snapshot", str(first)])
    assert back.exit_code == 0, back.output
    assert json.loads(back.output)["to_snapshot"] == first
    assert runner.invoke(app, ["recover", "lake", "--table", "events"]).exit_code == 2
    assert runner.invoke(app, ["recover", "lake", "--table", "nope", "--snapshot", "1"]).exit_code == 2
    done = runner.invoke(app, ["lake", "maintain"])
    assert done.exit_code == 0, done.output
    assert "events" in json.loads(done.output)["tables"]
