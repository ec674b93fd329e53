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
job sees as DataFrames, and each output is checked against ``lifecycle.catalog`` and written
with ``COPY ... (FORMAT parquet, PARTITION_BY (...), OVERWRITE)``.
"""

from __future__ import annotations

import fnmatch
import glob
import importlib
import os
import re
import tempfile
import threading
import time
from datetime import UTC, datetime
from typing import Any

from lifecycle.catalog import (
    CLEAN_TABLES,
    QUARANTINE,
    TableSpec,
    duckdb_type,
    logical_from_duckdb,
    register_clean_tables,
    with_extra_columns,
)
from lifecycle.clients import aws
from lifecycle.settings import Settings

# sales first: clean_events checks product ids against the clean products it writes;
# curate_sessions after clean_events: it rebuilds the sessions from the clean events
CLEAN_JOBS = ("clean_sales", "clean_events", "curate_sessions", "clean_reviews")


class JobError(RuntimeError):
    """A job broke its contract (arguments, output schema); the message says how."""


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
        "--quarantine_bucket", settings.bucket("quarantine"),
        "--pii_salt_secret", settings.pii_salt_secret,
        "--interval_start", _utc(interval_start).isoformat(),
        "--interval_end", _utc(interval_end).isoformat(),
    ]


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


# ---- DuckDB ---------------------------------------------------------------------------------

def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def httpfs_extension_path() -> str:
    """The httpfs extension shipped in the ``duckdb-extension-httpfs`` wheel (no download)."""
    import duckdb
    import duckdb_extension_httpfs

    base = os.path.join(os.path.dirname(duckdb_extension_httpfs.__file__), "extensions")
    wanted = os.path.join(base, f"v{duckdb.__version__}", "httpfs.duckdb_extension")
    if os.path.exists(wanted):
        return wanted
    found = sorted(glob.glob(os.path.join(base, "*", "httpfs.duckdb_extension")))
    if not found:
        raise RuntimeError(f"no httpfs extension under {base}; reinstall duckdb-extension-httpfs "
                           f"matching duckdb {duckdb.__version__}")
    return found[-1]


def configure_s3(con, settings: Settings) -> None:
    """(Re)create the connection's S3 secret from the settings."""
    host_port, use_ssl = settings.s3_host_port()
    parts = ["TYPE s3", f"REGION {_sql_str(settings.region)}"]
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        parts += [f"KEY_ID {_sql_str(settings.aws_access_key_id)}",
                  f"SECRET {_sql_str(settings.aws_secret_access_key)}"]
    else:  # aws target without static keys: the instance role / SSO chain
        parts.append("PROVIDER credential_chain")
    if host_port:
        parts += [f"ENDPOINT {_sql_str(host_port)}", "URL_STYLE 'path'"]
    parts.append(f"USE_SSL {'true' if use_ssl else 'false'}")
    con.execute(f"CREATE OR REPLACE SECRET lifecycle_s3 ({', '.join(parts)})")


def connect_duckdb(settings: Settings):
    """A DuckDB connection that reads and writes the lake of ``settings`` (UTC session)."""
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    con.execute(f"INSTALL {_sql_str(httpfs_extension_path())}")
    con.execute("LOAD httpfs")
    con.execute("SET TimeZone = 'UTC'")
    # overwritten objects keep their key; never serve an older copy from the cache
    con.execute("SET enable_external_file_cache = false")
    tmp = os.path.join(tempfile.gettempdir(), "lifecycle-duckdb")
    os.makedirs(tmp, exist_ok=True)
    con.execute(f"SET temp_directory = {_sql_str(tmp)}")
    configure_s3(con, settings)
    return con


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

    def __init__(self, engine: _Engine, settings: Settings, job_name: str):
        self.spark = engine.spark
        self._engine = engine
        self._con = engine.con
        self._settings = settings
        self.job_name = job_name
        self._tables: list[str] = []
        self.metrics: dict[str, Any] = {"rows_in": {}, "rows_out": {}, "rejected": 0, "files_in": {},
                                        "columns_added": {}, "columns_held_back": {}}
        # the contract of each table as written: CLEAN_TABLES plus columns new in the source
        self.specs: dict[str, TableSpec] = {}

    # -- helpers
    def _table_name(self, label: str) -> str:
        self._engine.seq += 1
        name = f"_job{self._engine.seq}_{re.sub(r'[^0-9a-zA-Z_]', '_', label)}"
        self._tables.append(name)
        return name

    def _count(self, table: str) -> int:
        return self._con.execute(f"SELECT count(*) FROM {_ident(table)}").fetchone()[0]

    def list_keys(self, bucket: str, pattern: str) -> list[str]:
        """Keys of ``bucket`` matching ``pattern`` (``*`` within one path segment), sorted."""
        s3 = aws(self._settings, "s3")
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                 Prefix=_literal_prefix(pattern)):
            keys.extend(o["Key"] for o in page.get("Contents", []) if _matches(o["Key"], pattern))
        return sorted(keys)

    @staticmethod
    def _file_list(bucket: str, keys: list[str]) -> str:
        return "[" + ", ".join(_sql_str(f"s3://{bucket}/{k}") for k in keys) + "]"

    def get_secret(self, name: str) -> str:
        return aws(self._settings, "secretsmanager").get_secret_value(SecretId=name)["SecretString"]

    # -- reads
    def read_dms(self, bucket: str, prefix: str, columns: dict[str, str], name: str):
        """A DMS table folder (LOAD + CDC Parquet) with ``Op``, ``_commit_ts``, the declared
        source columns (logical types of lifecycle.catalog), ``_file`` (object name) and
        ``_row`` (row number within the object)."""
        keys = self.list_keys(bucket, f"{prefix.rstrip('/')}/*.parquet")
        table = self._table_name(f"raw_{name}")
        decl = {"Op": "string", "_commit_ts": "timestamptz", **columns}
        ddl = ", ".join(f"{_ident(c)} {duckdb_type(t)}" for c, t in decl.items())
        self._con.execute(f"CREATE TABLE {_ident(table)} ({ddl}, _file VARCHAR, _row BIGINT)")
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
                self._con.execute(f"ALTER TABLE {_ident(table)} ADD COLUMN {_ident(col)} {duck_type}")
            cols = [c for c in decl if c in present] + [c for c, _ in extras]
            select = ", ".join(_ident(c) for c in cols)
            self._con.execute(
                f"INSERT INTO {_ident(table)} BY NAME SELECT {select}, "
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
        keys = self.list_keys(bucket, pattern) if pattern else []
        table = self._table_name(f"raw_{name}")
        self._con.execute(f"CREATE TABLE {_ident(table)} (raw_key VARCHAR, line_no BIGINT, "
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
            CREATE OR REPLACE TABLE {_ident(split)} AS
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
            self._con.execute(f"INSERT INTO {_ident(table)} SELECT raw_key, line_no, payload, "
                              f"{self._JSON_OK} FROM {_ident(split)}")
        finally:
            self._con.execute(f"DROP TABLE IF EXISTS {_ident(split)}")

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
            self._con.execute(f"INSERT INTO {_ident(table)} SELECT {_sql_str(key)}, line_no, payload, "
                              f"{self._JSON_OK} FROM _lossy_lines")
        finally:
            self._con.unregister("_lossy_lines")

    def latest_dynamodb_export(self, bucket: str, prefix: str) -> str | None:
        """``<prefix><exportId>/`` of the newest complete DynamoDB export (one whose
        ``manifest-summary.json`` exists; exportIds sort by time), or None."""
        prefix = prefix.rstrip("/") + "/"
        done = self.list_keys(bucket, f"{prefix}*/manifest-summary.json")
        return f"{prefix}{done[-1][len(prefix):].split('/')[0]}/" if done else None

    def read_clean(self, bucket: str, table: str):
        """A clean table as it is in the lake now (empty with its columns if not written)."""
        spec = CLEAN_TABLES[table]
        pattern = f"{table}/{spec.partition[0]}=*/*.parquet" if spec.partition else f"{table}/*.parquet"
        keys = self.list_keys(bucket, pattern)
        name = self._table_name(f"clean_{table}")
        ddl = ", ".join(f"{_ident(c)} {duckdb_type(t)}" for c, t in spec.all_columns)
        self._con.execute(f"CREATE TABLE {_ident(name)} ({ddl})")
        if keys:
            cols = ", ".join(_ident(c) for c in spec.column_names)
            self._con.execute(
                f"INSERT INTO {_ident(name)} BY NAME SELECT {cols} FROM read_parquet("
                f"{self._file_list(bucket, keys)}, hive_partitioning={str(bool(spec.partition)).lower()})"
            )
        self.metrics["rows_in"][f"clean.{table}"] = self._count(name)
        return self.spark.table(name)

    def persist(self, df, label: str):
        """Materialize ``df`` once for several consumers (on Spark: ``df.persist()``)."""
        name = self._table_name(f"persist_{label}")
        self._con.execute(f"CREATE TABLE {_ident(name)} AS {df.sql(dialect='duckdb', optimize=False)}")
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
        self._con.execute(f"CREATE TABLE {_ident(name)} AS SELECT * FROM ({sql}) "
                          f"ORDER BY {', '.join(_ident(c) for c in order)}")
        return name

    def _copy(self, select_sql: str, target: str, options: str) -> None:
        # Multi-threaded COPY splits row groups at thread-dependent points, so the same rows
        # could give different bytes; the materialized, ordered table is written by one
        # thread so a rerun gives byte-identical objects (same ETags).
        threads = self._con.execute("SELECT current_setting('threads')").fetchone()[0]
        self._con.execute("SET threads = 1")
        try:
            self._con.execute(f"COPY ({select_sql}) TO {_sql_str(target)} ({options})")
        finally:
            self._con.execute(f"SET threads = {int(threads)}")

    def write_clean(self, df, bucket: str, table: str) -> int:
        """Replace clean ``table`` with ``df`` (all partitions: stale ones disappear)."""
        spec = CLEAN_TABLES[table]
        name = self._materialize(df, spec, table)
        if spec.partition:
            self._copy(f"SELECT * FROM {_ident(name)}", f"s3://{bucket}/{table}",
                       f"FORMAT parquet, PARTITION_BY ({_ident(spec.partition[0])}), OVERWRITE")
        else:
            self._copy(f"SELECT * FROM {_ident(name)}", f"s3://{bucket}/{table}/data_0.parquet",
                       "FORMAT parquet")
        rows = self._count(name)
        self.metrics["rows_out"][table] = rows
        return rows

    def write_quarantine(self, df, bucket: str, source: str) -> int:
        """Replace ``<source>/data_0.parquet``: every record of the raw zone rejected, with why.

        Jobs rebuild their outputs from the whole raw zone, so the quarantine is a table of
        current state like the clean tables: clean + quarantine = every raw record, once.
        """
        name = self._materialize(df, QUARANTINE, f"quarantine_{source}")
        self._copy(f"SELECT * FROM {_ident(name)}", f"s3://{bucket}/{source}/data_0.parquet",
                   "FORMAT parquet")
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
            self._con.execute(f"DROP TABLE IF EXISTS {_ident(name)}")
        self._tables.clear()


# ---- public entry points --------------------------------------------------------------------

def run_job(settings: Settings, job_name: str, interval_start: datetime,
            interval_end: datetime) -> dict:
    """Run one Glue-style job of ``lifecycle.jobs``; returns its run metadata."""
    if job_name not in CLEAN_JOBS:
        raise JobError(f"unknown job {job_name!r}; jobs: {', '.join(CLEAN_JOBS)}")
    with _ENGINE_LOCK:
        engine = _engine(settings)
        module = importlib.import_module(f"lifecycle.jobs.{job_name}")
        ctx = JobContext(engine, settings, job_name)
        started = time.perf_counter()
        try:
            module.main(job_arguments(settings, job_name, interval_start, interval_end), ctx)
        finally:
            ctx.close()
        return {"job": job_name, **ctx.metrics, "specs": ctx.specs,
                "duration_s": round(time.perf_counter() - started, 3)}


def run_lake_clean(settings: Settings, interval_start: datetime, interval_end: datetime) -> dict:
    """Run every clean job (sales first), then register the clean tables in the Glue Catalog."""
    started = time.perf_counter()
    jobs = {name: run_job(settings, name, interval_start, interval_end) for name in CLEAN_JOBS}
    specs = {t: spec for j in jobs.values() for t, spec in j.pop("specs").items()}
    catalog = register_clean_tables(settings, specs=specs)
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
    """``python -m lifecycle.jobs.runner --JOB_NAME clean_sales|all --interval_start <iso>
    --interval_end <iso>``: run a job (or every clean job) against ``Settings.from_env()``."""
    import json
    import sys

    args = get_resolved_options(sys.argv if argv is None else argv,
                                ["JOB_NAME", "interval_start", "interval_end"])
    settings = Settings.from_env()
    start, end = (datetime.fromisoformat(args[k]) for k in ("interval_start", "interval_end"))
    result = (run_lake_clean(settings, start, end) if args["JOB_NAME"] == "all"
              else run_job(settings, args["JOB_NAME"], start, end))
    print(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    # through the package module, so the jobs share this process's one engine
    from lifecycle.jobs.runner import main as _main

    _main()
