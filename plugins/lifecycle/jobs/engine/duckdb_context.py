"""The DuckDB engine's job context (the local ``GlueContext``): reads, bookmarks, incremental state.

Input: an ``Engine`` (one DuckDB connection with SQLFrame's session on it), the settings, a
job name and its bookmark (``lifecycle.jobs.engine.bookmarks``). Output: DataFrames over DuckDB
tables for each read (the raw layouts listed with boto3 and read by DuckDB, so SQLFrame sees
their schema), the inputs this run saw (``inputs``, the next bookmark) and the run's
``metrics``; the writes are ``DuckDBWrites``'. An incremental run raises ``FullRebuild`` when
an input cannot be applied on top of the current outputs.
"""

from __future__ import annotations

import re
from typing import Any

from lifecycle.clients import aws
from lifecycle.jobs.engine.bookmarks import Bookmark
from lifecycle.jobs.engine.contract import FullRebuild, literal_prefix, matches, new_metrics
from lifecycle.jobs.engine.duckdb_writes import DuckDBWrites
from lifecycle.lake import iceberg
from lifecycle.lake.catalog import TableSpec, duckdb_type, lake_table
from lifecycle.settings import Settings
from lifecycle.sql import ident, literal

# a line is a record when it is a JSON object with unique keys. CASE branches run in order
# on the remaining rows only, so no JSON function sees a malformed line (they raise on one)
JSON_OK = """CASE WHEN NOT json_valid(payload) THEN false
                   WHEN json_type(payload::JSON) <> 'OBJECT' THEN false
                   ELSE len(json_keys(payload)) = len(list_distinct(json_keys(payload))) END"""


class Engine:
    """One DuckDB connection per process and SQLFrame's session on it (``runner.shared_engine``)."""

    def __init__(self, con, spark):
        self.con = con
        self.spark = spark
        self.seq = 0


class DuckDBJobContext(DuckDBWrites):
    """``contract.JobContext`` on DuckDB: reads and bookmark state here, writes in ``DuckDBWrites``.

    Every read returns a DataFrame over a DuckDB table (so SQLFrame sees its schema), even
    when there are no objects yet (then the table is empty with the declared columns).
    """

    def __init__(self, engine: Engine, settings: Settings, job_name: str,
                 bookmark: Bookmark | None = None):
        self.spark = engine.spark
        self._engine = engine
        self._con = engine.con
        self._settings = settings
        self.job_name = job_name
        self._tables: list[str] = []
        # incremental: the outputs hold the state after the bookmarked inputs; reads return
        # only what is new and writes merge into the outputs (upsert_clean, merge_quarantine)
        self.bookmark = bookmark
        self.incremental = bool(bookmark and bookmark.exists and not bookmark.in_flight)
        self.inputs: dict[str, dict[str, str]] = {}  # what this run saw, for the next bookmark
        self._gone: dict[str, list[str]] = {}
        self._changed: dict[str, list[str]] = {}  # table -> partition values changed since the bookmark
        self.metrics: dict[str, Any] = new_metrics("incremental" if self.incremental else "full")
        # the contract of each table as written: CLEAN_TABLES plus columns new in the source
        self.specs: dict[str, TableSpec] = {}

    # -- helpers
    def _table_name(self, label: str) -> str:
        self._engine.seq += 1
        name = f"_job{self._engine.seq}_{re.sub(r'[^0-9a-zA-Z_]', '_', label)}"
        self._tables.append(name)
        return name

    def _count(self, table: str) -> int:
        return self._con.execute(f"SELECT count(*) FROM {ident(table)}").fetchone()[0]

    def list_objects(self, bucket: str, pattern: str) -> dict[str, str]:
        """``{key: ETag}`` of the objects of ``bucket`` matching ``pattern`` (``*`` within one
        path segment), in key order."""
        s3 = aws(self._settings, "s3")
        found = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                 Prefix=literal_prefix(pattern)):
            found.update({o["Key"]: o["ETag"].strip('"') for o in page.get("Contents", [])
                          if matches(o["Key"], pattern)})
        return dict(sorted(found.items()))

    def list_keys(self, bucket: str, pattern: str) -> list[str]:
        """Keys of ``bucket`` matching ``pattern``, sorted."""
        return list(self.list_objects(bucket, pattern))

    def table_files(self, table: str) -> dict[str, str]:
        """``{data file URI: partition value}`` of a lake table's current Iceberg snapshot
        (``lifecycle.lake.iceberg.data_files``; empty before its first commit). Data files are
        immutable and uniquely named, so this set is the snapshot a reader bookmarks: a file
        new since the bookmark was added by a commit, one gone was replaced or deleted."""
        return iceberg.data_files(iceberg.load_table(self._settings, lake_table(table)))

    def _new_keys(self, name: str, objects: dict[str, str], allow_gone: bool = False) -> list[str]:
        """Remember ``objects`` as input ``name`` of this run; the keys to process: all of
        them in a full run, those not in the bookmark (or changed since) in an incremental one.
        ``allow_gone``: objects may disappear (partitions of a table another job rewrites);
        they are changes too (``changed_partition_values``)."""
        self.inputs[name] = objects
        if not self.incremental:
            return list(objects)
        seen = self.bookmark.seen(name)
        gone = [k for k in seen if k not in objects]
        self._gone[name] = gone
        if gone and not allow_gone:
            # inputs are append-only; a processed object that disappeared (a replay, a
            # clean-up by hand) means the outputs no longer follow from them: rebuild
            raise FullRebuild(f"{self.job_name}: {len(gone)} processed object(s) of {name} are gone, "
                              f"e.g. {gone[0]}")
        return [k for k, etag in objects.items() if seen.get(k) != etag]

    def require_unchanged(self, name: str, objects: dict[str, str], why: str) -> None:
        """In an incremental run, ``objects`` must be what the bookmark saw (e.g. the full-load
        files of a DMS table, the chosen DynamoDB export); otherwise rebuild in full."""
        self.inputs[name] = objects
        if self.incremental and self.bookmark.seen(name) != objects:
            raise FullRebuild(f"{self.job_name}: {why}")

    def require_no_late_references(self, bucket: str, source: str, reason: str, field: str, known) -> None:
        """In an incremental run: when records quarantined for ``reason`` (a reference to an
        unknown key) now name a key of ``known`` (a DataFrame of that key) — the referenced
        row arrived after them, a late dimension — rebuild in full, so they are classified
        again, as a full run over the same raw objects would."""
        key = f"{source}/data_0.parquet"
        if not self.incremental or not self.list_keys(bucket, key):
            return
        import json

        # parsed here, not by DuckDB: its JSON functions raise on the malformed records beside
        # them, whatever the filter (the planner may evaluate them first)
        named = set()
        for (payload,) in self._con.execute(
                f"SELECT payload FROM read_parquet({literal(f's3://{bucket}/{key}')}) WHERE reason = ?",
                [reason]).fetchall():
            try:
                value = json.loads(payload).get(field)
                named.add(int(value))
            except (ValueError, TypeError, AttributeError):
                continue
        if not named:
            return
        (late,) = self._con.execute(
            f"SELECT count(*) FROM ({known.sql(dialect='duckdb', optimize=False)}) k "
            f"WHERE k.{ident(field)} IN ({', '.join(str(v) for v in sorted(named))})").fetchone()
        if late:
            raise FullRebuild(f"{self.job_name}: {late} record(s) quarantined as {reason} now name a known {field}")

    @staticmethod
    def _file_list(bucket: str, keys: list[str]) -> str:
        return "[" + ", ".join(literal(f"s3://{bucket}/{k}") for k in keys) + "]"

    def get_secret(self, name: str) -> str:
        return aws(self._settings, "secretsmanager").get_secret_value(SecretId=name)["SecretString"]

    # -- reads
    def read_dms(self, bucket: str, prefix: str, columns: dict[str, str], name: str):
        """A DMS table folder (LOAD + CDC Parquet) with ``Op``, ``_commit_ts``, the declared
        source columns (logical types of lifecycle.lake.catalog), ``_file`` (object name) and
        ``_row`` (row number within the object)."""
        objects = self.list_objects(bucket, f"{prefix.rstrip('/')}/*.parquet")
        load = {k: e for k, e in objects.items() if k.rsplit("/", 1)[-1].startswith("LOAD")}
        # a new full load (a re-snapshot) replaces the table's history: rebuild from it
        self.require_unchanged(f"{name}.load", load, f"the full load of {name} changed")
        keys = self._new_keys(name, {k: e for k, e in objects.items() if k not in load})
        if self.incremental and keys:
            done = [k for k in self.bookmark.seen(name) if k not in keys]
            if done and min(keys) < max(done):
                # a file that replays before one already applied (a late or repeated delivery):
                # applied on top of the current state it would undo later changes; rebuild
                raise FullRebuild(f"{self.job_name}: {min(keys)} arrived after {max(done)} was applied")
        if not self.incremental:
            keys = list(load) + keys
        table = self._table_name(f"raw_{name}")
        decl = {"Op": "string", "_commit_ts": "timestamptz", **columns}
        ddl = ", ".join(f"{ident(c)} {duckdb_type(t)}" for c, t in decl.items())
        self._con.execute(f"CREATE TABLE {ident(table)} ({ddl}, _file VARCHAR, _row BIGINT)")
        if keys:
            # filename/file_row_number give the DMS replay order, which SQLFrame's reader
            # cannot expose (on Spark: _metadata.file_name / _metadata.row_index)
            src = (f"read_parquet({self._file_list(bucket, keys)}, filename=true, "
                   f"file_row_number=true, union_by_name=true)")
            described = self._con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
            present = {r[0] for r in described}
            # columns the source gained after the contract was written (an additive schema
            # change) come along with their own types; the job decides what to do with them
            extras = [(r[0], r[1]) for r in described
                      if r[0] not in decl and r[0] not in ("filename", "file_row_number")]
            for col, duck_type in extras:
                self._con.execute(f"ALTER TABLE {ident(table)} ADD COLUMN {ident(col)} {duck_type}")
            cols = [c for c in decl if c in present] + [c for c, _ in extras]
            select = ", ".join(ident(c) for c in cols)
            self._con.execute(
                f"INSERT INTO {ident(table)} BY NAME SELECT {select}, "
                f"parse_filename(filename) AS _file, file_row_number AS _row FROM {src}"
            )
        self.metrics["files_in"][name] = len(keys)
        self.metrics["rows_in"][name] = self._count(table)
        return self.spark.table(table)

    def read_lines(self, bucket: str, pattern: str | None, name: str):
        """Newline-delimited text objects as ``raw_key, line_no, payload, json_ok``.

        ``json_ok`` says whether the line is a JSON object with unique keys. It is computed
        here because SQLFrame's JSON functions map to DuckDB's, which raise on malformed
        input where Spark's ``from_json`` returns null; jobs guard their parsing with it.
        Blank lines are not records and are skipped.
        """
        keys = self._new_keys(name, self.list_objects(bucket, pattern) if pattern else {})
        table = self._table_name(f"raw_{name}")
        self._con.execute(f"CREATE TABLE {ident(table)} (raw_key VARCHAR, line_no BIGINT, "
                          "payload VARCHAR, json_ok BOOLEAN)")
        # GZIP objects (Firehose CompressionFormat=GZIP) are decompressed here, in Python
        for key in [k for k in keys if k.endswith(".gz")]:
            self._insert_lines_lossy(table, bucket, key)
        plain = [k for k in keys if not k.endswith(".gz")]
        if plain:
            import duckdb

            try:
                self._insert_lines(table, bucket, plain)
            except duckdb.InvalidInputException:
                # Some object is not valid UTF-8 (raw is kept as delivered). Load object by
                # object; the broken ones are decoded with escapes so their lines land in
                # quarantine instead of failing every future run.
                for key in plain:
                    try:
                        self._insert_lines(table, bucket, [key])
                    except duckdb.InvalidInputException:
                        self._insert_lines_lossy(table, bucket, key)
        self.metrics["files_in"][name] = len(keys)
        self.metrics["rows_in"][name] = self._count(table)
        return self.spark.table(table)

    def _insert_lines(self, table: str, bucket: str, keys: list[str]) -> None:
        strip = len(f"s3://{bucket}/")
        # split first, then check the JSON on the materialized lines: the unnest runs one
        # thread per object, the second pass runs on all threads
        split = f"{table}_split"
        self._con.execute(f"""
            CREATE OR REPLACE TABLE {ident(split)} AS
            SELECT raw_key, line_no, payload FROM (
                SELECT substr(filename, {strip + 1}) AS raw_key,
                       rtrim(unnest(lines), chr(13)) AS payload,
                       generate_subscripts(lines, 1) AS line_no
                FROM (SELECT filename, string_split(content, chr(10)) AS lines
                      FROM read_text({self._file_list(bucket, keys)}))
            )
            WHERE trim(payload) <> ''
        """)
        try:
            self._con.execute(f"INSERT INTO {ident(table)} SELECT raw_key, line_no, payload, "
                              f"{JSON_OK} FROM {ident(split)}")
        finally:
            self._con.execute(f"DROP TABLE IF EXISTS {ident(split)}")

    def _insert_lines_lossy(self, table: str, bucket: str, key: str) -> None:
        import pyarrow as pa

        body = aws(self._settings, "s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        if key.endswith(".gz"):
            import gzip

            body = gzip.decompress(body)
        lines = body.decode("utf-8", errors="backslashreplace").split("\n")
        rows = [(i, line.rstrip("\r")) for i, line in enumerate(lines, start=1) if line.strip(" ")]
        batch = pa.table({"line_no": pa.array([r[0] for r in rows], pa.int64()),
                          "payload": pa.array([r[1] for r in rows], pa.string())})
        self._con.register("_lossy_lines", batch)
        try:
            self._con.execute(f"INSERT INTO {ident(table)} SELECT {literal(key)}, line_no, payload, "
                              f"{JSON_OK} FROM _lossy_lines")
        finally:
            self._con.unregister("_lossy_lines")

    def latest_dynamodb_export(self, bucket: str, prefix: str) -> str | None:
        """``<prefix><exportId>/`` of the newest complete DynamoDB export (one whose
        ``manifest-summary.json`` exists; exportIds sort by time), or None."""
        prefix = prefix.rstrip("/") + "/"
        done = self.list_objects(bucket, f"{prefix}*/manifest-summary.json")
        newest = list(done)[-1:] if done else []
        # an incremental run applies stream records on top of the export it started from
        self.require_unchanged(f"export:{prefix}", {k: done[k] for k in newest}, "a newer export arrived")
        return f"{prefix}{newest[0][len(prefix):].split('/')[0]}/" if newest else None

    def read_clean(self, bucket: str, table: str, changed_only: bool = False,
                   columns: list[str] | None = None, where_in: tuple[str, Any] | None = None):
        """A lake table as its current snapshot has it (empty with its columns before the first
        commit). ``bucket`` is where the table lives; the Glue Catalog finds it by name.

        ``changed_only``: only the data files added since this job's bookmark (all of them in
        a full run): the partitions rewritten by commits since; their values, and those of
        partitions emptied since, are ``changed_partition_values``. ``columns``: only these
        columns. ``where_in=(column, df)``: only the rows whose ``column`` is among ``df``'s
        first column: an incremental run reads what it merges with, not the whole table
        (Spark: a semi join; here DuckDB filters the Parquet scan).
        """
        spec = lake_table(table)
        current = iceberg.load_table(self._settings, spec)
        entries = iceberg.data_file_entries(current)
        files = {f.uri: f.partition for f in entries}
        name = f"clean.{table}"
        if changed_only:
            keys = self._new_keys(name, files, allow_gone=True)
            seen = self.bookmark.seen(name) if self.incremental else {}
            self._changed[table] = sorted({files[k] for k in keys}
                                          | {seen[k] for k in self._gone.get(name, [])})
        else:
            keys = list(files)
        wanted = [(c, t) for c, t in spec.all_columns if columns is None or c in columns]
        scratch = self._table_name(f"clean_{table}" + ("_changed" if changed_only else ""))
        ddl = ", ".join(f"{ident(c)} {duckdb_type(t)}" for c, t in wanted)
        self._con.execute(f"CREATE TABLE {ident(scratch)} ({ddl})")
        where = ""
        if keys and where_in is not None:
            column, values = where_in
            wanted_values = self._table_name(f"where_{table}")
            sql = values.sql(dialect="duckdb", optimize=False)
            first = self._con.execute(f"DESCRIBE SELECT * FROM ({sql})").fetchone()[0]
            self._con.execute(f"CREATE TABLE {ident(wanted_values)} AS SELECT DISTINCT "
                              f"{ident(first)} AS {ident(column)} FROM ({sql})")
            where = f"WHERE {ident(column)} IN (SELECT * FROM {ident(wanted_values)})"
            # only the data files whose bounds of that column may hold a wanted value
            candidates = set(self._candidate_files(current, entries, wanted_values, column))
            keys = [k for k in keys if k in candidates]
        if keys:
            self._con.execute(f"INSERT INTO {ident(scratch)} BY NAME SELECT * FROM "
                              f"({iceberg.files_sql(self._con, keys, wanted)}) {where}")
        label = name + (".changed" if changed_only and self.incremental else "")
        self.metrics["rows_in"][label] = self._count(scratch)
        return self.spark.table(scratch)

    def changed_partition_values(self, table: str) -> list[str]:
        """Partition values of ``table`` whose data files were added, rewritten or removed since
        the bookmark (after ``read_clean(..., changed_only=True)``)."""
        return list(self._changed.get(table, []))

    def clean_inputs_unchanged(self, bucket: str, tables: list[str]) -> bool:
        """True in an incremental run when no commit changed these lake tables since the
        bookmark: a job derived from them only has nothing to do."""
        changed = not self.incremental
        for table in tables:
            files = self.table_files(table)
            new = self._new_keys(f"clean.{table}", files, allow_gone=True)
            changed |= bool(new or self._gone.get(f"clean.{table}")) and self.incremental
        return not changed

    def persist(self, df, label: str):
        """Materialize ``df`` once for several consumers (on Spark: ``df.persist()``)."""
        name = self._table_name(f"persist_{label}")
        self._con.execute(f"CREATE TABLE {ident(name)} AS {df.sql(dialect='duckdb', optimize=False)}")
        return self.spark.table(name)

    def close(self) -> None:
        """Drop the scratch tables of this run."""
        for name in reversed(self._tables):
            self._con.execute(f"DROP TABLE IF EXISTS {ident(name)}")
        self._tables.clear()
