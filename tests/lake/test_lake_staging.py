"""A lake job that fails mid-write leaves the previous objects; a killed run's staging is ignored.

Input: the hand-written raw zone of ``test_jobs`` in moto S3, cleaned once.
Asserts: a DuckDB error raised in the middle of the partitioned COPY of ``order_items``
(after the rows of the earlier partitions went to the writer) propagates, leaves every
clean/quarantine object as it was (same keys, same ETags, each readable) and no staging
object; a rerun rebuilds the same objects. Staging objects left by a killed run (here a
truncated Parquet object) are invisible to the readers and removed by the job's next run.
"""

from __future__ import annotations

import pytest
from conftest import reset_lake
from raw_lake import END, START, objects, read, write_raw

from lifecycle.clients import aws

STAGING = "_lifecycle/staging/"
ZONES = ("clean", "quarantine")


def _staging_objects(settings) -> list[str]:
    s3 = aws(settings, "s3")
    return [f"{zone}/{o['Key']}" for zone in ("clean", "curated", "quarantine")
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.names.bucket(zone), Prefix=STAGING)
            for o in page.get("Contents", [])]


def _all_readable(settings, snapshot: dict[str, dict[str, str]]) -> None:
    for zone, keys in snapshot.items():
        for key in keys:
            if key.endswith(".parquet"):
                read(settings, f"SELECT count(*) FROM read_parquet('s3://{settings.names.bucket(zone)}/{key}')")


@pytest.fixture
def cleaned_once(settings):
    from lifecycle.jobs.engine.runner import run_lake_clean

    reset_lake(settings)
    write_raw(settings)
    first = run_lake_clean(settings, START, END)
    snapshot = {zone: objects(settings, zone) for zone in ZONES}
    assert any(k.startswith("order_items/order_date=") for k in snapshot["clean"])
    return first, snapshot


def _fail_in_last_partition(monkeypatch, table: str, partition: str) -> list:
    """Make the COPY of ``table`` raise at the rows of its last ``partition`` value: a DuckDB
    error in the middle of the write, as an out-of-memory error would be. Returns the
    ``(connection, view)`` pairs to drop afterwards."""
    from lifecycle.jobs.engine.duckdb_context import DuckDBJobContext

    views = []
    real = DuckDBJobContext.materialize

    def materialize(self, df, spec, label):
        name = real(self, df, spec, label)
        if label != table:
            return name
        last = self._con.execute(f'SELECT max("{partition}") FROM "{name}"').fetchone()[0]
        view = f"{name}_failing"
        self._con.execute(
            f'CREATE VIEW "{view}" AS SELECT * REPLACE (CASE WHEN "{partition}" = DATE \'{last}\' '
            f"THEN error('injected failure mid-write') ELSE quantity END AS quantity) FROM \"{name}\"")
        views.append((self._con, view))
        return view

    monkeypatch.setattr(DuckDBJobContext, "materialize", materialize)
    return views


def test_a_failed_write_leaves_the_previous_objects(settings, cleaned_once, monkeypatch):
    import duckdb

    from lifecycle.jobs.engine.runner import run_job, run_lake_clean

    first, snapshot = cleaned_once
    views = _fail_in_last_partition(monkeypatch, "order_items", "order_date")
    try:
        # a full run: a plain COPY ... OVERWRITE would delete the table's objects first
        with pytest.raises(duckdb.Error, match="injected failure mid-write"):
            run_job(settings, "clean_sales", START, END, bookmark_option="job-bookmark-disable")
    finally:
        monkeypatch.undo()
        for con, view in views:
            con.execute(f'DROP VIEW IF EXISTS "{view}"')
    assert views, "the failure was not injected"

    # (a) readers see exactly the objects of before, each whole
    assert {zone: objects(settings, zone) for zone in ZONES} == snapshot
    _all_readable(settings, snapshot)
    # (b) nothing left in staging
    assert _staging_objects(settings) == []
    # (c) the retry rebuilds the same objects, and the lifecycle's next run finds them current
    retry = run_job(settings, "clean_sales", START, END, bookmark_option="job-bookmark-disable")
    assert retry["rows_out"] == {t: first["rows_out"][t] for t in retry["rows_out"]}
    assert {zone: objects(settings, zone) for zone in ZONES} == snapshot
    assert run_lake_clean(settings, START, END)["rejected"] == 0
    assert {zone: objects(settings, zone) for zone in ZONES} == snapshot
    assert read(settings, "SELECT count(*) FROM read_parquet('{clean}/order_items/*/*.parquet')") == [
        (first["rows_out"]["order_items"],)]
    assert _staging_objects(settings) == []


def test_a_killed_runs_staging_is_ignored_then_removed(settings, cleaned_once):
    from lifecycle.jobs.engine.runner import run_lake_clean
    from lifecycle.lake import catalog
    from lifecycle.lake.counts import lake_counts

    first, snapshot = cleaned_once
    s3 = aws(settings, "s3")
    # what a run killed mid-COPY (or before its clean-up) leaves: truncated Parquet under
    # its own staging prefix, with the table's key layout below it
    left = {"clean": f"{STAGING}clean_sales/20260101T000000-deadbeef/3/order_items/"
                     "order_date=2026-01-09/data_0.parquet",
            "quarantine": f"{STAGING}clean_events/20260101T000000-deadbeef/2/events/data_0.parquet"}
    for zone, key in left.items():
        s3.put_object(Bucket=settings.names.bucket(zone), Key=key, Body=b"PAR1 truncated")
    counts = lake_counts(settings)
    assert "2026-01-09" not in catalog.partition_values_in_s3(settings, catalog.CLEAN_TABLES["order_items"])
    assert read(settings, "SELECT count(*) FROM read_parquet('{clean}/order_items/*/*.parquet')") == [
        (first["rows_out"]["order_items"],)]

    second = run_lake_clean(settings, START, END)  # incremental, nothing new
    assert set(second["rows_out"].values()) <= {0}
    assert all(c["partitions_added"] == 0 for t, c in second["catalog"].items() if t in catalog.CLEAN_TABLES)
    assert catalog.list_tables(settings)["order_items"] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert lake_counts(settings) == counts
    assert _staging_objects(settings) == []
    assert {zone: objects(settings, zone) for zone in ZONES} == snapshot
