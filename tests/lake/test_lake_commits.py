"""A lake job that fails mid-write, or whose commit fails, leaves every table at its previous snapshot.

Input: the hand-written raw zone of ``test_jobs`` in moto S3, cleaned once.
Asserts: a DuckDB error raised while ``order_items``' rows are produced (after other tables
of the job were committed) propagates and leaves ``order_items`` at its snapshot, its rows
readable; a failed Glue commit (the data files of the new snapshot are already in S3: what a
writer killed just before its commit leaves) changes no snapshot and no row a reader sees,
the files it wrote are orphans no snapshot names; a retry commits the same rows.
"""

from __future__ import annotations

import pytest
from conftest import reset_lake
from raw_lake import END, START, objects, read, write_raw

from lifecycle.lake import iceberg
from lifecycle.lake.catalog import CLEAN_TABLES


def _snapshots(settings) -> dict[str, int | None]:
    return {t: d["snapshot_id"] for t, d in iceberg.describe_tables(settings, list(CLEAN_TABLES.values())).items()}


def _rows(settings) -> dict[str, list]:
    return {t: read(settings, f"SELECT * FROM {{clean.{t}}} ORDER BY ALL") for t in CLEAN_TABLES}


@pytest.fixture
def cleaned_once(settings):
    from lifecycle.jobs.engine.runner import run_lake_clean

    reset_lake(settings)
    write_raw(settings)
    first = run_lake_clean(settings, START, END)
    assert iceberg.partitions(settings, CLEAN_TABLES["order_items"])
    return first, _snapshots(settings), _rows(settings)


def _fail_in_last_partition(monkeypatch, table: str, partition: str) -> list:
    """Make reading ``table``'s output raise at the rows of its last ``partition`` value: a
    DuckDB error in the middle of the write, as an out-of-memory error would be. Returns the
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


def test_a_failed_write_leaves_the_previous_snapshot(settings, cleaned_once, monkeypatch):
    import duckdb

    from lifecycle.jobs.engine.runner import run_job, run_lake_clean

    first, snapshots, rows = cleaned_once
    views = _fail_in_last_partition(monkeypatch, "order_items", "order_date")
    try:
        with pytest.raises(duckdb.Error, match="injected failure mid-write"):
            run_job(settings, "clean_sales", START, END, bookmark_option="job-bookmark-disable")
    finally:
        monkeypatch.undo()
        for con, view in views:
            con.execute(f'DROP VIEW IF EXISTS "{view}"')
    assert views, "the failure was not injected"
    after = _snapshots(settings)
    # the tables written before order_items have new snapshots (of the same rows); order_items
    # and the tables after it are as they were
    assert after["order_items"] == snapshots["order_items"]
    assert after["order_status_history"] == snapshots["order_status_history"]
    assert after["orders"] != snapshots["orders"]
    assert _rows(settings) == rows
    # the retry commits the same rows, and the lifecycle's next run finds them current
    retry = run_job(settings, "clean_sales", START, END, bookmark_option="job-bookmark-disable")
    assert retry["rows_out"] == {t: first["rows_out"][t] for t in retry["rows_out"]}
    assert run_lake_clean(settings, START, END)["rejected"] == 0
    assert _rows(settings) == rows


def test_a_failed_commit_changes_nothing_a_reader_sees(settings, cleaned_once, monkeypatch):
    from pyiceberg.catalog.glue import GlueCatalog

    from lifecycle.jobs.engine.runner import run_job

    first, snapshots, rows = cleaned_once
    before = set(objects(settings, "clean"))

    def unreachable(self, table, requirements, updates):
        raise ConnectionError("injected: Glue unreachable at commit")

    monkeypatch.setattr(GlueCatalog, "commit_table", unreachable)
    with pytest.raises(ConnectionError, match="Glue unreachable"):
        run_job(settings, "clean_sales", START, END, bookmark_option="job-bookmark-disable")
    monkeypatch.undo()
    # the new snapshot's data files were written, and no snapshot names them
    orphans = {k for k in set(objects(settings, "clean")) - before if "/data/" in k}
    assert orphans
    current = {uri for spec in CLEAN_TABLES.values()
               for uri in iceberg.data_files(iceberg.load_table(settings, spec))}
    assert not {f"s3://{settings.names.bucket('clean')}/{k}" for k in orphans} & current
    assert _snapshots(settings) == snapshots and _rows(settings) == rows
    retry = run_job(settings, "clean_sales", START, END, bookmark_option="job-bookmark-disable")
    assert retry["rows_out"] == {t: first["rows_out"][t] for t in retry["rows_out"]}
    assert _rows(settings) == rows


def test_a_parquet_table_of_an_older_version_is_rebuilt_as_iceberg(settings, cleaned_once):
    """A Glue entry that is a plain Parquet table (as this project registered before the lake
    moved to Iceberg) under an incremental bookmark: the job rebuilds in full, as Iceberg."""
    from lifecycle.clients import aws
    from lifecycle.jobs.engine.runner import run_lake_clean

    _, _, rows = cleaned_once
    glue, db = aws(settings, "glue"), settings.names.clean_database
    glue.delete_table(DatabaseName=db, Name="orders")
    glue.create_table(DatabaseName=db, TableInput={
        "Name": "orders", "TableType": "EXTERNAL_TABLE", "Parameters": {"classification": "parquet"},
        "StorageDescriptor": {"Columns": [{"Name": "order_id", "Type": "bigint"}],
                              "Location": f"s3://{settings.names.bucket('clean')}/orders/"},
        "PartitionKeys": [{"Name": "order_date", "Type": "date"}]})
    result = run_lake_clean(settings, START, END)
    assert "no snapshot" in result["jobs"]["clean_sales"]["full_rebuild_reason"]
    assert iceberg.is_iceberg(glue.get_table(DatabaseName=db, Name="orders")["Table"])
    assert _rows(settings) == rows
