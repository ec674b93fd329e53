"""The same Glue-style jobs on both engines give the same lake: DuckDB (SQLFrame) vs real PySpark.

Input: two simulated days (10 % bad events, late events, review edits and deletes) ingested
into the raw zone on moto as the DAGs would (DMS LOAD + CDC, Firehose objects, a DynamoDB
export + its stream), plus the hand-written edge cases of test_jobs (malformed and
duplicate-key JSON, an object that is not UTF-8, an oversized record) and a GZIP object.
1. ``run_lake_clean`` on DuckDB writes the clean zone and the quarantine to moto.
2. The raw bucket and the PII salt are mirrored to a local directory; ``run_job_spark``
   runs the same job modules on PySpark (local[2], one JVM) into that directory.
Asserts, per clean table and the events quarantine: the same column names and types, the
same rows, the same partitions, the same run metrics; then ``upsert_clean`` and the
quarantine append of the Spark context (tests/spark_probe/spark_upsert_probe.py).

Skips only when ``java`` or ``pyspark`` is missing (``make install`` adds pyspark when it
finds Java; README "Spark engine").
"""

from __future__ import annotations

import gzip
import importlib.metadata
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from conftest import reset_environment, tool_missing

from lifecycle.clients import aws
from lifecycle.lake.catalog import CLEAN_TABLES

ORDERS = CLEAN_TABLES["orders"]


def _spark_missing() -> str | None:
    if shutil.which("java") is None:
        return "java not found: install a JDK 17 (README, 'Spark engine') to run the Spark engine test"
    try:
        importlib.metadata.version("pyspark")
    except importlib.metadata.PackageNotFoundError:
        return "pyspark not installed: `make install` installs requirements-spark.lock when java is found"
    return None




@pytest.fixture(autouse=True, scope="module")
def _spark():
    """Java and pyspark, or a skip (a failure under CI=true: conftest.tool_missing)."""
    if (missing := _spark_missing()) is not None:
        tool_missing(missing)

DAY1, DAY2 = date(2026, 3, 10), date(2026, 3, 11)
START = datetime(2026, 3, 11, tzinfo=UTC)
END = datetime(2026, 3, 12, tzinfo=UTC)
PROBE = Path(__file__).parent / "spark_probe"
GZ_KEY = "events/2026/03/11/09/user-activity-1-2026-03-11-09-00-00-gzip-000.gz"


def _ingest(settings, point_in_time: datetime) -> None:
    from lifecycle.ingest import reviews, sales_cdc, user_activity

    sales_cdc.run(settings)
    user_activity.run(settings)
    reviews.run(settings, point_in_time)


@pytest.fixture(scope="module")
def engines(settings, tmp_path_factory):
    from raw_lake import EV3, EV3_BODY, RAW_EVENTS

    from lifecycle.jobs.engine.contract import JOBS, job_arguments
    from lifecycle.jobs.engine.runner import run_lake_clean
    from lifecycle.jobs.engine.spark_context import run_job_spark
    from lifecycle.jobs.engine.spark_lake import mirror_lake
    from lifecycle.sources.simulator import change_reviews, simulate_day

    reset_environment(settings)
    simulate_day(settings, DAY1, scale=40, bad_rate=0.1, late_rate=0.05)
    _ingest(settings, datetime(2026, 3, 11, 0, 30, tzinfo=UTC))
    simulate_day(settings, DAY2, scale=30, bad_rate=0.1, late_rate=0.05)
    change_reviews(settings, DAY2, seed=42, n_updates=3, n_deletes=2)
    _ingest(settings, datetime(2026, 3, 12, 0, 30, tzinfo=UTC))
    s3, raw = aws(settings, "s3"), settings.names.bucket("raw")
    for key, lines in RAW_EVENTS.items():  # the hand-written edge cases of test_jobs
        s3.put_object(Bucket=raw, Key=key.replace("2026/01/02", "2026/03/11"), Body="\n".join(lines).encode())
    s3.put_object(Bucket=raw, Key=EV3.replace("2026/01/02", "2026/03/11"), Body=EV3_BODY)
    s3.put_object(Bucket=raw, Key=GZ_KEY, Body=gzip.compress("\n".join(RAW_EVENTS[next(iter(RAW_EVENTS))][:3])
                                                              .replace("e1", "g1").encode()))

    duck = run_lake_clean(settings, START, END)

    root = tmp_path_factory.mktemp("spark-lake")
    mirror_lake(settings, root)
    spark = run_job_spark([*JOBS, "spark_upsert_probe"], root,
                          [*job_arguments(settings, "x", START, END), "--probe_bucket", "probe"],
                          extra_path=[str(PROBE)])
    jobs = {j: spark[j]["duration_s"] for j in [*JOBS, "spark_upsert_probe"]}
    print(f"\nspark process (JVM start + {len(JOBS)} jobs + probe): {spark['spark_seconds']} s {jobs}; "
          f"duckdb: {duck['duration_s']} s")
    return {"duck": duck, "spark": spark, "root": root}


def _duck():
    import duckdb

    return duckdb.connect()


def _s3_con(settings):
    from lifecycle.clients import connect_duckdb

    return connect_duckdb(settings)


def _snapshot(con, glob: str, partitioned: bool):
    rel = f"read_parquet('{glob}', hive_partitioning={'true' if partitioned else 'false'})"
    cols = [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
    rows = con.execute(f"SELECT * FROM {rel} ORDER BY ALL").fetchall()
    return cols, rows


def _table_rows(con, lake, bucket: str) -> list[tuple]:
    table = lake.iceberg_catalog().load_table(lake.iceberg_identifier(ORDERS, bucket))
    return con.execute(f"SELECT * FROM iceberg_scan('{table.metadata_location}') ORDER BY ALL").fetchall()


def _iceberg_snapshot(con, metadata_location: str):
    rel = f"iceberg_scan('{metadata_location}')"
    cols = [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
    return cols, con.execute(f"SELECT * FROM {rel} ORDER BY ALL").fetchall()


def test_every_clean_and_curated_table_is_identical(settings, engines):
    from lifecycle.jobs.engine.spark_lake import LocalLake
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import CLEAN_TABLES, CURATED_TABLES

    s3con = _s3_con(settings)
    lake = LocalLake(engines["root"])
    try:
        for name, spec in {**CLEAN_TABLES, **CURATED_TABLES}.items():
            # both engines committed an Iceberg table: DuckDB's to the Glue Catalog, Spark's
            # to the local mirror's catalog
            d_cols, d_rows = _iceberg_snapshot(s3con, iceberg.metadata_location(settings, spec))
            spark_table = lake.iceberg_catalog().load_table(
                lake.iceberg_identifier(spec, settings.names.bucket(spec.zone)))
            s_cols, s_rows = _iceberg_snapshot(s3con, spark_table.metadata_location)
            duck_table = iceberg.load_table(settings, spec)
            assert spark_table.spec() == duck_table.spec() and spark_table.schema() == duck_table.schema(), name
            assert d_cols == s_cols, f"{name}: column names/types differ"
            assert len(d_rows) > 0, f"{name}: the data set should exercise every table"
            assert d_rows == s_rows, f"{name}: rows differ ({len(d_rows)} vs {len(s_rows)})"
            if spec.partition:
                spark_parts = sorted({v for v in iceberg.data_files(spark_table).values()})
                assert iceberg.partitions(settings, spec) == spark_parts, f"{name}: partitions differ"
    finally:
        s3con.close()


def test_quarantine_is_identical(settings, engines):
    q = settings.names.bucket("quarantine")
    s3con, local = _s3_con(settings), _duck()
    try:
        d = _snapshot(s3con, f"s3://{q}/events/*.parquet", False)
        s = _snapshot(local, f"{engines['root']}/{q}/events/*.parquet", False)
    finally:
        s3con.close()
        local.close()
    assert d == s
    reasons = {r[1] for r in d[1]}
    # the edge cases reached quarantine on both engines with the same reasons and payloads
    assert {"malformed_json", "duplicate_event_id", "oversized_record", "missing_field"} <= reasons
    assert any("\\xff\\xfe" in r[2] for r in d[1]), "the non-UTF-8 line keeps its escaped bytes"


def test_run_metrics_agree(engines):
    duck, spark = engines["duck"]["jobs"], engines["spark"]
    for job, d in duck.items():
        s = spark[job]
        assert s["rows_out"] == d["rows_out"], job
        assert s["rows_in"] == d["rows_in"], job
        assert s["files_in"] == d["files_in"], job
        assert s["rejected"] == d["rejected"], job


def test_spark_upsert_and_quarantine_append(settings, engines):
    from lifecycle.jobs.engine.spark_lake import LocalLake
    from lifecycle.lake import iceberg

    root, probe = engines["root"], engines["spark"]["spark_upsert_probe"]["probe"]
    lake = LocalLake(root)
    con = _s3_con(settings)
    try:
        clean = _table_rows(con, lake, settings.names.bucket("clean"))
        merged = _table_rows(con, lake, "probe")
        fresh = _table_rows(con, lake, "probe/fresh")
        quarantined = con.execute(f"SELECT count(*), count(DISTINCT filename) FROM read_parquet("
                                  f"'{root}/probe/quarantine/probe/*.parquet', filename=true)").fetchone()
    finally:
        con.close()
    by_id = {r[0]: r for r in clean}
    gone = {probe["deleted"], *probe["oldest"]}
    updated = by_id[probe["updated"]]
    added = (probe["added"], *updated[1:-1], date(2030, 1, 1))
    want = sorted([r for r in clean if r[0] not in gone | {probe["updated"]}]
                  + [(updated[0], updated[1], "probe", *updated[3:]), added])
    assert merged == want
    probe_orders = lake.iceberg_catalog().load_table(lake.iceberg_identifier(ORDERS, "probe"))
    parts = set(iceberg.data_files(probe_orders).values())
    assert probe["dates"][0] not in parts, "an emptied partition must disappear"
    assert "2030-01-01" in parts
    # the write (an append), then the upsert: a delete of the rewritten partitions' files and
    # an append of their merged rows, two snapshots made current by one commit (three
    # metadata files: created, written, upserted)
    assert [s.summary.operation.value for s in probe_orders.snapshots()] == ["append", "delete", "append"]
    assert len(probe_orders.metadata.metadata_log) == 2
    assert fresh == sorted([(updated[0], updated[1], "probe", *updated[3:]), added])
    assert quarantined == (4, 2), "each quarantine write appends its own object"
    lpad = engines["spark"]["spark_upsert_probe"]["lpad"]
    assert lpad == [["*******4567"] * 2, ["12"] * 2, [None, None]], "the Spark 3.5 lpad shim"
