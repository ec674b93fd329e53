"""`lifecycle jobs ...` and `lifecycle lake ...`: the lake's Glue-style jobs, bookmarks, grants, Spark and Glue runs.

Input: the settings and each command's options. Output: ``register(app)`` adds the `jobs` and
`lake` groups to the root app.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from lifecycle.cli.support import (
    FAILED,
    USAGE,
    echo_json,
    fail,
    group,
    load_settings,
    progress,
    unknown_name_message,
)

jobs_app = group("The lake's Glue-style jobs and their bookmarks.", "lifecycle jobs list")
lake_app = group("The lake's Iceberg tables, Lake Formation grants, Spark and Glue runs.",
                 "lifecycle lake snapshots orders")


@lake_app.command("grants")
def lake_grants():
    """Lake Formation grants in effect: principal, resource, permissions (infra/lakeformation.yaml).

    \b
    Example:
      lifecycle lake grants
    """
    from lifecycle.infra import lakeformation
    from lifecycle.lake import query as lake_sql

    rows = lakeformation.effective_grants(load_settings(services=True))
    if not rows:
        typer.echo("no Lake Formation grants (run `lifecycle infra apply`)")
        raise typer.Exit(FAILED)
    typer.echo(lake_sql.format_table(["principal", "resource", "permissions"], rows))


@lake_app.command("maintain")
def lake_maintain():
    """Iceberg maintenance now: compaction, snapshot expiry, unreferenced files (DAG lake_maintenance).

    \b
    Example:
      lifecycle lake maintain
      LIFECYCLE_LAKE_SNAPSHOT_MAX_AGE_HOURS=0 LIFECYCLE_LAKE_SNAPSHOTS_KEPT=5 lifecycle lake maintain
    """
    from lifecycle.jobs.maintenance import maintain

    echo_json(maintain(load_settings(services=True)))


@lake_app.command("snapshots")
def lake_snapshots(table: str = typer.Argument(..., help="a clean or curated table")):
    """A lake table's snapshots, oldest first: id, commit time, operation, files, rows.

    The ids are what `lifecycle query --as-of` and `lifecycle recover lake --snapshot` take.

    \b
    Example:
      lifecycle lake snapshots orders
    """
    from lifecycle.lake import iceberg
    from lifecycle.lake import query as lake_sql
    from lifecycle.lake.catalog import lake_table

    try:
        spec = lake_table(table)
    except KeyError as exc:
        fail(str(exc).strip("'\""), USAGE)
    tbl = iceberg.load_table(load_settings(services=True), spec)
    if tbl is None:
        fail(f"{table} has no Iceberg table yet (run the lake jobs: lifecycle jobs run)")
    current = tbl.current_snapshot().snapshot_id if tbl.current_snapshot() else None
    rows = []
    for snap in sorted(tbl.metadata.snapshots, key=lambda s: s.timestamp_ms):
        summary = snap.summary.additional_properties if snap.summary else {}
        rows.append([snap.snapshot_id, datetime.fromtimestamp(snap.timestamp_ms / 1000, UTC).isoformat(timespec="seconds"),
                     (snap.summary.operation.value if snap.summary else "") + (
                         " (compaction)" if summary.get("lifecycle.maintenance") == "compaction" else ""),
                     summary.get("added-data-files", "0"), summary.get("deleted-data-files", "0"),
                     summary.get("total-records", "0"), "*" if snap.snapshot_id == current else ""])
    typer.echo(lake_sql.format_table(["snapshot_id", "committed_at", "operation", "files_added",
                                      "files_deleted", "rows", "current"], rows))


@lake_app.command("spectrum-ddl")
def lake_spectrum_ddl(role_arn: str = typer.Option(None, help="the IAM role Redshift assumes (default: "
                                                                "LIFECYCLE_REDSHIFT_COPY_ROLE_ARN)")):
    """Print the Redshift Spectrum DDL that reads the lake's Iceberg tables from Redshift.

    One external schema per Glue database of the lake (docs/aws.md, "The lakehouse on Redshift").

    \b
    Example:
      LIFECYCLE_TARGET=aws lifecycle lake spectrum-ddl --role-arn arn:aws:iam::111122223333:role/spectrum
    """
    from lifecycle.warehouse.redshift import spectrum_ddl

    try:
        typer.echo(spectrum_ddl(load_settings(), role_arn))
    except ValueError as exc:
        fail(str(exc), USAGE)


@lake_app.command("spark-run")
def lake_spark_run(
    root: str = typer.Option(None, help="local lake mirror; default <LIFECYCLE_HOME>/spark-lake"),
    jobs: str = typer.Option("all", help="comma-separated jobs of lifecycle.jobs, or all"),
):
    """Run the clean jobs on real Apache Spark (needs Java + pyspark), on a local copy of raw.

    Output under <root>/<bucket>/ (README, "The same jobs on Apache Spark").

    \b
    Example:
      lifecycle lake spark-run
      lifecycle lake spark-run --jobs clean_orders,clean_events
    """
    import importlib.util
    import shutil

    from lifecycle.cli.support import java_missing_message, pyspark_missing_message

    if shutil.which("java") is None:
        fail(java_missing_message(), USAGE)
    if importlib.util.find_spec("pyspark") is None:
        fail(pyspark_missing_message(), USAGE)
    from lifecycle.jobs.engine.contract import CLEAN_JOBS, job_arguments
    from lifecycle.jobs.engine.spark_context import SparkJobError, run_job_spark
    from lifecycle.jobs.engine.spark_lake import mirror_lake

    s = load_settings(services=True)
    target = root or str(s.home / "spark-lake")
    names = list(CLEAN_JOBS) if jobs == "all" else jobs.split(",")
    if bad := unknown_name_message("job(s)", names, list(CLEAN_JOBS)):
        fail(bad, USAGE)
    # a fresh copy each time: the scratch lake's own zones only (never the folder itself)
    for zone in ("raw", "clean", "quarantine", "curated"):
        shutil.rmtree(f"{target}/{s.names.bucket(zone)}", ignore_errors=True)
    copied = mirror_lake(s, target)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        with progress(f"running {len(names)} job(s) on Spark"):
            result = run_job_spark(names, target, job_arguments(s, "spark", end - timedelta(days=1), end))
    except SparkJobError as exc:
        fail(str(exc))
    echo_json({"lake_root": target, "mirrored": copied, **result})


@lake_app.command("glue-deploy")
def lake_glue_deploy():
    """Deploy the clean jobs as AWS Glue jobs (script and package to S3, one job each).

    Uploads the Glue entry script and the package to the deploy bucket and creates or updates
    one AWS Glue job per clean job (docs/glue-jobs.md).

    \b
    Example:
      LIFECYCLE_TARGET=aws LIFECYCLE_JOBS_ENGINE=glue lifecycle lake glue-deploy
    """
    from lifecycle.jobs.glue.deploy import deploy

    echo_json(deploy(load_settings()))


@jobs_app.command("run")
def jobs_run(
    job: str = typer.Argument("all", help="a job name (lifecycle jobs list) or 'all'"),
    bookmark: str = typer.Option(None, "--job-bookmark-option",
                                 help="job-bookmark-enable (default) | job-bookmark-disable | job-bookmark-pause"),
):
    """Run a lake job (or all, in order) now, as the lake_clean DAG does.

    \b
    Example:
      lifecycle jobs run all
      lifecycle jobs run clean_events --job-bookmark-option job-bookmark-disable
    """
    from dataclasses import replace

    from lifecycle.jobs.engine import bookmarks, runner

    if job != "all" and (bad := unknown_name_message("job", [job], ["all", *runner.JOBS])):
        fail(bad, USAGE)
    if bookmark and (bad := unknown_name_message("--job-bookmark-option", [bookmark], list(bookmarks.OPTIONS))):
        fail(bad, USAGE)
    s = load_settings(services=True)
    if bookmark:
        s = replace(s, engines=replace(s.engines, job_bookmark_option=bookmark))
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    try:
        with progress(f"running {'every lake job' if job == 'all' else job}"):
            result = (runner.run_lake_clean(s, end - timedelta(hours=1), end) if job == "all"
                      else runner.run_job(s, job, end - timedelta(hours=1), end))
    except runner.JobError as exc:
        fail(str(exc))
    echo_json(result)


@jobs_app.command("list")
def jobs_list():
    """The jobs in run order, with their bookmark state.

    \b
    Example:
      lifecycle jobs list
    """
    from lifecycle.clients import aws
    from lifecycle.jobs.engine import bookmarks, runner

    s = load_settings(services=True)
    s3 = aws(s, "s3")
    try:
        s3.head_bucket(Bucket=s.names.bucket("clean"))
    except s3.exceptions.ClientError as exc:
        fail(f"the clean bucket {s.names.bucket('clean')} is not there ({exc.response['Error']['Code']}): "
              "run `lifecycle infra apply` (or `make demo`)", USAGE)
    for row in bookmarks.describe(s, list(runner.JOBS)):
        state = (f"bookmark of {row['updated_at']}" + (" (in flight: next run is full)" if row["in_flight"] else "")
                 + "; objects seen: " + ", ".join(f"{k} {v}" for k, v in row["objects"].items())
                 if row["bookmark"] else "no bookmark (next run is full)")
        typer.echo(f"{row['job']:<16} {state}")


@jobs_app.command("reset-bookmark")
def jobs_reset_bookmark(jobs: Annotated[list[str] | None, typer.Argument(help="job names; default: every job")] = None):
    """Forget what the jobs processed: their next run reprocesses everything (a full rebuild).

    \b
    Example:
      lifecycle jobs reset-bookmark                 # every job
      lifecycle jobs reset-bookmark clean_events
    """
    from lifecycle.jobs.engine import bookmarks, runner

    names = jobs or list(runner.JOBS)
    if bad := unknown_name_message("job(s)", names, list(runner.JOBS)):
        fail(bad, USAGE)
    had = bookmarks.reset(load_settings(services=True), names)
    typer.echo(f"reset: {', '.join(had) or 'none had a bookmark'}")


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(lake_app, name="lake")
