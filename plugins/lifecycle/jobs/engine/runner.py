"""The Glue-style job runner: runs the jobs of ``lifecycle.jobs`` on DuckDB through SQLFrame.

Input: ``Settings``, a job name (a module ``lifecycle.jobs.<job_name>`` with
``main(argv, ctx)``) and the data interval. Output: the job's tables written to the lake and
a run-metadata dict ``{job, rows_in: {input: n}, rows_out: {table: n}, rejected, files_in,
duration_s}``; ``run_lake_clean`` runs every clean job and reports the snapshot of every lake
table (each commit registered itself in the Glue Catalog).

The contract is AWS Glue's: a job is a script that reads Glue-style arguments
(``--JOB_NAME x --raw_bucket ...``, parsed by ``get_resolved_options`` as
``awsglue.utils.getResolvedOptions`` does) and writes its transformation in the PySpark
DataFrame API. The runner is the local ``GlueContext``: it makes one DuckDB connection per
process (httpfs from the ``duckdb-extension-httpfs`` wheel, an S3 secret from the settings,
session time zone UTC as ``spark.sql.session.timeZone`` would be on Glue), activates SQLFrame
on it so ``from pyspark.sql import ...`` resolves to SQLFrame, and hands each job a
``DuckDBJobContext`` (``duckdb_context``: reads; ``duckdb_writes``: contract-checked writes,
one Iceberg commit per table). What a job may call is ``contract.JobContext``, the same on Spark.
"""


from __future__ import annotations

import importlib
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime

from lifecycle.clients import aws, configure_s3, connect_duckdb
from lifecycle.jobs.engine import bookmarks
from lifecycle.jobs.engine.bookmarks import Bookmark
from lifecycle.jobs.engine.contract import (
    JOBS,
    FullRebuild,
    JobError,
    get_resolved_options,
    job_arguments,
    utc,
)
from lifecycle.jobs.engine.duckdb_context import DuckDBJobContext, Engine
from lifecycle.lake.catalog import CLEAN_TABLES, CURATED_TABLES
from lifecycle.lake.iceberg import describe_tables
from lifecycle.settings import Settings

_ENGINE: Engine | None = None
# SQLFrame's activate() swaps the process-wide `pyspark` modules and its session is a
# singleton bound to one connection: one engine per process, jobs run one at a time.
_ENGINE_LOCK = threading.RLock()


def shared_engine(settings: Settings) -> Engine:
    """This process's one DuckDB engine (made on first use, its S3 settings refreshed after)."""
    global _ENGINE
    if _ENGINE is None:
        con = connect_duckdb(settings)
        import sqlframe

        sqlframe.activate(engine="duckdb", conn=con)
        from pyspark.sql import SparkSession  # resolves to SQLFrame from here on

        _ENGINE = Engine(con, SparkSession.builder.getOrCreate())
    else:
        configure_s3(_ENGINE.con, settings)
    return _ENGINE


# ---- public entry points --------------------------------------------------------------------

def run_job(settings: Settings, job_name: str, interval_start: datetime,
            interval_end: datetime, bookmark_option: str | None = None) -> dict:
    """Run one Glue-style job of ``lifecycle.jobs``; returns its run metadata.

    ``bookmark_option`` (default ``settings.engines.job_bookmark_option``): Glue's
    ``--job-bookmark-option``. Enabled, a job with a bookmark runs incrementally and the
    bookmark advances only after its last write (see ``lifecycle.jobs.engine.bookmarks``).
    """
    if job_name not in JOBS:
        raise JobError(f"unknown job {job_name!r}; jobs: {', '.join(JOBS)}")
    option = bookmark_option or settings.engines.job_bookmark_option
    if option not in bookmarks.OPTIONS:
        raise JobError(f"--job-bookmark-option {option!r}: use one of {', '.join(bookmarks.OPTIONS)}")
    argv = job_arguments(settings, job_name, interval_start, interval_end)
    argv[argv.index("--job-bookmark-option") + 1] = option
    with _ENGINE_LOCK:
        engine = shared_engine(settings)
        module = importlib.import_module(f"lifecycle.jobs.{job_name}")
        started = time.perf_counter()
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
        result = {"job": job_name, **ctx.metrics,
                  "duration_s": round(time.perf_counter() - started, 3)}
        publish_job_run(settings, result)
        return result


def _run_module(module, argv, engine, settings, job_name, mark):
    ctx = DuckDBJobContext(engine, settings, job_name, mark)
    try:
        module.main(argv, ctx)
    except FullRebuild as why:
        ctx.close()
        ctx = DuckDBJobContext(engine, settings, job_name, None)
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
    aws(settings, "cloudwatch").put_metric_data(Namespace=settings.names.metrics_namespace, MetricData=[
        {"MetricName": name, "Dimensions": dims, "Timestamp": now, "Value": value or 0.0,
         "Unit": "Seconds" if name.endswith("Seconds") else "Count"}
        for name, value in values.items()])


def run_lake_clean(settings: Settings, interval_start: datetime, interval_end: datetime) -> dict:
    """Run every clean job (sales first), then report every lake table's current snapshot.

    One run at a time: Airflow's ``max_active_runs=1`` keeps the DAG's runs apart, and a run
    outside the scheduler (``lifecycle jobs run all`` beside the scheduled one) waits on a
    Postgres session advisory lock (released when the process ends, even by a kill). Two
    runs at once would both merge the same new raw objects: the second would quarantine the
    first's events as duplicates of themselves (the chaos suite's case 7 found it)."""
    with lake_lock(settings):
        return _run_lake_clean(settings, interval_start, interval_end)


@contextmanager
def lake_lock(settings: Settings):
    """Held while the lake is written: by a lake run, and by table maintenance
    (``lifecycle.jobs.maintenance``), which rewrites files a run would merge against."""
    from lifecycle.clients import pg

    with pg(settings, settings.pg.sales_db, autocommit=True) as lock, lock.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtext('lifecycle:lake_clean'))")
        yield


def _run_lake_clean(settings: Settings, interval_start: datetime, interval_end: datetime) -> dict:
    started = time.perf_counter()
    jobs = {name: run_job(settings, name, interval_start, interval_end) for name in JOBS}
    # every commit registered itself in the Glue Catalog: this reports each table's snapshot
    catalog = describe_tables(settings, [*CLEAN_TABLES.values(), *CURATED_TABLES.values()])
    return {
        "interval_start": utc(interval_start).isoformat(),
        "interval_end": utc(interval_end).isoformat(),
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

        settings = replace(settings, engines=replace(settings.engines, job_bookmark_option=option))
    start, end = (datetime.fromisoformat(args[k]) for k in ("interval_start", "interval_end"))
    result = (run_lake_clean(settings, start, end) if args["JOB_NAME"] == "all"
              else run_job(settings, args["JOB_NAME"], start, end))
    print(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    # through the package module, so the jobs share this process's one engine
    from lifecycle.jobs.engine.runner import main as _main

    _main()
