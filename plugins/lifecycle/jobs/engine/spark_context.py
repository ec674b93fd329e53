"""The Glue-style jobs on real Apache Spark: ``SparkJobContext``, the Spark twin of ``JobContext``.

Input: a ``SparkSession``, a lake (``spark_lake.LocalLake(root)``: a local directory that mirrors
the buckets as ``<root>/<bucket>/<key>``, secrets under ``<root>/_secrets/<name>``; or
``spark_lake.S3Lake``: real ``s3://`` through boto3, for AWS Glue / EMR) and a job module of
``lifecycle.jobs`` with ``main(argv, ctx)``.
Output: the job's tables written with Spark's own writer
(``df.write.partitionBy(...).mode("overwrite").parquet(...)``) and the same run-metadata
dict as ``runner.run_job`` (``rows_in``, ``rows_out``, ``rejected``, ``files_in``...).

The job code is the same module the DuckDB runner runs; only the context differs. Reads:

- ``read_dms``: ``spark.read.parquet`` (``mergeSchema``: DMS files of one table may differ
  by new columns) with ``_metadata.file_name`` as ``_file`` and ``_metadata.row_index``
  (Parquet only, Spark >= 3.4) as ``_row``: the DMS replay order.
- ``read_lines``: the ``binaryFile`` reader, one row per object, split on ``\\n`` with
  ``posexplode`` (line numbers as in the DuckDB runner); objects that are not valid UTF-8
  (``is_valid_utf8``, Spark >= 4.0) and GZIP objects are decoded on the driver with
  backslash escapes, exactly as ``duckdb_context.DuckDBJobContext`` does, so their lines reach quarantine
  with the same payload. ``json_ok`` is computed with Spark built-ins to the same rule as
  the runner's DuckDB ``CASE`` (a JSON object whose top-level keys are unique); where
  the two JSON parsers disagree on non-standard input is in docs/glue-jobs.md.

Spark replaces ``pyspark`` as a package, and SQLFrame's ``activate()`` replaces the
``pyspark`` modules process-wide, so the Spark run is always its own process:
``run_job_spark`` starts ``python -m lifecycle.jobs.engine.spark_context --lake_root <dir> --jobs
a,b -- <Glue-style arguments>`` and returns the run metadata it prints. Nothing in this module
imports ``pyspark`` at import time.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

from lifecycle.jobs.engine.contract import JobError, check_output, job_module, new_metrics
from lifecycle.jobs.engine.spark_lake import LocalLake
from lifecycle.lake.catalog import QUARANTINE, TableSpec, lake_table
from lifecycle.lake.iceberg import data_files, overwrite_partitions, partition_value, replace_rows

RESULT_MARKER = "LIFECYCLE_SPARK_RESULT "


class SparkJobError(JobError):
    """A Spark job broke its contract or its process failed; the message says how."""


# ---- types ----------------------------------------------------------------------------------

_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$", re.IGNORECASE)
# lifecycle.lake.catalog's logical types -> Spark SQL type names. `timestamptz` is Spark's
# TIMESTAMP (an instant, shown in the session time zone), what the jobs' cast("timestamp")
# gives on both engines; a naive `timestamp` is TIMESTAMP_NTZ.
_SPARK_TYPES = {"bigint": "bigint", "int": "int", "double": "double", "string": "string",
                "timestamptz": "timestamp", "timestamp": "timestamp_ntz", "boolean": "boolean",
                "date": "date"}
_FROM_SPARK = {"bigint": "bigint", "int": "int", "smallint": "int", "tinyint": "int", "double": "double",
               "float": "double", "string": "string", "timestamp": "timestamptz",
               "timestamp_ntz": "timestamp", "boolean": "boolean", "date": "date"}


def spark_type(logical: str) -> str:
    m = _DECIMAL.match(logical)
    return f"decimal({m.group(1)},{m.group(2)})" if m else _SPARK_TYPES[logical]


def logical_from_spark(simple: str) -> str:
    if _DECIMAL.match(simple):
        return simple.lower()
    if simple not in _FROM_SPARK:
        raise SparkJobError(f"no lake type for Spark type {simple}")
    return _FROM_SPARK[simple]


def _schema(columns) -> str:
    """A DDL schema string (``a bigint, b string``) for ``createDataFrame`` / readers."""
    return ", ".join(f"`{c}` {spark_type(t)}" for c, t in columns)


# ---- the session ------------------------------------------------------------------------------

def to_arrow(df):
    """A Spark DataFrame as an Arrow table: ``toArrow`` (Spark 4) or, on Glue 5's Spark 3.5,
    the collection ``toPandas`` also uses (``_collect_as_arrow``: Spark 3.5 has no public one)."""
    import pyarrow as pa

    if hasattr(df, "toArrow"):
        return df.toArrow()
    return pa.Table.from_batches(df._collect_as_arrow())  # noqa: SLF001


def spark_session(app_name: str = "lifecycle", master: str = "local[2]"):
    """A small local SparkSession configured as the lake expects (UTC, Parquet micros)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no lookup of the host's name
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(master).appName(app_name)
        # as on Glue with --conf spark.sql.session.timeZone=UTC: dates of timestamps are UTC
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Spark's default is INT96; DuckDB and Athena expect the standard timestamp type
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.sources.partitionOverwriteMode", "static")
        # tuned for small local runs, where compiling costs more than running: the JVM's
        # quick C1 compiler only, a serial GC, no whole-stage code generation (measured on
        # the engine-equivalence data: 38-40 s instead of 49-71 s for the four clean jobs)
        .config("spark.driver.extraJavaOptions",
                "-Dlog4j2.level=error -XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.sql.codegen.wholeStage", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _valid_utf8(F):
    """Whether ``_text`` (an object's bytes) is valid UTF-8: ``is_valid_utf8`` on Spark 4;
    on Spark 3.5 (AWS Glue 5.0) a decode/encode round trip, which replaces invalid bytes
    there (Spark 4 raises instead, hence the function)."""
    if hasattr(F, "is_valid_utf8"):
        return F.is_valid_utf8("_text")
    return F.encode(F.decode(F.col("content"), "UTF-8"), "UTF-8") == F.col("content")


def lpad_by_name(col, length, pad: str):
    """SQL ``lpad(col, length, pad)`` with a Column length, on PySpark 3.5 and 4."""
    from pyspark.sql import functions as F

    return F.call_function("lpad", F.col(col) if isinstance(col, str) else col, length, F.lit(pad))


def spark_compat() -> list[str]:
    """Let the job code run on PySpark 3.5 (AWS Glue 5.0) as on 4.x; returns what it patched.

    ``F.lpad(col, len, pad)`` takes a Column ``len`` only from PySpark 4.0 (clean_sales
    pads the masked phone to the number's length); on 3.5 the same SQL function is called
    by name (``F.call_function``, PySpark >= 3.5). A no-op on PySpark 4.
    """
    import pyspark
    from pyspark.sql import Column
    from pyspark.sql import functions as F

    if int(pyspark.__version__.split(".")[0]) >= 4:
        return []
    original = F.lpad

    def lpad(col, len, pad):  # PySpark's own parameter names
        return lpad_by_name(col, len, pad) if isinstance(len, Column) else original(col, len, pad)

    F.lpad = lpad
    return ["functions.lpad(len=Column)"]


# ---- the job context ------------------------------------------------------------------------

class SparkJobContext:
    """``contract.JobContext`` on Spark: reads, contract-checked partitioned writes."""

    def __init__(self, spark, lake, job_name: str):
        self.spark = spark
        self.lake = lake
        self.job_name = job_name
        self.metrics: dict[str, Any] = new_metrics("full")
        self.specs: dict[str, TableSpec] = {}
        self._persisted: list = []
        # always a full run: job bookmarks are the DuckDB engine's (on AWS Glue the job's
        # own bookmark option is passed through; see docs/glue-jobs.md)
        self.incremental = False

    # -- helpers
    def list_keys(self, bucket: str, pattern: str) -> list[str]:
        """Keys of ``bucket`` matching ``pattern`` (``*`` within one path segment), sorted."""
        return self.lake.list_keys(bucket, pattern)

    def get_secret(self, name: str) -> str:
        return self.lake.get_secret(name)

    def _empty(self, columns):
        return self.spark.createDataFrame([], _schema(columns))

    # -- reads
    def read_dms(self, bucket: str, prefix: str, columns: dict[str, str], name: str):
        """A DMS table folder (LOAD + CDC Parquet) with ``Op``, ``_commit_ts``, the declared
        columns, ``_file`` (object name) and ``_row`` (row number within the object)."""
        from pyspark.sql import functions as F

        keys = self.list_keys(bucket, f"{prefix.rstrip('/')}/*.parquet")
        decl = {"Op": "string", "_commit_ts": "timestamptz", **columns}
        if not keys:
            df = self._empty([*decl.items(), ("_file", "string"), ("_row", "bigint")])
        else:
            raw = self.spark.read.option("mergeSchema", "true").parquet(*[self.lake.uri(bucket, k) for k in keys])
            present = {f.name: f for f in raw.schema.fields}
            cols = [(F.col(f"`{c}`").cast(spark_type(t)) if c in present
                     else F.lit(None).cast(spark_type(t))).alias(c) for c, t in decl.items()]
            # columns the source gained after the contract (additive change) keep their type
            extras = [F.col(f"`{c}`") for c in present if c not in decl]
            df = raw.select(*cols, *extras, F.col("_metadata.file_name").alias("_file"),
                            F.col("_metadata.row_index").cast("bigint").alias("_row"))
        return self._counted(df, name, len(keys))

    def _counted(self, df, name: str, files: int):
        """Persist a read (its count for the metrics materializes it once; every consumer of
        the job then reads the cache, not the objects again)."""
        df = self.persist(df, name)
        self.metrics["files_in"][name] = files
        self.metrics["rows_in"][name] = df.count()
        return df

    def read_lines(self, bucket: str, pattern: str | None, name: str):
        """Newline-delimited text objects as ``raw_key, line_no, payload, json_ok`` (blank
        lines skipped; the same rows as ``DuckDBJobContext.read_lines``)."""
        from pyspark.sql import functions as F

        keys = self.list_keys(bucket, pattern) if pattern else []
        columns = [("raw_key", "string"), ("line_no", "bigint"), ("payload", "string")]
        plain = [k for k in keys if not k.endswith(".gz")]
        lossy = [k for k in keys if k.endswith(".gz")]
        parts = []
        if plain:
            prefix = self.lake.uri(bucket, "")
            files = (
                self.spark.read.format("binaryFile").load([self.lake.uri(bucket, k) for k in plain])
                .select(F.substring(F.col("path"), len(prefix) + 1, 1 << 20).alias("raw_key"),
                        F.col("content").cast("string").alias("_text"), "content")
            )
            valid = _valid_utf8(F)
            bad = [r["raw_key"] for r in files.where(~valid).select("raw_key").collect()]
            lossy += bad
            lines = (files.where(valid)
                     .select("raw_key", F.posexplode(F.split(F.col("_text"), "\n")).alias("_pos", "_line")))
            parts.append(lines.select(
                "raw_key", (F.col("_pos") + 1).cast("bigint").alias("line_no"),
                F.regexp_replace(F.col("_line"), "\r+\\z", "").alias("payload")))
        if lossy:
            # decoded here as DuckDBJobContext's lossy read does (gunzip, backslash escapes)
            rows = []
            for key in sorted(lossy):
                body = self.lake.read_bytes(bucket, key)
                if key.endswith(".gz"):
                    body = gzip.decompress(body)
                text = body.decode("utf-8", errors="backslashreplace")
                rows += [(key, i, line.rstrip("\r")) for i, line in enumerate(text.split("\n"), start=1)]
            parts.append(self.spark.createDataFrame(rows, _schema(columns)))
        df = self._empty(columns)
        for part in parts:
            df = df.unionByName(part)
        df = df.where(F.trim(F.col("payload")) != "").withColumn("json_ok", self.json_ok(F.col("payload")))
        return self._counted(df, name, len(keys))

    @staticmethod
    def json_ok(payload):
        """The runner's rule (a JSON object with unique top-level keys) in Spark built-ins:
        ``json_object_keys`` is null unless the text is a JSON object; Jackson stops after the
        object, so text after its closing brace is checked separately."""
        from pyspark.sql import functions as F

        keys = F.json_object_keys(payload)
        return F.coalesce(
            keys.isNotNull() & (F.size(keys) == F.size(F.array_distinct(keys)))
            & payload.rlike(r"\}\s*\z"),  # nothing but JSON whitespace after the object
            F.lit(False))

    def latest_dynamodb_export(self, bucket: str, prefix: str) -> str | None:
        prefix = prefix.rstrip("/") + "/"
        done = self.list_keys(bucket, f"{prefix}*/manifest-summary.json")
        return f"{prefix}{done[-1][len(prefix):].split('/')[0]}/" if done else None

    def read_clean(self, bucket: str, table: str, changed_only: bool = False,
                   columns: list[str] | None = None, where_in: tuple[str, Any] | None = None):
        """A lake table as its current Iceberg snapshot has it (empty with its columns before
        the first commit): its data files, read as Parquet (a file written before a column
        was added lacks it: null); ``changed_only`` is the whole table too (a full run).
        ``columns``: only these; ``where_in=(column, df)``: only the rows whose ``column`` is
        among ``df``'s first column (a semi join), as on DuckDB."""
        from pyspark.sql import functions as F

        spec = lake_table(table)
        wanted = [(c, t) for c, t in spec.all_columns if columns is None or c in columns]
        files = list(data_files(self.lake.iceberg_table(spec, bucket)))
        if files:
            raw = self.spark.read.option("mergeSchema", "true").parquet(*files)
            df = raw.select(*[(F.col(f"`{c}`") if c in raw.columns else F.lit(None)).cast(spark_type(t)).alias(c)
                              for c, t in wanted])
            if where_in is not None:
                column, values = where_in
                wanted_keys = values.select(F.col(values.columns[0]).alias(column)).distinct()
                df = df.join(wanted_keys, [column], "left_semi")
        else:
            df = self._empty(wanted)
        df = self.persist(df, f"clean_{table}")
        self.metrics["rows_in"][f"clean.{table}"] = df.count()
        return df

    def persist(self, df, label: str):
        """Materialize ``df`` once for several consumers."""
        df = df.persist()
        self._persisted.append(df)
        return df

    # -- writes
    def _check(self, df, spec: TableSpec, label: str) -> TableSpec:
        """Check ``df`` against the contract (``contract.check_output``, as on DuckDB)."""
        got = [(f.name, f.dataType.simpleString()) for f in df.schema.fields]
        return check_output(self, label, got, spec, spark_type, logical_from_spark)

    @staticmethod
    def _ordered(df, spec: TableSpec):
        """One object per partition (or one for the table), rows in key order."""
        from pyspark.sql import functions as F

        if spec.partition:
            df = df.repartition(F.col(spec.partition[0]))
        else:
            df = df.repartition(1)
        return df.sortWithinPartitions(*spec.keys)

    def write_clean(self, df, bucket: str, table: str) -> int:
        """Replace lake ``table`` with ``df`` (partitions no row is in any more disappear): one
        ``overwrite`` snapshot committed by pyiceberg from Arrow (the Iceberg Spark runtime
        is a Maven jar, not installable here; on Glue 5 it is built in)."""
        spec = self._check(df, lake_table(table), table)
        rows = replace_rows(self.lake.iceberg_table(spec, bucket), to_arrow(self._ordered(df, spec)))
        self.metrics["rows_out"][table] = rows
        return rows

    def upsert_clean(self, df, changed_keys_df, bucket: str, table: str) -> int:
        """Merge ``df`` into lake ``table`` by its keys: the rows of the keys in
        ``changed_keys_df`` (changed or deleted) are replaced by the rows of ``df``, in one
        commit that rewrites only the partitions holding such keys (an overwrite filtered on
        the partition column). A table not written yet is simply written. Returns the rows
        written."""
        from pyspark.sql import functions as F

        spec = self._check(df, lake_table(table), table)
        keys = list(spec.keys)
        target = self.lake.iceberg_table(spec, bucket)
        if target.current_snapshot() is None:
            return self.write_clean(df, bucket, table)
        existing = self.read_clean(bucket, table)
        self.metrics["rows_in"].pop(f"clean.{table}", None)
        changed = changed_keys_df.select(*keys).distinct()
        extras = [c for c in df.columns if c not in existing.columns]
        for c in extras:  # a column new in this run: null in the rows written before
            existing = existing.withColumn(c, F.lit(None).cast(df.schema[c].dataType))
        existing = existing.select(*df.columns)
        pcol = spec.partition[0] if spec.partition else None
        affected: list[str] = []
        if pcol:
            touched = (existing.join(changed, keys, "left_semi").select(pcol)
                       .union(df.select(pcol)).distinct())
            affected = [partition_value(r[pcol]) for r in touched.collect()]
            kept = (existing.join(touched, [pcol], "left_semi").join(changed, keys, "left_anti"))
        else:
            kept = existing.join(changed, keys, "left_anti")
        merged = self._ordered(kept.unionByName(df), spec)
        rows = overwrite_partitions(target, to_arrow(merged), pcol, affected)
        self.metrics["rows_out"][table] = rows
        return rows

    def write_quarantine(self, df, bucket: str, source: str) -> int:
        """Append this run's rejected records to ``<source>/`` as new objects (append-only:
        one run never rewrites another's objects)."""
        self._check(df, QUARANTINE, f"quarantine_{source}")
        out = df.repartition(1).sortWithinPartitions(*QUARANTINE.keys).persist()
        try:
            rows = out.count()
            if rows:
                out.write.mode("append").parquet(self.lake.uri(bucket, f"{source}/"))
        finally:
            out.unpersist()
        self.metrics["rejected"] += rows
        return rows

    def merge_quarantine(self, df, bucket: str, source: str) -> int:
        return self.write_quarantine(df, bucket, source)

    def changed_partition_values(self, table: str) -> list[str]:
        return []  # only used by incremental runs

    def require_no_late_references(self, bucket: str, source: str, reason: str, field: str, known) -> None:
        return None  # only for incremental runs: a full run classifies every record again

    def clean_inputs_unchanged(self, bucket: str, tables: list[str]) -> bool:
        return False

    def hold_back_columns(self, table: str, columns: list[str]) -> None:
        if columns:
            self.metrics["columns_held_back"][table] = list(columns)

    def add_rejected(self, rows: int) -> None:
        self.metrics["rejected"] += rows

    def close(self) -> None:
        for df in self._persisted:
            df.unpersist()
        self._persisted.clear()


# ---- running jobs ---------------------------------------------------------------------------

def run_jobs(spark, lake, job_names: list[str], argv: list[str]) -> dict:
    """Run jobs one after another in this process's SparkSession; ``argv`` is the
    Glue-style arguments without ``--JOB_NAME`` (each job gets its own)."""
    out = {}
    for job_name in job_names:
        ctx = SparkJobContext(spark, lake, job_name)
        started = time.perf_counter()
        try:
            job_module(job_name).main([job_name, "--JOB_NAME", job_name, *argv], ctx)
        finally:
            ctx.close()
        out[job_name] = {"job": job_name, **ctx.metrics,
                         "specs": {t: [list(c) for c in s.all_columns] for t, s in ctx.specs.items()},
                         "duration_s": round(time.perf_counter() - started, 3)}
    return out


def run_job_spark(job_name: str | list[str], root: str | os.PathLike, argv: list[str],
                  timeout: float = 600, extra_path: list[str] | None = None) -> dict:
    """Run one job (or several, in order, sharing one JVM) on real Spark in a fresh process,
    on the local lake mirror ``root``. ``argv``: Glue-style arguments (``--raw_bucket x ...``;
    a leading program name and ``--JOB_NAME`` are dropped). Returns ``{job: metadata}`` plus
    ``spark_seconds`` (the child's wall time, JVM start included). ``extra_path``: folders
    put on the child's ``PYTHONPATH`` for job modules outside ``lifecycle.jobs``."""
    names = [job_name] if isinstance(job_name, str) else list(job_name)
    args = list(argv)
    if args and not args[0].startswith("--"):
        args = args[1:]
    if "--JOB_NAME" in args:
        i = args.index("--JOB_NAME")
        del args[i:i + 2]
    cmd = [sys.executable, "-m", "lifecycle.jobs.engine.spark_context", "--lake_root", str(root),
           "--jobs", ",".join(names), "--", *args]
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    if extra_path:  # folders with more job modules (a test's probe)
        env["PYTHONPATH"] = os.pathsep.join([*extra_path, *filter(None, [env.get("PYTHONPATH")])])
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    elapsed = time.perf_counter() - started
    found = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if proc.returncode != 0 or not found:
        raise SparkJobError(f"spark run of {', '.join(names)} failed (exit {proc.returncode}):\n"
                            f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return {**json.loads(found[-1][len(RESULT_MARKER):]), "spark_seconds": round(elapsed, 3)}


def main(argv: list[str] | None = None) -> None:
    """``python -m lifecycle.jobs.engine.spark_context --lake_root DIR --jobs a,b -- --raw_bucket ...``"""
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    own, job_args = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(prog="python -m lifecycle.jobs.engine.spark_context")
    parser.add_argument("--lake_root", required=True, help="local directory mirroring the buckets")
    parser.add_argument("--jobs", required=True, help="comma-separated job modules, run in order")
    opts = parser.parse_args(own)
    spark = spark_session(f"lifecycle-{opts.jobs}")
    try:
        result = run_jobs(spark, LocalLake(opts.lake_root), opts.jobs.split(","), job_args)
    finally:
        spark.stop()
    print(RESULT_MARKER + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
