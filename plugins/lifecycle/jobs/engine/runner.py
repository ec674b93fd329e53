"""The Glue-style job runner: runs the jobs of ``lifecycle.jobs`` on DuckDB through SQLFrame.

Input: ``Settings``, a job name (a module ``lifecycle.jobs.<job_name>`` with
``main(argv, ctx)``) and the data interval. Output: the job's tables written to the lake and
a run-metadata dict ``{job, rows_in: {input: n}, rows_out: {table: n}, rejected, files_in,
duration_s}``; ``run_lake_clean`` runs every clean job, then registers the clean tables in
the Glue Catalog.

The contract is AWS Glue's: a job is a script that reads Glue-style arguments
(``--JOB_NAME x --raw_bucket ...``, parsed by ``get_resolved_options`` as
``awsglue.utils.getResolvedOptions`` does) and writes its transformation in the PySpark
DataFrame API. The runner is the local ``GlueContext``: it makes one DuckDB connection per
process (httpfs from the ``duckdb-extension-httpfs`` wheel, an S3 secret from the settings,
session time zone UTC as ``spark.sql.session.timeZone`` would be on Glue), activates SQLFrame
on it so ``from pyspark.sql import ...`` resolves to SQLFrame, and owns reads and writes
(``JobContext``): the raw layouts are listed with boto3 and read by DuckDB into tables the
job sees as DataFrames, and each output is checked against ``lifecycle.lake.catalog`` and written
with ``COPY ... (FORMAT parquet, PARTITION_BY (...))`` to a staging prefix, then promoted to
the table's keys (``lifecycle.lake.staging``): a failed write leaves the previous objects.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

from lifecycle import faults
from lifecycle.clients import aws, configure_s3, connect_duckdb
from lifecycle.jobs.engine import bookmarks
from lifecycle.jobs.engine.bookmarks import Bookmark
from lifecycle.lake import staging
from lifecycle.lake.catalog import (
    CLEAN_TABLES,
    QUARANTINE,
    TableSpec,
    duckdb_type,
    effective_spec,
    lake_table,
    logical_from_duckdb,
    register_clean_tables,
    register_curated_tables,
    with_extra_columns,
)
from lifecycle.settings import Settings
from lifecycle.sql import ident, literal

# sales first: clean_events checks product ids against the clean products it writes;
# curate_sessions after clean_events: it rebuilds the sessions from the clean events
CLEAN_JOBS = ("clean_sales", "clean_events", "curate_sessions", "clean_reviews")
# then the curated zone, from the clean tables
CURATED_JOBS = ("curate_features",)
JOBS = CLEAN_JOBS + CURATED_JOBS
# the zones the jobs write (each write staged under _lifecycle/staging/ of its bucket)
LAKE_ZONES = ("clean", "curated", "quarantine")


class JobError(RuntimeError):
    """A job broke its contract (arguments, output schema); the message says how."""


class FullRebuild(Exception):  # noqa: N818 - a signal, not an error
    """An incremental run found an input it cannot apply on top of the current outputs (a new
    full load, a new export): the runner reruns the job in full."""


# ---- Glue-style arguments -------------------------------------------------------------------

def get_resolved_options(argv: list[str], names: list[str]) -> dict[str, str]:
    """``{name: value}`` for each ``--name value`` (or ``--name=value``) in ``argv``.

    Like ``awsglue.utils.getResolvedOptions``: every requested name is required, arguments
    not asked for are ignored (Glue passes its own), and a leading program name is skipped.
    """
    found: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if not eq:
                if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                    raise JobError(f"argument --{name} has no value")
                value = argv[i + 1]
                i += 1
            found[name] = value
        i += 1
    missing = [n for n in names if n not in found]
    if missing:
        raise JobError(f"missing job arguments: {', '.join('--' + n for n in missing)}")
    return {n: found[n] for n in names}


def job_arguments(settings: Settings, job_name: str, interval_start: datetime,
                  interval_end: datetime) -> list[str]:
    """The argv a job gets: what a Glue job's DefaultArguments would carry, no secrets."""
    return [
        job_name,
        "--JOB_NAME", job_name,
        "--raw_bucket", settings.bucket("raw"),
        "--clean_bucket", settings.bucket("clean"),
        "--curated_bucket", settings.bucket("curated"),
        "--quarantine_bucket", settings.bucket("quarantine"),
        "--pii_salt_secret", settings.pii_salt_secret,
        "--interval_start", _utc(interval_start).isoformat(),
        "--interval_end", _utc(interval_end).isoformat(),
        "--job-bookmark-option", settings.job_bookmark_option,
    ]


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class _Engine:
    def __init__(self, con, spark):
        self.con = con
        self.spark = spark
        self.seq = 0


_ENGINE: _Engine | None = None
# SQLFrame's activate() swaps the process-wide `pyspark` modules and its session is a
# singleton bound to one connection: one engine per process, jobs run one at a time.
_ENGINE_LOCK = threading.RLock()


def _engine(settings: Settings) -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        con = connect_duckdb(settings)
        import sqlframe

        sqlframe.activate(engine="duckdb", conn=con)
        from pyspark.sql import SparkSession  # resolves to SQLFrame from here on

        _ENGINE = _Engine(con, SparkSession.builder.getOrCreate())
    else:
        configure_s3(_ENGINE.con, settings)
    return _ENGINE


# ---- the job context (local GlueContext) ----------------------------------------------------

def _literal_prefix(pattern: str) -> str:
    cut = min([i for i, ch in enumerate(pattern) if ch in "*?["] or [len(pattern)])
    return pattern[:cut].rsplit("/", 1)[0] + "/" if "/" in pattern[:cut] else ""


def _matches(key: str, pattern: str) -> bool:
    """Glob match where ``*`` never crosses ``/`` (as in a DuckDB/S3 glob)."""
    parts, pats = key.split("/"), pattern.split("/")
    return len(parts) == len(pats) and all(fnmatch.fnmatchcase(p, q) for p, q in zip(parts, pats, strict=True))


class JobContext:
    """What a job may do besides transforming DataFrames: read inputs, write outputs.

    Every read returns a DataFrame over a DuckDB table (so SQLFrame sees its schema), even
    when there are no objects yet (then the table is empty with the declared columns).
    """

    def __init__(self, engine: _Engine, settings: Settings, job_name: str,
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
        self._changed: dict[str, list[str]] = {}
        self.metrics: dict[str, Any] = {"mode": "incremental" if self.incremental else "full",
                                        "rows_in": {}, "rows_out": {}, "rejected": 0, "files_in": {},
                                        "columns_added": {}, "columns_held_back": {}}
        # the contract of each table as written: CLEAN_TABLES plus columns new in the source
        self.specs: dict[str, TableSpec] = {}
        # writes go to _lifecycle/staging/<job>/<token>/<n>/ first (lifecycle.lake.staging)
        self._run_token = staging.run_token()
        self._writes = 0

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
                                                                 Prefix=_literal_prefix(pattern)):
            found.update({o["Key"]: o["ETag"].strip('"') for o in page.get("Contents", [])
                          if _matches(o["Key"], pattern)})
        return dict(sorted(found.items()))

    def list_keys(self, bucket: str, pattern: str) -> list[str]:
        """Keys of ``bucket`` matching ``pattern``, sorted."""
        return list(self.list_objects(bucket, pattern))

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

    # CASE branches run in order on the remaining rows only, so no JSON function sees a
    # malformed line (they raise on one)
    _JSON_OK = """CASE WHEN NOT json_valid(payload) THEN false
                       WHEN json_type(payload::JSON) <> 'OBJECT' THEN false
                       ELSE len(json_keys(payload)) = len(list_distinct(json_keys(payload))) END"""

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
                              f"{self._JSON_OK} FROM {ident(split)}")
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
                              f"{self._JSON_OK} FROM _lossy_lines")
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

    @staticmethod
    def _table_pattern(spec: TableSpec) -> str:
        return (f"{spec.name}/{spec.partition[0]}=*/*.parquet" if spec.partition
                else f"{spec.name}/*.parquet")

    def read_clean(self, bucket: str, table: str, changed_only: bool = False,
                   columns: list[str] | None = None, where_in: tuple[str, Any] | None = None):
        """A clean table as it is in the lake now (empty with its columns if not written).

        ``changed_only``: only the objects (partitions) new or rewritten since this job's
        bookmark (all of them in a full run); the job's input ``clean.<table>`` either way.
        ``columns``: only these columns. ``where_in=(column, df)``: only the rows whose
        ``column`` is among ``df``'s first column — an incremental run reads what it merges
        with, not the whole table (Spark: a semi join; here DuckDB filters the Parquet scan).
        """
        spec = lake_table(table)
        objects = self.list_objects(bucket, self._table_pattern(spec))
        if changed_only:
            keys = self._new_keys(f"clean.{table}", objects, allow_gone=True)
            self._changed[table] = keys + self._gone.get(f"clean.{table}", [])
        else:
            keys = list(objects)
        wanted = [(c, t) for c, t in spec.all_columns if columns is None or c in columns]
        name = self._table_name(f"clean_{table}" + ("_changed" if changed_only else ""))
        ddl = ", ".join(f"{ident(c)} {duckdb_type(t)}" for c, t in wanted)
        self._con.execute(f"CREATE TABLE {ident(name)} ({ddl})")
        if keys:
            cols = ", ".join(ident(c) for c, _ in wanted)
            where = ""
            if where_in is not None:
                column, values = where_in
                where = (f"WHERE {ident(column)} IN (SELECT * FROM "
                         f"({values.sql(dialect='duckdb', optimize=False)}))")
            self._con.execute(
                f"INSERT INTO {ident(name)} BY NAME SELECT {cols} FROM read_parquet("
                f"{self._file_list(bucket, keys)}, hive_partitioning={str(bool(spec.partition)).lower()}) {where}"
            )
        label = f"clean.{table}" + (".changed" if changed_only and self.incremental else "")
        self.metrics["rows_in"][label] = self._count(name)
        return self.spark.table(name)

    def changed_partition_values(self, table: str) -> list[str]:
        """Partition values of ``table`` whose objects were added, rewritten or removed since
        the bookmark (after ``read_clean(..., changed_only=True)``)."""
        spec = lake_table(table)
        marker = f"{spec.partition[0]}="
        return sorted({part[len(marker):] for k in self._changed.get(table, [])
                       for part in k.split("/") if part.startswith(marker)})

    def clean_inputs_unchanged(self, bucket: str, tables: list[str]) -> bool:
        """True in an incremental run when no object of these clean tables was added, changed
        or removed since the bookmark: a job derived from them only has nothing to do."""
        changed = not self.incremental
        for table in tables:
            objects = self.list_objects(bucket, self._table_pattern(lake_table(table)))
            # an object gone since the bookmark makes _new_keys rebuild in full
            changed |= bool(self._new_keys(f"clean.{table}", objects)) and self.incremental
        return not changed

    def persist(self, df, label: str):
        """Materialize ``df`` once for several consumers (on Spark: ``df.persist()``)."""
        name = self._table_name(f"persist_{label}")
        self._con.execute(f"CREATE TABLE {ident(name)} AS {df.sql(dialect='duckdb', optimize=False)}")
        return self.spark.table(name)

    # -- writes
    def _materialize(self, df, spec: TableSpec, label: str) -> str:
        """Check ``df`` against the contract and materialize it in write order."""
        sql = df.sql(dialect="duckdb", optimize=False)
        got = [(r[0], r[1]) for r in self._con.execute(f"DESCRIBE SELECT * FROM ({sql})").fetchall()]
        want = [(c, duckdb_type(t)) for c, t in spec.columns]
        part = [(spec.partition[0], duckdb_type(spec.partition[1]))] if spec.partition else []
        data = got[:len(got) - len(part)] if part else got
        # the contract's columns, in order, then optionally new columns, then the partition
        if data[:len(want)] != want or got[len(data):] != part:
            raise JobError(f"{self.job_name}: output {label} does not match its contract\n"
                           f"  got:  {got}\n  want: {want + part} (+ new columns before the partition)")
        extras = [(c, logical_from_duckdb(t)) for c, t in data[len(want):]]
        if extras and spec.name in CLEAN_TABLES:
            spec = with_extra_columns(spec, extras)
            self.specs[spec.name] = spec
            self.metrics["columns_added"][spec.name] = [c for c, _ in extras]
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
        """Replace lake ``table`` with ``df`` (all partitions: stale ones disappear)."""
        spec = lake_table(table)
        name = self._materialize(df, spec, table)
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
        objects = self.list_objects(bucket, self._table_pattern(spec))
        if not self.incremental or not objects:
            return self.write_clean(df, bucket, table)
        new = self._materialize(df, spec, table)
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
        new = self._materialize(df, QUARANTINE, f"quarantine_{source}")
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
        name = self._materialize(df, QUARANTINE, f"quarantine_{source}")
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

    def close(self) -> None:
        for name in reversed(self._tables):
            self._con.execute(f"DROP TABLE IF EXISTS {ident(name)}")
        self._tables.clear()


# ---- public entry points --------------------------------------------------------------------

def run_job(settings: Settings, job_name: str, interval_start: datetime,
            interval_end: datetime, bookmark_option: str | None = None) -> dict:
    """Run one Glue-style job of ``lifecycle.jobs``; returns its run metadata.

    ``bookmark_option`` (default ``settings.job_bookmark_option``): Glue's
    ``--job-bookmark-option``. Enabled, a job with a bookmark runs incrementally and the
    bookmark advances only after its last write (see ``lifecycle.jobs.engine.bookmarks``).
    """
    if job_name not in JOBS:
        raise JobError(f"unknown job {job_name!r}; jobs: {', '.join(JOBS)}")
    option = bookmark_option or settings.job_bookmark_option
    if option not in bookmarks.OPTIONS:
        raise JobError(f"--job-bookmark-option {option!r}: use one of {', '.join(bookmarks.OPTIONS)}")
    argv = job_arguments(settings, job_name, interval_start, interval_end)
    argv[argv.index("--job-bookmark-option") + 1] = option
    with _ENGINE_LOCK:
        engine = _engine(settings)
        module = importlib.import_module(f"lifecycle.jobs.{job_name}")
        started = time.perf_counter()
        # what a killed run of this job left in staging (it ran no finally); never read
        staging.clear_job(aws(settings, "s3"), [settings.bucket(z) for z in LAKE_ZONES], job_name)
        mark = bookmarks.load(settings, job_name) if option != "job-bookmark-disable" else None
        if mark and mark.exists and option == "job-bookmark-enable":
            # set before the first write: a run that dies half-way makes the next one full
            bookmarks.save(settings, Bookmark(job_name, inputs=mark.inputs, in_flight=True))
        ctx = _run_module(module, argv, engine, settings, job_name, mark)
        if option == "job-bookmark-enable":
            bookmarks.save(settings, bookmarks.Bookmark(job_name, inputs=ctx.inputs))
        elif option == "job-bookmark-disable":
            # the outputs were rebuilt from everything: an older bookmark no longer matches
            bookmarks.reset(settings, [job_name])
        result = {"job": job_name, **ctx.metrics, "specs": ctx.specs,
                  "duration_s": round(time.perf_counter() - started, 3)}
        publish_job_run(settings, result)
        return result


def _run_module(module, argv, engine, settings, job_name, mark):
    ctx = JobContext(engine, settings, job_name, mark)
    try:
        module.main(argv, ctx)
    except FullRebuild as why:
        ctx.close()
        ctx = JobContext(engine, settings, job_name, None)
        ctx.metrics["full_rebuild_reason"] = str(why)
        module.main(argv, ctx)
    finally:
        ctx.close()
    return ctx


def publish_job_run(settings: Settings, result: dict) -> None:
    """Run metadata of a job as CloudWatch metrics (dimensions Job, Mode, Target), as Glue
    publishes its job metrics: rows in/out/rejected, input files, duration."""
    from lifecycle.dataops.metrics import total_count

    dims = [{"Name": "Job", "Value": result["job"]}, {"Name": "Target", "Value": settings.target}]
    now = datetime.now(UTC)
    values = {"JobRowsIn": total_count(result["rows_in"]), "JobRowsOut": total_count(result["rows_out"]),
              "JobRowsRejected": float(result["rejected"]), "JobFilesIn": total_count(result["files_in"]),
              "JobDurationSeconds": float(result["duration_s"])}
    aws(settings, "cloudwatch").put_metric_data(Namespace=settings.metrics_namespace, MetricData=[
        {"MetricName": name, "Dimensions": dims, "Timestamp": now, "Value": value or 0.0,
         "Unit": "Seconds" if name.endswith("Seconds") else "Count"}
        for name, value in values.items()])


def run_lake_clean(settings: Settings, interval_start: datetime, interval_end: datetime) -> dict:
    """Run every clean job (sales first), then register the clean tables in the Glue Catalog.

    One run at a time: Airflow's ``max_active_runs=1`` keeps the DAG's runs apart, and a run
    outside the scheduler (``lifecycle jobs run all`` beside the scheduled one) waits on a
    Postgres session advisory lock (released when the process ends, even by a kill). Two
    runs at once would both merge the same new raw objects: the second would quarantine the
    first's events as duplicates of themselves (the chaos suite's case 7 found it)."""
    from lifecycle.clients import pg

    with pg(settings, settings.sales_db, autocommit=True) as lock, lock.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtext('lifecycle:lake_clean'))")
        return _run_lake_clean(settings, interval_start, interval_end)


def _run_lake_clean(settings: Settings, interval_start: datetime, interval_end: datetime) -> dict:
    started = time.perf_counter()
    jobs = {name: run_job(settings, name, interval_start, interval_end) for name in JOBS}
    specs = {t: spec for j in jobs.values() for t, spec in j.pop("specs").items()}
    # a table written by this run has the columns it was written with (a column gone from
    # the source after a rebuild leaves the catalog too); the others keep the catalog's
    written = {t for j in jobs.values() for t in j["rows_out"] if t in CLEAN_TABLES}
    specs = {**{t: CLEAN_TABLES[t] for t in written}, **specs}
    catalog = {**register_clean_tables(settings, specs=specs), **register_curated_tables(settings)}
    return {
        "interval_start": _utc(interval_start).isoformat(),
        "interval_end": _utc(interval_end).isoformat(),
        "jobs": jobs,
        "rows_out": {t: n for j in jobs.values() for t, n in j["rows_out"].items()},
        "rejected": sum(j["rejected"] for j in jobs.values()),
        "catalog": catalog,
        "duration_s": round(time.perf_counter() - started, 3),
    }


def main(argv: list[str] | None = None) -> dict:
    """``python -m lifecycle.jobs.engine.runner --JOB_NAME clean_sales|all --interval_start <iso>
    --interval_end <iso> [--job-bookmark-option job-bookmark-disable]``: run a job (or every
    lake job) against ``Settings.from_env()``."""
    import json
    import sys

    argv = sys.argv if argv is None else argv
    args = get_resolved_options(argv, ["JOB_NAME", "interval_start", "interval_end"])
    option = (get_resolved_options(argv, ["job-bookmark-option"])["job-bookmark-option"]
              if "--job-bookmark-option" in argv else None)
    settings = Settings.from_env()
    if option:
        from dataclasses import replace

        settings = replace(settings, job_bookmark_option=option)
    start, end = (datetime.fromisoformat(args[k]) for k in ("interval_start", "interval_end"))
    result = (run_lake_clean(settings, start, end) if args["JOB_NAME"] == "all"
              else run_job(settings, args["JOB_NAME"], start, end))
    print(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    # through the package module, so the jobs share this process's one engine
    from lifecycle.jobs.engine.runner import main as _main

    _main()
