"""Iceberg in the Glue Catalog on the project's moto: optimistic concurrency, two writers, readers.

Input: the session's moto server (``lifecycle.ops.moto_server``) and a scratch Glue database.
Asserts: Glue ``UpdateTable`` with a stale ``VersionId`` is rejected with
``ConcurrentModificationException`` (a current one and none are accepted), as on AWS; two
processes appending to one Iceberg table at the same moment lose no row (each commit either
wins or is retried by pyiceberg on the new metadata); DuckDB's ``iceberg_scan`` of the
location Glue names returns what pyiceberg wrote, and ``snapshot_from_id`` reads an older
snapshot; a table gains a column without a rewrite (its data files stay).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest
from conftest import lifecycle_env

from lifecycle.clients import aws, connect_duckdb
from lifecycle.lake import iceberg
from lifecycle.lake.catalog import TableSpec

DATABASE = "iceberg_probe"
# a zone of its own (bucket <prefix>-icebergprobe), so the lake's zones stay as the jobs left them
SPEC = TableSpec("probe", (("id", "bigint"), ("label", "string")), ("id",), ("day", "date"), zone="icebergprobe")


def _probe_settings(settings):
    return replace(settings, names=replace(settings.names, clean_database=DATABASE, curated_database=DATABASE))


@pytest.fixture
def probe(settings):
    """Settings whose Glue database is a scratch one with no ``probe`` table, and the probe's
    bucket, empty; emptied again afterwards."""
    glue, s3, bucket = aws(settings, "glue"), aws(settings, "s3"), settings.names.bucket(SPEC.zone)
    try:
        glue.create_database(DatabaseInput={"Name": DATABASE})
    except glue.exceptions.AlreadyExistsException:
        pass
    try:
        glue.delete_table(DatabaseName=DATABASE, Name=SPEC.name)
    except glue.exceptions.EntityNotFoundException:
        pass

    def empty():
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            if page.get("Contents"):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": o["Key"]} for o in page["Contents"]]})

    where = ({} if settings.aws.region == "us-east-1"
             else {"CreateBucketConfiguration": {"LocationConstraint": settings.aws.region}})
    try:
        s3.create_bucket(Bucket=bucket, **where)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        empty()
    yield _probe_settings(settings)
    empty()


def _rows(first: int, n: int):
    import datetime as dt

    import pyarrow as pa

    return pa.table({"id": pa.array(range(first, first + n), pa.int64()),
                     "label": pa.array([f"row {i}" for i in range(first, first + n)]),
                     "day": pa.array([dt.date(2026, 1, 1 + i % 3) for i in range(n)], pa.date32())})


def _scan(settings, sql_tail: str = "", **kwargs):
    with connect_duckdb(settings) as con:
        return con.execute(f"SELECT count(*), count(DISTINCT id), sum(id) FROM "
                           f"{iceberg.scan_sql(settings, SPEC, **kwargs)} {sql_tail}").fetchone()


def test_glue_update_table_honours_version_id(settings, probe):
    glue = aws(settings, "glue")
    table = {"Name": "versioned", "Parameters": {"n": "0"}}
    try:
        glue.delete_table(DatabaseName=DATABASE, Name="versioned")
    except glue.exceptions.EntityNotFoundException:
        pass
    glue.create_table(DatabaseName=DATABASE, TableInput=table)
    read = glue.get_table(DatabaseName=DATABASE, Name="versioned")["Table"]["VersionId"]
    glue.update_table(DatabaseName=DATABASE, TableInput={**table, "Parameters": {"n": "1"}}, VersionId=read)
    with pytest.raises(glue.exceptions.ConcurrentModificationException):
        # the version read before the update above: another writer's commit came in between
        glue.update_table(DatabaseName=DATABASE, TableInput={**table, "Parameters": {"n": "2"}}, VersionId=read)
    glue.update_table(DatabaseName=DATABASE, TableInput={**table, "Parameters": {"n": "3"}})  # unconditional
    got = glue.get_table(DatabaseName=DATABASE, Name="versioned")["Table"]
    assert got["Parameters"] == {"n": "3"} and int(got["VersionId"]) == int(read) + 2


WRITER = textwrap.dedent("""
    import sys, time
    from dataclasses import replace
    from lifecycle.settings import Settings
    from lifecycle.lake import iceberg
    sys.path.insert(0, {tests!r})
    from lake.test_iceberg import DATABASE, SPEC, _rows
    from lake.test_iceberg import _probe_settings
    s = _probe_settings(Settings.from_env())
    table = iceberg.ensure_table(s, SPEC)
    first = int(sys.argv[1])
    while time.time() < float(sys.argv[2]):  # both writers start their commits together
        time.sleep(0.005)
    for batch in range(5):
        table.append(_rows(first + batch * 2000, 2000))
""")


def test_two_writers_at_once_lose_nothing(settings, probe):
    import time
    from pathlib import Path

    iceberg.ensure_table(probe, SPEC)
    start = str(time.time() + 6)  # after both processes have imported and loaded the table
    code = WRITER.format(tests=str(Path(__file__).parents[1]))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(first), start], env=lifecycle_env(settings),
                              stderr=subprocess.PIPE, text=True) for first in (0, 100_000)]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    count, distinct, total = _scan(probe)
    assert (count, distinct) == (20_000, 20_000)
    assert total == sum(range(10_000)) + sum(range(100_000, 110_000))
    table = iceberg.load_table(probe, SPEC)
    assert len([s for s in table.snapshots() if s.summary.operation.value == "append"]) == 10


def test_reads_as_of_a_snapshot_and_columns_added_without_rewrite(settings, probe):
    table = iceberg.ensure_table(probe, SPEC)
    table.append(_rows(0, 300))
    first = iceberg.load_table(probe, SPEC).current_snapshot().snapshot_id
    table = iceberg.load_table(probe, SPEC)
    table.append(_rows(300, 200))
    assert _scan(probe)[:2] == (500, 500)
    assert _scan(probe, as_of=str(first))[:2] == (300, 300)
    assert _scan(probe, "WHERE day = DATE '2026-01-02'")[0] == len([i for i in range(500) if i % 3 == 1])
    # lifecycle query resolves the table through Glue and travels in time by snapshot or by time
    from datetime import UTC, datetime

    from lifecycle.lake.query import LakeSqlError, run_duckdb

    sql = f"SELECT count(*) FROM {DATABASE}.probe"
    assert run_duckdb(probe, sql).rows == [(500,)]
    assert run_duckdb(probe, sql, as_of=str(first)).rows == [(300,)]
    assert run_duckdb(probe, sql, as_of=datetime.now(UTC).isoformat()).rows == [(500,)]
    with pytest.raises(LakeSqlError, match="snapshot id or an ISO 8601"):
        run_duckdb(probe, sql, as_of="last tuesday")

    files = set(iceberg.load_table(probe, SPEC).inspect.files().column("file_path").to_pylist())
    wider = replace(SPEC, columns=SPEC.columns + (("note", "string"),))
    table = iceberg.ensure_table(probe, wider)
    assert [f.name for f in table.schema().fields] == ["id", "label", "day", "note"]
    assert set(table.inspect.files().column("file_path").to_pylist()) == files
    with connect_duckdb(probe) as con:
        assert con.execute(f"SELECT count(note), count(*) FROM {iceberg.scan_sql(probe, wider)}").fetchone() \
            == (0, 500)


def test_no_table_reads_as_empty_with_the_contract_columns(settings, probe):
    with connect_duckdb(probe) as con:
        rel = iceberg.scan_sql(probe, SPEC)
        assert con.execute(f"SELECT * FROM {rel}").fetchall() == []
        assert [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()] == ["id", "label", "day"]
