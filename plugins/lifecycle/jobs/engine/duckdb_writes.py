"""The DuckDB engine's lake writes: contract-checked, ordered, written through a staging prefix.

Input: a job's DataFrames (SQLFrame over DuckDB) and the lake table or quarantine source they
go to. Output: for a table of an Iceberg zone (``lifecycle.lake.iceberg.ICEBERG_ZONES``), one snapshot
commit through pyiceberg; otherwise Parquet objects in the bucket (``COPY ... PARTITION_BY``),
written under ``_lifecycle/staging/`` first and promoted when whole (``lifecycle.lake.staging``),
so a failed write leaves the previous objects; the rows written, in the context's ``metrics``.

``DuckDBWrites`` is the writing half of ``duckdb_context.DuckDBJobContext`` (which provides
the connection, the settings, scratch-table names and the listings it uses).
"""

from __future__ import annotations

from lifecycle import faults
from lifecycle.clients import aws
from lifecycle.jobs.engine.contract import check_output, table_objects
from lifecycle.lake import iceberg, staging
from lifecycle.lake.catalog import (
    CLEAN_TABLES,
    QUARANTINE,
    TableSpec,
    duckdb_type,
    effective_spec,
    lake_table,
    logical_from_duckdb,
    with_extra_columns,
)
from lifecycle.sql import ident, literal


class DuckDBWrites:
    """Writes of the DuckDB job context (mixed into ``DuckDBJobContext``, which provides
    ``_con``, ``_settings``, ``_table_name``, ``_count``, ``_file_list``,
    ``list_objects``, the staging run token and the metrics)."""

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

    def _copy(self, select_sql: str, bucket: str, path: str, options: str, replace: bool = False) -> None:
        """Write ``select_sql`` to ``s3://<bucket>/<path>`` (an object, or a table prefix with
        ``PARTITION_BY`` in ``options``) through a staging prefix (``lifecycle.lake.staging``):
        readers see the previous objects until the COPY succeeded, then whole new ones.
        ``replace``: the write is the whole table: objects under ``<path>/`` it did not
        produce are deleted after the promotion (DuckDB's ``OVERWRITE``)."""
        self._writes += 1
        staged = f"{staging.job_prefix(self.job_name)}{self._run_token}/{self._writes}/"
        s3 = aws(self._settings, "s3")
        partitioned = "PARTITION_BY" in options
        # Multi-threaded COPY splits row groups at thread-dependent points, so the same rows
        # could give different bytes; the materialized, ordered table is written by one
        # thread so a rerun gives byte-identical objects (same ETags).
        threads = self._con.execute("SELECT current_setting('threads')").fetchone()[0]
        self._con.execute("SET threads = 1")
        try:
            target = f"s3://{bucket}/{staged}{path}"
            self._con.execute(f"COPY ({select_sql}) TO {literal(target)} "
                              f"({options}{', OVERWRITE_OR_IGNORE' if partitioned else ''})")
            faults.point("lake.staged")
            done = staging.promote(s3, bucket, staged, f"{path}/" if replace else None)
        except BaseException:
            staging.discard(s3, bucket, staged)
            raise
        finally:
            self._con.execute(f"SET threads = {int(threads)}")
        faults.point("lake.write")
        staging.discard(s3, bucket, staged, done)

    def write_clean(self, df, bucket: str, table: str) -> int:
        """Replace lake ``table`` with ``df`` (all partitions: stale ones disappear). A table
        of an Iceberg zone gets one ``overwrite`` snapshot; a Parquet one is written through
        the staging prefix."""
        spec = lake_table(table)
        name = self.materialize(df, spec, table)
        if spec.zone in iceberg.ICEBERG_ZONES:
            target = iceberg.ensure_table(self._settings, self.specs.get(table, spec), bucket)
            rows = iceberg.replace_rows(target, self._con.execute(f"SELECT * FROM {ident(name)}").to_arrow_table())
            faults.point("lake.write")
            self.metrics["rows_out"][table] = rows
            return rows
        if spec.partition:
            self._copy(f"SELECT * FROM {ident(name)}", bucket, table,
                       f"FORMAT parquet, PARTITION_BY ({ident(spec.partition[0])})", replace=True)
        else:
            self._copy(f"SELECT * FROM {ident(name)}", bucket, f"{table}/data_0.parquet", "FORMAT parquet")
        rows = self._count(name)
        self.metrics["rows_out"][table] = rows
        return rows

    def upsert_clean(self, df, changed_keys, bucket: str, table: str) -> int:
        """Merge ``df`` into clean ``table`` by key: rows whose key is in ``changed_keys`` (a
        DataFrame of the key columns: updated, inserted and deleted keys) are replaced by
        the rows of ``df`` (none for a deleted key). Only the partitions that hold a changed
        key, before or after, are rewritten; a partition left empty is deleted.

        In a full run (or before the table exists) this is ``write_clean(df)``: ``df`` is the
        whole table. Like a MERGE on an Iceberg/Hudi table, done with plain Parquet here.
        """
        spec = lake_table(table)
        objects = self.list_objects(bucket, table_objects(spec))
        if not self.incremental or not objects:
            return self.write_clean(df, bucket, table)
        new = self.materialize(df, spec, table)
        spec = self.specs.get(table, spec)
        keys = self._table_name(f"keys_{table}")
        key_cols = ", ".join(ident(k) for k in spec.keys)
        self._con.execute(f"CREATE TABLE {ident(keys)} AS SELECT DISTINCT {key_cols} FROM "
                          f"({changed_keys.sql(dialect='duckdb', optimize=False)})")
        source = (f"read_parquet({self._file_list(bucket, list(objects))}, union_by_name=true, "
                  f"hive_partitioning={str(bool(spec.partition)).lower()})")
        # columns added to the table by earlier runs that this batch's rows do not carry
        known = {c for c, _ in spec.all_columns}
        earlier = [(r[0], logical_from_duckdb(r[1]))
                   for r in self._con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall() if r[0] not in known]
        if earlier:
            spec = with_extra_columns(spec, earlier)
            self.specs[table] = spec
            for col, logical in earlier:
                self._con.execute(f"ALTER TABLE {ident(new)} ADD COLUMN {ident(col)} {duckdb_type(logical)}")
        ddl = ", ".join(f"{ident(c)} {duckdb_type(t)}" for c, t in spec.all_columns)
        on = " AND ".join(f"e.{ident(k)} IS NOT DISTINCT FROM k.{ident(k)}" for k in spec.keys)
        select = ", ".join(ident(c) for c, _ in spec.all_columns)
        files, values = list(objects), []
        if spec.partition:
            part = ident(spec.partition[0])
            # a column added since the last write: rewrite every partition so that every
            # object of the table has the catalog's schema (readers that do not union by
            # name see one schema)
            registered = [c for c, _ in effective_spec(self._settings, table).columns] \
                if table in CLEAN_TABLES else [c for c, _ in spec.columns]
            every = registered != [c for c, _ in spec.columns]
            # which partitions hold a changed key now: a scan of the key columns only
            touched = "" if every else f"WHERE EXISTS (SELECT 1 FROM {ident(keys)} k WHERE {on})"
            values = sorted({str(r[0]) for r in self._con.execute(f"""
                SELECT DISTINCT {part} FROM {ident(new)}
                UNION SELECT DISTINCT e.{part} FROM {source} e {touched}""").fetchall()})
            marker = f"{table}/{spec.partition[0]}="
            # the rows of those partitions only; the others are not read
            files = [k for k in objects if k[len(marker):].split("/", 1)[0] in set(values)]
        existing = self._table_name(f"existing_{table}")
        self._con.execute(f"CREATE TABLE {ident(existing)} ({ddl})")
        if files:
            self._con.execute(
                f"INSERT INTO {ident(existing)} BY NAME SELECT * FROM read_parquet("
                f"{self._file_list(bucket, files)}, union_by_name=true, "
                f"hive_partitioning={str(bool(spec.partition)).lower()})")
        kept = (f"SELECT e.* FROM {ident(existing)} e "
                f"WHERE NOT EXISTS (SELECT 1 FROM {ident(keys)} k WHERE {on})")
        order = ", ".join(ident(c) for c in ([spec.partition[0]] if spec.partition else []) + list(spec.keys))
        merged = self._table_name(f"merged_{table}")
        self._con.execute(f"""CREATE TABLE {ident(merged)} AS SELECT {select} FROM (
            SELECT {select} FROM ({kept}) UNION ALL SELECT {select} FROM {ident(new)}) ORDER BY {order}""")
        if spec.partition:
            written = {str(r[0]) for r in self._con.execute(f"SELECT DISTINCT {part} FROM {ident(merged)}").fetchall()}
            if written:
                # same object names as a full write (data_0.parquet per partition): replaced
                self._copy(f"SELECT * FROM {ident(merged)}", bucket, table,
                           f"FORMAT parquet, PARTITION_BY ({part})")
            self._delete_prefixes(bucket, [f"{marker}{v}/" for v in values if v not in written], objects)
        else:
            self._copy(f"SELECT * FROM {ident(merged)}", bucket, f"{table}/data_0.parquet", "FORMAT parquet")
        rows = self._count(new)
        self.metrics["rows_out"][table] = rows
        self.metrics.setdefault("partitions_rewritten", {})[table] = len(values) if spec.partition else 1
        return rows

    def _delete_prefixes(self, bucket: str, prefixes: list[str], objects: dict[str, str]) -> None:
        doomed = [k for k in objects if any(k.startswith(p) for p in prefixes)]
        staging.delete_keys(aws(self._settings, "s3"), bucket, doomed)

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
            self._copy(f"SELECT * FROM {ident(merged)}", bucket, key, "FORMAT parquet")
        self.metrics["rejected"] += rows
        return rows

    def write_quarantine(self, df, bucket: str, source: str) -> int:
        """Replace ``<source>/data_0.parquet``: every record of the raw zone rejected, with why.

        Jobs rebuild their outputs from the whole raw zone, so the quarantine is a table of
        current state like the clean tables: clean + quarantine = every raw record, once.
        """
        name = self.materialize(df, QUARANTINE, f"quarantine_{source}")
        self._copy(f"SELECT * FROM {ident(name)}", bucket, f"{source}/data_0.parquet", "FORMAT parquet")
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
