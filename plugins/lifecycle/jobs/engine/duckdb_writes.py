"""The DuckDB engine's lake writes: contract-checked, ordered, one Iceberg commit per table.

Input: a job's DataFrames (SQLFrame over DuckDB) and the lake table or quarantine source they
go to. Output: for a clean or curated table (``lifecycle.lake.iceberg.ICEBERG_ZONES``), one
snapshot commit through pyiceberg: a whole-table ``overwrite`` (``write_clean``), or an
overwrite of the partitions a merge touched (``upsert_clean``: CDC upserts and deletes in one
commit); a killed job leaves the table at its previous snapshot. A quarantine source is one
Parquet object (``<source>/data_0.parquet``), written by one ``COPY`` (a single S3 PUT or
multipart upload: readers see the old object or the new one, whole). The rows written, in the
context's ``metrics``.

``DuckDBWrites`` is the writing half of ``duckdb_context.DuckDBJobContext`` (which provides
the connection, the settings and scratch-table names).
"""

from __future__ import annotations

from lifecycle import faults
from lifecycle.jobs.engine.contract import FullRebuild, check_output
from lifecycle.lake import iceberg
from lifecycle.lake.catalog import (
    QUARANTINE,
    TableSpec,
    duckdb_type,
    lake_table,
    logical_from_duckdb,
    with_extra_columns,
)
from lifecycle.sql import ident, literal


class DuckDBWrites:
    """Writes of the DuckDB job context (mixed into ``DuckDBJobContext``, which provides
    ``_con``, ``_settings``, ``_table_name``, ``_count`` and the metrics)."""

    def materialize(self, df, spec: TableSpec, label: str) -> str:
        """Check ``df`` against the contract and materialize it in write order."""
        sql = df.sql(dialect="duckdb", optimize=False)
        got = [(r[0], r[1]) for r in self._con.execute(f"DESCRIBE SELECT * FROM ({sql})").fetchall()]
        spec = check_output(self, label, got, spec, duckdb_type, logical_from_duckdb)
        order = ([spec.partition[0]] if spec.partition else []) + list(spec.keys)
        name = self._table_name(f"out_{label}")
        self._con.execute(f"CREATE TABLE {ident(name)} AS SELECT * FROM ({sql}) "
                          f"ORDER BY {', '.join(ident(c) for c in order)}")
        return name

    def _arrow(self, name: str):
        return self._con.execute(f"SELECT * FROM {ident(name)}").to_arrow_table()

    def _copy_object(self, select_sql: str, bucket: str, key: str) -> None:
        """Write ``select_sql`` to the one Parquet object ``s3://<bucket>/<key>``."""
        # Multi-threaded COPY splits row groups at thread-dependent points, so the same rows
        # could give different bytes; one thread makes a rerun byte-identical (same ETag).
        threads = self._con.execute("SELECT current_setting('threads')").fetchone()[0]
        self._con.execute("SET threads = 1")
        try:
            self._con.execute(f"COPY ({select_sql}) TO {literal(f's3://{bucket}/{key}')} (FORMAT parquet)")
        finally:
            self._con.execute(f"SET threads = {int(threads)}")
        faults.point("lake.write")

    def write_clean(self, df, bucket: str, table: str) -> int:
        """Make ``df`` the whole content of lake ``table`` (at ``s3://<bucket>/<table>``): one
        ``overwrite`` snapshot (an ``append`` for the first), partitions no row is in any
        more disappear."""
        spec = lake_table(table)
        name = self.materialize(df, spec, table)
        target = iceberg.ensure_table(self._settings, self.specs.get(table, spec), bucket)
        faults.point("lake.staged")
        rows = iceberg.replace_rows(target, self._arrow(name))
        faults.point("lake.write")
        self.metrics["rows_out"][table] = rows
        return rows

    def upsert_clean(self, df, changed_keys, bucket: str, table: str) -> int:
        """Merge ``df`` into lake ``table`` by key: rows whose key is in ``changed_keys`` (a
        DataFrame of the key columns: updated, inserted and deleted keys) are replaced by the
        rows of ``df`` (none for a deleted key), in one commit that rewrites only the
        partitions holding a changed key, before or after (a partition left empty is
        dropped). The data files read are those whose key bounds (Iceberg's column
        statistics) may hold a changed key, and the touched partitions' files.

        In a full run this is ``write_clean(df)``: ``df`` is the whole table. An incremental
        run on a table with no snapshot (never written, or dropped by hand) rebuilds in full.
        """
        spec = lake_table(table)
        if not self.incremental:
            return self.write_clean(df, bucket, table)
        current = iceberg.load_table(self._settings, spec)
        if current is None or current.current_snapshot() is None:
            raise FullRebuild(f"{self.job_name}: lake table {table} has no snapshot to merge into")
        new = self.materialize(df, spec, table)
        spec = self.specs.get(table, spec)
        keys = self._table_name(f"keys_{table}")
        key_cols = ", ".join(ident(k) for k in spec.keys)
        self._con.execute(f"CREATE TABLE {ident(keys)} AS SELECT DISTINCT {key_cols} FROM "
                          f"({changed_keys.sql(dialect='duckdb', optimize=False)})")
        if not self._count(keys) and not self._count(new):
            self.metrics["rows_out"][table] = 0
            return 0  # nothing changed: no commit
        entries = iceberg.data_file_entries(current)
        files = {f.uri: f.partition for f in entries}
        # columns the table gained in earlier runs that this batch's rows do not carry
        known = {c for c, _ in spec.all_columns}
        earlier = [(f.name, iceberg.logical_type(f.field_type)) for f in current.schema().fields
                   if f.name not in known]
        if earlier:
            spec = with_extra_columns(spec, earlier)
            self.specs[table] = spec
            for col, logical in earlier:
                self._con.execute(f"ALTER TABLE {ident(new)} ADD COLUMN {ident(col)} {duckdb_type(logical)}")
        on = " AND ".join(f"e.{ident(k)} IS NOT DISTINCT FROM k.{ident(k)}" for k in spec.keys)
        select = ", ".join(ident(c) for c, _ in spec.all_columns)
        values: list[str] = []
        if spec.partition and files:
            part = ident(spec.partition[0])
            candidates = self._candidate_files(current, entries, keys, spec.keys[0])
            # which partitions hold a changed key now: the key columns of the candidates only
            held = []
            if candidates:
                key_scan = iceberg.files_sql(self._con, candidates, [
                    (c, t) for c, t in spec.all_columns if c in spec.keys or c == spec.partition[0]])
                held = self._con.execute(f"SELECT DISTINCT e.{part} FROM ({key_scan}) e WHERE EXISTS "
                                         f"(SELECT 1 FROM {ident(keys)} k WHERE {on})").fetchall()
            mine = self._con.execute(f"SELECT DISTINCT {part} FROM {ident(new)}").fetchall()
            values = sorted({iceberg.partition_value(r[0]) for r in held + mine})
            touched = set(values)
            files = {f: v for f, v in files.items() if v in touched}
        existing = self._table_name(f"existing_{table}")
        self._con.execute(f"CREATE TABLE {ident(existing)} "
                          f"({', '.join(f'{ident(c)} {duckdb_type(t)}' for c, t in spec.all_columns)})")
        if files:
            self._con.execute(f"INSERT INTO {ident(existing)} BY NAME "
                              f"{iceberg.files_sql(self._con, list(files), list(spec.all_columns))}")
        kept = (f"SELECT e.* FROM {ident(existing)} e "
                f"WHERE NOT EXISTS (SELECT 1 FROM {ident(keys)} k WHERE {on})")
        order = ", ".join(ident(c) for c in ([spec.partition[0]] if spec.partition else []) + list(spec.keys))
        merged = self._table_name(f"merged_{table}")
        self._con.execute(f"""CREATE TABLE {ident(merged)} AS SELECT {select} FROM (
            SELECT {select} FROM ({kept}) UNION ALL SELECT {select} FROM {ident(new)}) ORDER BY {order}""")
        # this batch's new columns, on the snapshot the merge was computed from
        target = iceberg.add_columns(current, spec)
        faults.point("lake.staged")
        iceberg.overwrite_partitions(target, self._arrow(merged), spec.partition[0] if spec.partition else None,
                                     values)
        faults.point("lake.write")
        rows = self._count(new)
        self.metrics["rows_out"][table] = rows
        self.metrics.setdefault("partitions_rewritten", {})[table] = len(values) if spec.partition else 1
        self.metrics.setdefault("files_read", {})[table] = len(files)
        return rows

    def _candidate_files(self, table, entries: list, values: str, column: str) -> list[str]:
        """The data files (of ``entries``, the snapshot's ``iceberg.data_file_entries``) that
        may hold a row whose ``column`` is among the values of scratch table ``values``: pruned
        on the files' bounds of that column (``iceberg.files_holding``: a new order's id is
        above every file's maximum, so no file is read)."""
        wanted = [r[0] for r in self._con.execute(
            f"SELECT DISTINCT {ident(column)} FROM {ident(values)} WHERE {ident(column)} IS NOT NULL").fetchall()]
        return iceberg.files_holding(table, entries, column, wanted) if wanted else []

    def merge_quarantine(self, df, bucket: str, source: str) -> int:
        """Add this run's rejected records to ``<source>/data_0.parquet`` (an incremental run),
        or replace it (a full run): either way it holds every rejected raw record once."""
        key = f"{source}/data_0.parquet"
        if not self.incremental or not self.list_keys(bucket, key):
            return self.write_quarantine(df, bucket, source)
        new = self.materialize(df, QUARANTINE, f"quarantine_{source}")
        rows = self._count(new)
        if rows:
            cols = ", ".join(ident(c) for c in QUARANTINE.column_names)
            order = ", ".join(ident(c) for c in QUARANTINE.keys)
            merged = self._table_name(f"merged_quarantine_{source}")
            self._con.execute(
                f"CREATE TABLE {ident(merged)} AS SELECT {cols} FROM ("
                f"SELECT {cols} FROM read_parquet({literal(f's3://{bucket}/{key}')}) "
                f"UNION ALL SELECT {cols} FROM {ident(new)}) ORDER BY {order}")
            self._copy_object(f"SELECT * FROM {ident(merged)}", bucket, key)
        self.metrics["rejected"] += rows
        return rows

    def write_quarantine(self, df, bucket: str, source: str) -> int:
        """Replace ``<source>/data_0.parquet``: every record of the raw zone rejected, with why.

        Jobs rebuild their outputs from the whole raw zone, so the quarantine is a table of
        current state like the clean tables: clean + quarantine = every raw record, once.
        """
        name = self.materialize(df, QUARANTINE, f"quarantine_{source}")
        self._copy_object(f"SELECT * FROM {ident(name)}", bucket, f"{source}/data_0.parquet")
        rows = self._count(name)
        self.metrics["rejected"] += rows
        return rows

    def hold_back_columns(self, table: str, columns: list[str]) -> None:
        """Record source columns a job deliberately kept out of the clean zone (e.g. possible
        PII on a PII table: a person must decide how to mask it before it flows)."""
        if columns:
            self.metrics["columns_held_back"][table] = list(columns)

    def add_rejected(self, rows: int) -> None:
        """Count records a job dropped without a quarantine row (e.g. unusable export lines)."""
        self.metrics["rejected"] += rows

