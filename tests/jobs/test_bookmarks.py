"""Job bookmarks: a second run processes only what arrived since the first, and a reset
reprocesses everything into the same tables.

Real data: two simulated days through the real ingestion (logical-decoding CDC, Kinesis
consumer, DynamoDB export + stream), then the lake jobs on DuckDB.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from conftest import reset_environment
from raw_lake import table_sql

from lifecycle.clients import aws

D1, D2 = date(2026, 9, 1), date(2026, 9, 2)
START, END = datetime(2026, 9, 2, tzinfo=UTC), datetime(2026, 9, 3, tzinfo=UTC)


def _ingest(settings, day: date) -> None:
    from lifecycle.ingest import reviews, sales_cdc, user_activity
    from lifecycle.sources.simulator import simulate_day

    simulate_day(settings, day, scale=40, bad_rate=0.1, late_rate=0.1)
    sales_cdc.run(settings)
    user_activity.run(settings)
    reviews.run(settings, datetime(day.year, day.month, day.day, 23, tzinfo=UTC))


def _keys(settings, zone: str, prefix: str) -> set[str]:
    s3, out = aws(settings, "s3"), set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.names.bucket(zone), Prefix=prefix):
        out.update(o["Key"] for o in page.get("Contents", []))
    return out


def lake_state(settings) -> dict[str, list[tuple]]:
    """Every clean and curated table and the events quarantine, as sorted rows."""
    from lifecycle.clients import connect_duckdb
    from lifecycle.lake.catalog import CLEAN_TABLES, CURATED_TABLES

    con = connect_duckdb(settings)
    out = {}
    try:
        for spec in [*CLEAN_TABLES.values(), *CURATED_TABLES.values()]:
            cols = ", ".join(f'"{c}"' for c in spec.column_names)
            out[spec.name] = con.execute(f"SELECT {cols} FROM {table_sql(settings, spec)} ORDER BY ALL").fetchall()
        out["quarantine.events"] = con.execute(
            f"SELECT * FROM read_parquet('s3://{settings.names.bucket('quarantine')}/events/data_0.parquet') "
            "ORDER BY ALL").fetchall()
    finally:
        con.close()
    return out


@pytest.fixture(scope="module")
def two_runs(settings):
    from lifecycle.jobs.engine.runner import run_lake_clean

    reset_environment(settings)
    _ingest(settings, D1)
    first = run_lake_clean(settings, START, END)
    before = {"sales": _keys(settings, "raw", "sales/public/orders/"),
              "events": _keys(settings, "raw", "events/")}
    _ingest(settings, D2)
    after = {"sales": _keys(settings, "raw", "sales/public/orders/"),
             "events": _keys(settings, "raw", "events/")}
    second = run_lake_clean(settings, START, END)
    return first, second, {k: after[k] - before[k] for k in after}, lake_state(settings)


def test_first_run_is_full_second_only_reads_new_objects(two_runs):
    first, second, new, _ = two_runs
    assert {j["mode"] for j in first["jobs"].values()} == {"full"}
    assert {j["mode"] for j in second["jobs"].values()} == {"incremental"}
    assert new["sales"] and new["events"]
    assert second["jobs"]["clean_sales"]["files_in"]["orders"] == len(new["sales"])
    assert second["jobs"]["clean_events"]["files_in"]["events"] == len(new["events"])
    # only the partitions holding a changed key are rewritten
    rewritten = second["jobs"]["clean_events"]["partitions_rewritten"]["events"]
    assert 0 < rewritten < len(_keys_partitions(two_runs[3]["events"]))


def _keys_partitions(rows) -> set:
    return {r[-1] for r in rows}


def test_a_rerun_with_nothing_new_reads_nothing(settings, two_runs):
    from lifecycle.jobs.engine.runner import run_lake_clean

    third = run_lake_clean(settings, START, END)
    assert all(set(j["files_in"].values()) <= {0} for name, j in third["jobs"].items()
               if name in ("clean_sales", "clean_events"))
    assert set(third["rows_out"].values()) <= {0}
    assert lake_state(settings) == two_runs[3]


def test_reset_reprocesses_everything_into_identical_tables(settings, two_runs):
    from lifecycle.jobs.engine import bookmarks
    from lifecycle.jobs.engine.contract import JOBS
    from lifecycle.jobs.engine.runner import run_lake_clean

    incremental = two_runs[3]
    assert sorted(bookmarks.reset(settings, list(JOBS))) == sorted(JOBS)
    full = run_lake_clean(settings, START, END)
    assert {j["mode"] for j in full["jobs"].values()} == {"full"}
    assert lake_state(settings) == incremental
    assert all(incremental[t] for t in ("orders", "order_items", "events", "sessions", "reviews",
                                         "order_status_history", "product_features", "training_repeat_purchase"))


def test_a_run_that_died_half_way_is_followed_by_a_full_one(settings, two_runs, monkeypatch):
    """The bookmark is marked in flight before the first write; a crash leaves it so."""
    from lifecycle.jobs.engine import runner
    from lifecycle.jobs.engine.duckdb_context import DuckDBJobContext

    def crash(*args, **kwargs):
        raise RuntimeError("worker killed")

    with monkeypatch.context() as m:
        m.setattr(DuckDBJobContext, "merge_quarantine", crash)
        with pytest.raises(RuntimeError, match="worker killed"):
            runner.run_job(settings, "clean_events", START, END)
    again = runner.run_job(settings, "clean_events", START, END)
    assert again["mode"] == "full"
    assert lake_state(settings) == two_runs[3]


def test_job_run_metadata_is_in_cloudwatch(settings, two_runs):
    from datetime import timedelta

    now = datetime.now(UTC)
    resp = aws(settings, "cloudwatch").get_metric_statistics(
        Namespace=settings.names.metrics_namespace, MetricName="JobRowsIn",
        Dimensions=[{"Name": "Job", "Value": "clean_sales"}, {"Name": "Target", "Value": settings.target}],
        StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=5), Period=3600,
        Statistics=["Sum"])
    first, second = two_runs[0], two_runs[1]
    total = sum(p["Sum"] for p in resp["Datapoints"])
    assert total >= sum(first["jobs"]["clean_sales"]["rows_in"].values()) + sum(
        second["jobs"]["clean_sales"]["rows_in"].values())


def test_curated_tables_are_in_the_catalog_as_written(settings, two_runs):
    """lake_curated: every curated table an Iceberg table in the Glue Catalog (table_type,
    Glue's metadata_location is pyiceberg's current metadata file) with its contract's columns
    at its S3 prefix, one overwrite snapshot per run that changed it; and the training set's
    label both ways (a set a model can learn from)."""
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import CURATED_TABLES

    glue = aws(settings, "glue")
    for name, spec in CURATED_TABLES.items():
        table = glue.get_table(DatabaseName=settings.names.curated_database, Name=name)["Table"]
        assert table["Parameters"]["table_type"] == "ICEBERG"
        found = iceberg.load_table(settings, spec)
        assert table["Parameters"]["metadata_location"] == found.metadata_location
        assert found.metadata_location.startswith(f"s3://{settings.names.bucket('curated')}/{name}/metadata/")
        assert [f.name for f in found.schema().fields] == spec.column_names
        assert found.metadata.format_version == 2
        # a rewrite is one commit of pyiceberg's overwrite: a delete and an append snapshot
        assert {s.summary.operation.value for s in found.snapshots()} <= {"delete", "append"}
        keys = _keys(settings, "curated", f"{name}/")
        assert keys and all(k.startswith((f"{name}/data/", f"{name}/metadata/")) for k in keys)
    training = two_runs[3]["training_repeat_purchase"]
    assert {row[-1] for row in training} == {True, False}
    # no leakage: every feature row describes the time before the cutoff
    assert all(row[1] < date(2026, 9, 3) and row[2] >= 1 for row in training)
