"""`lifecycle`: the command line for everything outside Airflow.

Input: the command line and the environment (``Settings.from_env()``).
Output: the action's result on stdout; progress and errors on stderr (colour and progress
bars only on a terminal; NO_COLOR=1 turns colour off). Exit codes, the same for every command:
0 success; 1 the command ran and something failed or a check did not pass; 2 it could not
run: a usage or settings error or a missing prerequisite (services not running, a port in
use, Java missing), with a message that says what to do (``lifecycle.cli.support``).

    lifecycle services up|down|status     embedded Postgres + moto
    lifecycle infra apply                  buckets, stream, tables, topic, Glue, IAM
    lifecycle simulate --date 2026-11-26   one business day into the sources
    lifecycle run                          every lifecycle DAG once, in order (dag.test)
    lifecycle reconcile                    source vs lake vs warehouse vs serving
    lifecycle demo                         all of the above, with a report
    lifecycle jobs run all                 the lake's Glue-style jobs (incremental by bookmark)
    lifecycle query "select ..."           ad hoc SQL: lake tables via the Glue Catalog, or the warehouse
    lifecycle lake grants                  Lake Formation grants in effect
    lifecycle lake spark-run               the clean jobs on real Spark, on a local copy of raw
    lifecycle lake glue-deploy             the jobs as AWS Glue jobs (scripts + definitions)
    lifecycle recommend 7                  products similar to product 7 (pgvector)
    lifecycle metabase-provision           the Metabase dashboard of infra/metabase/ via its API
    lifecycle airflow                      Airflow 3 (UI on :8080) on the embedded services
    lifecycle metrics [--html f.html]      latest CloudWatch metrics with a trend
    lifecycle logs <dag> <task>            a task's log from CloudWatch Logs
    lifecycle alarms evaluate|list         CloudWatch alarms (evaluated here on emulators)
    lifecycle observe --date 2026-11-26    data-observability monitors for one day
    lifecycle lineage                      which job produced which dataset (OpenLineage)
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from lifecycle.cli import operations
from lifecycle.cli.support import (
    FAILED,
    OK,
    USAGE,
    echo_json,
    fail,
    load_settings,
    progress,
    services_down_message,
    unknown_name_message,
)
from lifecycle.settings import Settings

EXIT_CODES = ("Exit codes: 0 success; 1 something failed or a check did not pass; 2 usage, settings or a "
              "missing prerequisite (the message says what to do).")


def _group(help_text: str, example: str) -> typer.Typer:
    return typer.Typer(help=help_text, epilog=f"Example: {example}", no_args_is_help=True)


app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True, add_completion=False,
                  epilog=f"Example: lifecycle demo    {EXIT_CODES}")
services_app = _group("Embedded services (pgserver Postgres + moto).", "lifecycle services up")
infra_app = _group("Infrastructure as data (infra/).", "lifecycle infra apply")
cdc_app = _group("Change data capture from the sales database (DMS-style).", "lifecycle cdc status")
jobs_app = _group("The lake's Glue-style jobs and their bookmarks.", "lifecycle jobs list")
app.add_typer(jobs_app, name="jobs")
app.add_typer(services_app, name="services")
app.add_typer(infra_app, name="infra")
alarms_app = _group("CloudWatch alarms of infra/.", "lifecycle alarms list")
app.add_typer(cdc_app, name="cdc")
lake_app = _group("The lake's governance (Lake Formation), Spark and Glue runs.", "lifecycle lake grants")
app.add_typer(lake_app, name="lake")
app.add_typer(alarms_app, name="alarms")


@app.callback()
def _options(ctx: typer.Context) -> None:
    # click already drops colour when stdout is not a terminal; NO_COLOR (no-color.org) always
    if os.environ.get("NO_COLOR"):
        ctx.color = False


def _default_date() -> date:
    return (datetime.now(UTC) - timedelta(days=1)).date()


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"--date {text!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-25", USAGE)


@services_app.command("up")
def services_up():
    """Start Postgres and moto (idempotent).

    \b
    Example:
      lifecycle services up
      LIFECYCLE_PG_PORT=55433 LIFECYCLE_MOTO_PORT=55001 lifecycle services up   # other ports
    """
    from lifecycle.ops import services

    s = load_settings()
    try:
        with progress("starting Postgres and moto"):
            result = services.up(s)
    except services.PortInUseError as exc:
        fail(str(exc), USAGE)
    except services.ServiceError as exc:
        fail(str(exc))
    st = services.status(s)
    typer.echo(f"postgres  127.0.0.1:{s.pg_port}  pid {st.pg_pid}  (databases sales, warehouse, airflow)")
    typer.echo(f"moto      {s.aws_endpoint}  pid {st.moto_pid}")
    if result["environment_reset"]:
        typer.secho("moto was restarted, so its state is new: the sales and warehouse databases were "
                    "recreated to match.", fg=typer.colors.YELLOW)


@services_app.command("down")
def services_down():
    """Stop Postgres and moto (the state stays in .lifecycle/; `make reset` deletes it).

    \b
    Example:
      lifecycle services down
    """
    from lifecycle.ops import services

    services.down(load_settings())
    typer.echo("stopped")


@services_app.command("status")
def services_status():
    """Show whether the embedded services run (ports, pids, memory); exit 1 if not.

    \b
    Example:
      lifecycle services status
    """
    from lifecycle.ops import services

    s = load_settings()
    st = services.status(s)
    typer.echo(f"postgres: {'up' if st.postgres else 'down'} (port {s.pg_port})")
    typer.echo(f"moto:     {'up' if st.moto else 'down'} ({s.aws_endpoint})")
    if st.all_up:
        for k, v in services.rss_mb(s).items():
            typer.echo(f"{k}: {v:.0f}")
    raise typer.Exit(OK if st.all_up else FAILED)


@infra_app.command("apply")
def infra_apply(plan: bool = typer.Option(False, "--plan", help="dry run: print what would change, change nothing")):
    """Create or converge every resource in infra/ on the selected target.

    \b
    Example:
      lifecycle infra apply
      LIFECYCLE_TARGET=aws lifecycle infra apply --plan
    """
    from lifecycle.infra import apply as infra

    s = load_settings(services=True)
    if plan:
        from lifecycle.infra.plan import plan as make_plan
        from lifecycle.infra.plan import print_plan

        print_plan(make_plan(s), typer.echo)
        return
    with progress(f"applying infra/ to {s.target}"):
        result = infra.apply(s)
    echo_json(result)


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
    from lifecycle.jobs.engine.runner import CLEAN_JOBS, job_arguments
    from lifecycle.jobs.engine.spark_context import SparkJobError, mirror_lake, run_job_spark

    s = load_settings(services=True)
    target = root or str(s.home / "spark-lake")
    names = list(CLEAN_JOBS) if jobs == "all" else jobs.split(",")
    if bad := unknown_name_message("job(s)", names, list(CLEAN_JOBS)):
        fail(bad, USAGE)
    # a fresh copy each time: the scratch lake's own zones only (never the folder itself)
    for zone in ("raw", "clean", "quarantine", "curated"):
        shutil.rmtree(f"{target}/{s.bucket(zone)}", ignore_errors=True)
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


@cdc_app.command("status")
def cdc_status():
    """The replication slot, its lag (bytes, seconds) and the raw files per table.

    \b
    Example:
      lifecycle cdc status
    """
    from lifecycle.clients import aws, pg
    from lifecycle.ingest import sales_cdc

    s = load_settings(services=True)
    lag = sales_cdc.slot_lag(s)
    if not lag["exists"]:
        typer.echo(f"slot {sales_cdc.SLOT}: missing (the next ingest_sales run re-snapshots)")
        raise typer.Exit(FAILED)
    with pg(s, s.sales_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT active, restart_lsn::text, confirmed_flush_lsn::text FROM pg_replication_slots "
                    "WHERE slot_name = %s", (sales_cdc.SLOT,))
        active, restart, flushed = cur.fetchone()
    typer.echo(f"slot {sales_cdc.SLOT}: {'active' if active else 'idle'}, restart_lsn {restart}, "
               f"confirmed_flush_lsn {flushed}")
    typer.echo(f"lag: {lag['lag_bytes']} bytes of WAL, {lag['lag_seconds']:.1f} s behind the oldest "
               f"unconsumed commit (alert above {s.cdc_lag_alert_seconds} s)")
    s3 = aws(s, "s3")
    from lifecycle.sources.sales_db import TABLES

    for table in TABLES:
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=s.bucket("raw"), Prefix=f"{sales_cdc.PREFIX}/{table}/") for o in page.get("Contents", [])]
        cdc = [k for k in keys if "LOAD" not in k]
        typer.echo(f"  {table:<12} full load: {'yes' if len(keys) > len(cdc) else 'no'}, CDC files: {len(cdc)}"
                   + (f", newest {cdc[-1].rsplit('/', 1)[-1]}" if cdc else ""))


@cdc_app.command("resnapshot")
def cdc_resnapshot(yes: bool = typer.Option(False, "--yes", help="do not ask")):
    """Recreate the slot and take a new full load (after a breaking schema change).

    \b
    Example:
      lifecycle cdc resnapshot --yes
    """
    from lifecycle.ingest import sales_cdc

    s = load_settings(services=True)
    if not yes:
        typer.confirm("This replaces the raw sales files with a new full load (CDC history is dropped). Go on?",
                      abort=True)
    with progress("full load of the sales database"):
        result = sales_cdc.full_load(s)
    echo_json(result)


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
        s = replace(s, job_bookmark_option=bookmark)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    try:
        with progress(f"running {'every lake job' if job == 'all' else job}"):
            result = (runner.run_lake_clean(s, end - timedelta(hours=1), end) if job == "all"
                      else runner.run_job(s, job, end - timedelta(hours=1), end))
    except runner.JobError as exc:
        fail(str(exc))
    result.pop("specs", None)
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
        s3.head_bucket(Bucket=s.bucket("clean"))
    except s3.exceptions.ClientError as exc:
        fail(f"the clean bucket {s.bucket('clean')} is not there ({exc.response['Error']['Code']}): "
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


@app.command()
def simulate(
    day: str = typer.Option(None, "--date", help="business date (YYYY-MM-DD); default: yesterday UTC"),
    scale: int = typer.Option(200, help="orders per day"),
    seed: int = typer.Option(42),
    bad_rate: float = typer.Option(0.02, help="share of deliberately bad event records"),
    late_rate: float = typer.Option(0.01, help="share of late events (yesterday's, arriving today)"),
):
    """Play one business day of the sales platform into the sources (RDS, Kinesis, DynamoDB).

    \b
    Example:
      lifecycle simulate --date 2026-11-25 --bad-rate 0.05
    """
    from lifecycle.sources.simulator import simulate_day

    d = _parse_date(day) if day else _default_date()
    s = load_settings(services=True)
    with progress(f"simulating {d} ({scale} orders)"):
        result = simulate_day(s, d, seed=seed, scale=scale, bad_rate=bad_rate, late_rate=late_rate)
    echo_json(result)


@app.command()
def run(
    dags: str = typer.Option(None, help="comma-separated DAG ids; default: the whole lifecycle"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show Airflow's task logs on a terminal too "
                                 "(they are always shown when the output is not a terminal)"),
):
    """Run the lifecycle's DAGs once, in order, with Airflow's dag.test().

    On a terminal: a progress bar and the result; elsewhere (CI, a pipe) Airflow's task logs too.

    \b
    Example:
      lifecycle run
      lifecycle run --dags warehouse_load,dbt_build,serve_publish
    """
    from lifecycle.dataops.preflight import PreflightError, check
    from lifecycle.ops import dag_runs as orchestrate

    valid = sorted(p.stem for p in (orchestrate.REPO_ROOT / "dags").glob("*.py"))
    ids = tuple(dags.split(",")) if dags else orchestrate.LIFECYCLE_DAGS
    if bad := unknown_name_message("DAG(s)", list(ids), valid):
        fail(bad, USAGE)
    s = load_settings()
    try:  # a wrong endpoint, credential or database: named now, not deep in a task
        check(s)
    except PreflightError as exc:  # the setting at fault; and when it is only that they are down, how to start them
        down = services_down_message(s)
        fail(f"preflight: {exc}" + (f"\n{down}" if down else ""), USAGE)
    # on a terminal the progress bar stands for the task logs (-v brings them back)
    orchestrate.configure_airflow(s, quiet=sys.stderr.isatty() and not verbose)
    orchestrate.migrate_metadata(s)
    orchestrate.build_dbt_manifest()
    with progress("running the lifecycle's DAGs", total=len(ids)) as advance:
        results = orchestrate.run_dags(ids, on_done=lambda dag_id, _: advance(f"{dag_id} done"))
    echo_json({d: r["state"] for d, r in results.items()})
    ok = len(results) == len(ids) and all(r["state"].endswith("success") for r in results.values())
    raise typer.Exit(OK if ok else FAILED)


@app.command()
def reconcile():
    """Compare source, lake, warehouse and serving; exit 1 on any mismatch.

    \b
    Example:
      lifecycle reconcile
    """
    from lifecycle.dataops.reconcile import print_report
    from lifecycle.dataops.reconcile import reconcile as check

    report = check(load_settings(services=True))
    print_report(report)
    raise typer.Exit(OK if report["ok"] else FAILED)


@app.command()
def demo(
    day: str = typer.Option(None, "--date", help="business date; default: yesterday UTC"),
    scale: int = typer.Option(200, help="orders per day"),
    bad_rate: float = typer.Option(0.02, help="share of deliberately bad event records"),
    late_rate: float = typer.Option(0.01, help="share of late events"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show Airflow's task logs"),
):
    """Start services, apply infra, simulate a day, run the lifecycle, reconcile, report (make demo).

    \b
    Example:
      lifecycle demo
      lifecycle demo --date 2026-11-25 --scale 500 -v
    """
    from lifecycle.ops.demo import run_demo

    d = _parse_date(day) if day else _default_date()
    raise typer.Exit(run_demo(load_settings(), d, scale=scale, bad_rate=bad_rate, late_rate=late_rate,
                                verbose=verbose))


@app.command()
def query(
    sql: str = typer.Argument(..., help="one SQL statement"),
    output: str = typer.Option(None, "--output", "-o", help="write the result to a .csv or .parquet file"),
    lake: bool = typer.Option(False, "--lake", help="resolve tables through the Glue Catalog (bare names: "
                              "the default database lake_clean)"),
    warehouse: bool = typer.Option(False, "--warehouse", help="run on the warehouse (Postgres / Redshift)"),
):
    """Ad hoc SQL on the lake (Athena-style, through the Glue Catalog) or the warehouse.

    `SELECT ... FROM lake_clean.orders` runs on the lake: tables resolved through the Glue
    Catalog; DuckDB here, Athena on the aws target. SQL that names no Glue database runs on
    the warehouse. Bad SQL or an unknown table exits 2 with the reason.

    \b
    Example:
      lifecycle query "select status, count(*) from lake_clean.orders group by 1"
      lifecycle query "select * from serving.daily_sales" --output daily.csv
    """
    from lifecycle.lake import query as lake_sql

    if lake and warehouse:
        fail("use --lake or --warehouse, not both", USAGE)
    s = load_settings(services=True)
    try:
        engine = "lake" if lake else "warehouse" if warehouse else lake_sql.route(s, sql)
        if engine == "lake":
            result = lake_sql.run_query(s, sql, output)
            cols, rows = result.columns, result.rows
        else:
            cols, rows = _warehouse_query(s, sql, output)
    except lake_sql.LakeSqlError as exc:
        fail(str(exc), USAGE)
    if cols:
        typer.echo(lake_sql.format_table(cols, rows))


def _warehouse_query(s: Settings, sql: str, output: str | None) -> tuple[list[str], list[tuple]]:
    import psycopg2

    from lifecycle.clients import pg
    from lifecycle.lake import query as lake_sql

    try:
        with pg(s, s.warehouse_db) as conn, conn.cursor() as cur:
            cur.execute(sql)
            if cur.description is None:
                typer.echo(cur.statusmessage)
                return [], []
            cols = [d[0] for d in cur.description]
            rows = cur.fetchall()
    except psycopg2.Error as exc:
        message = str(exc).strip()
        if isinstance(exc, psycopg2.errors.UndefinedTable):
            try:
                message += f"\n(lake tables: {lake_sql.catalog_listing(lake_sql.catalog_tables(s))})"
            except Exception:  # the hint is optional; the warehouse error stands
                pass
        raise lake_sql.LakeSqlError(f"warehouse: {message}") from exc
    if output:
        lake_sql.write_rows(lake_sql.QueryResult(cols, [tuple(None if v is None else str(v) for v in r)
                                                        for r in rows]), output)
        return ["rows_written"], [(len(rows),)]
    return cols, rows


@app.command()
def recommend(
    product_id: int = typer.Argument(..., help="the product to find similar products for"),
    k: int = typer.Option(5, "--k", "-k", min=1, max=100, help="how many similar products"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
):
    """Products similar to PRODUCT_ID, from the published pgvector index.

    Embeddings are learnt from co-purchase and co-view behaviour; score = cosine similarity,
    1 is identical.

    \b
    Examples:
      lifecycle recommend 7
      lifecycle recommend 7 --k 10
      lifecycle recommend 7 --json
    """
    from lifecycle.serve.recommend import RecommendError
    from lifecycle.serve.recommend import recommend as nearest

    s = load_settings(services=True)
    try:
        rows = nearest(s, product_id, k)
    except RecommendError as exc:
        fail(str(exc))
    if as_json:
        echo_json(rows)
        return
    typer.echo(f"products similar to {product_id}:")
    for rank, r in enumerate(rows, start=1):
        typer.echo(f"  {rank:>2}. {r['product_id']:>6}  {r['score']:.4f}  {r['name']} ({r['category']})")


@app.command("metabase-provision")
def metabase_provision(
    spec: str = typer.Option(None, help="dashboard spec (default infra/metabase/dashboard.json)"),
    wait: int = typer.Option(300, help="seconds to wait for Metabase to become healthy"),
):
    """Create (or update) the Metabase dashboard of the repo through Metabase's API.

    First admin, the warehouse as a database read by bi_reader (schema serving only), the
    cards, the dashboard. Needs LIFECYCLE_METABASE_URL (default: port 3000 of this machine;
    compose: the metabase service), LIFECYCLE_METABASE_ADMIN_PASSWORD and
    LIFECYCLE_BI_READER_PASSWORD. In compose the one-shot service `metabase-provision` runs it.

    \b
    Example:
      docker compose --profile bi up -d
      lifecycle metabase-provision --wait 600
    """
    from lifecycle.serve.metabase import MetabaseError, provision

    try:
        out = provision(load_settings(), spec, wait_seconds=wait)
    except MetabaseError as exc:
        fail(str(exc))
    typer.echo(f"dashboard: {out['url']}  ({len(out['cards'])} cards)")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context):
    """Benchmark every stage against a raw baseline on the same data (its own environment).

    Options pass through (`python -m lifecycle.bench --help` lists them); results go to
    bench/results/ (docs/bench.md).

    \b
    Example:
      lifecycle bench --scale 200000 --events 50000
    """
    from lifecycle.bench import main as bench_main

    with progress("benchmarking (stage lines below)"):
        code = bench_main(list(ctx.args))
    raise typer.Exit(code)


@app.command()
def metrics(
    hours: int = typer.Option(24 * 7, help="how far back the trend goes"),
    period: int = typer.Option(3600, help="seconds per trend point"),
    dag: str = typer.Option(None, help="only this DAG"),
    metric: str = typer.Option(None, help="only this metric (e.g. RowsOut, FreshnessSeconds)"),
    html: str = typer.Option(None, "--html", help="also write an HTML page with the table to this file"),
):
    """Latest value and trend of every CloudWatch metric the pipeline publishes.

    \b
    Example:
      lifecycle metrics
      lifecycle metrics --dag lake_clean --html metrics.html
    """
    from lifecycle.dataops.metrics import overview

    rows = overview(load_settings(services=True), hours=hours, period=period, dag=dag, metric=metric)
    if not rows:
        typer.echo("no metrics yet (run the lifecycle: `lifecycle run` or `make demo`)")
        return
    lines = []
    for r in rows:
        d = r["dimensions"]
        where = "/".join(d.get(k, "") for k in ("DAG", "Task") if d.get(k)) or ",".join(
            f"{k}={v}" for k, v in d.items() if k != "Target")
        dataset = d.get("Dataset", "")
        lines.append((where, dataset, f"{r['metric']} ({r['stat']})", f"{r['latest']:.6g}", r["spark"]))
    widths = [max(len(x[i]) for x in lines) for i in range(4)]
    header = ("where", "dataset", "metric", "latest", "trend")
    typer.echo("  ".join(h.ljust(w) for h, w in zip(header, [*widths, 0], strict=True)))
    for x in lines:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(x, [*widths, 0], strict=True)))
    if html:
        import html as h

        body = "".join("<tr>" + "".join(f"<td>{h.escape(v)}</td>" for v in x) + "</tr>" for x in lines)
        Path(html).write_text("<!doctype html><meta charset='utf-8'><title>Lifecycle metrics</title>"
                        "<style>body{font-family:system-ui,sans-serif}td,th{padding:2px 8px;text-align:left}"
                        "td:last-child{font-size:1.3em}</style><h1>Lifecycle metrics</h1><table><tr>"
                        + "".join(f"<th>{c}</th>" for c in header) + f"</tr>{body}</table>")
        typer.echo(f"wrote {html}")


@app.command()
def logs(
    dag_id: str = typer.Argument(..., help="DAG id, e.g. lake_clean"),
    task_id: str = typer.Argument(..., help="task id, e.g. run_clean_jobs"),
    run_id: str = typer.Option(None, "--run-id", help="a given run (default: the newest try found)"),
    pipeline: bool = typer.Option(False, "--pipeline", help="the pipeline's JSON lines instead of the task log"),
):
    """A task's log from CloudWatch Logs (what the failure alert's `log_command` runs).

    \b
    Example:
      lifecycle logs lake_clean run_clean_jobs
      lifecycle logs lake_clean run_clean_jobs --pipeline
    """
    from lifecycle.dataops.logs import pipeline_lines, task_logs

    s = load_settings(services=True)
    if pipeline:
        for line in pipeline_lines(s, dag_id, task_id, run_id):
            typer.echo(json.dumps(line, sort_keys=True))
        return
    found = task_logs(s, dag_id, task_id, run_id)
    if not found["stream"]:
        typer.echo(f"no task log in CloudWatch group {s.log_group} for {dag_id}.{task_id}"
                   + (f" run {run_id}" if run_id else "") + " (runs under the real scheduler ship logs; "
                   "`lifecycle run` uses dag.test, which logs to the console)", err=True)
        raise typer.Exit(FAILED)
    typer.echo(f"# log group {s.log_group}, stream {found['stream']}")
    for line in found["lines"]:
        typer.echo(line)


@alarms_app.command("evaluate")
def alarms_evaluate():
    """Evaluate the CloudWatch alarms (the emulators do not); set their state; alert on ALARM.

    \b
    Example:
      lifecycle alarms evaluate
    """
    from lifecycle.dataops.alarms import evaluate

    for a in evaluate(load_settings(services=True)):
        typer.echo(f"{a['alarm']:<40} {a['before']:>17} -> {a['state']:<17} {a['reason']}"
                   + ("  [alerted]" if a["alerted"] else ""))


@alarms_app.command("list")
def alarms_list():
    """The alarms and their current state.

    \b
    Example:
      lifecycle alarms list
    """
    from lifecycle.dataops.alarms import alarms as list_alarms

    for a in list_alarms(load_settings(services=True)):
        typer.echo(f"{a['AlarmName']:<40} {a.get('StateValue', ''):<17} {a['MetricName']} "
                   f"{a['ComparisonOperator']} {a['Threshold']:g}")


@app.command()
def alerts(
    ack: bool = typer.Option(False, "--ack", help="delete what was read from the inbox (default: leave it)"),
    as_json: bool = typer.Option(False, "--json", help="print the alerts as JSON"),
):
    """The alerts waiting in the SNS topic's SQS inbox (what an on-call engineer would receive).

    Each line: kind, where, the error's first line, and the command that shows the log.

    \b
    Example:
      lifecycle alerts
      lifecycle alerts --json --ack
    """
    from lifecycle.dataops.alerts import read_alerts

    s = load_settings(services=True)
    found = read_alerts(s, delete=ack)
    if as_json:
        echo_json(found)
        return
    if not found:
        typer.echo(f"no alerts in {s.alert_queue} (every failure, lag or quarantine alert lands there)")
        return
    for a in found:
        where = ".".join(x for x in (a.get("dag_id"), a.get("task_id")) if x) or a.get("source", "")
        first = (a.get("error") or "").strip().splitlines()[0:1]
        typer.echo(f"{a.get('kind', 'alert'):<18} {where:<36} {first[0][:100] if first else ''}")
        if a.get("log_command"):
            typer.echo(f"{'':<18} log: {a['log_command']}")


@app.command()
def observe(day: str = typer.Option(None, "--date", help="business date to observe; default: yesterday UTC")):
    """Run the data-observability monitors for one day (what the observe DAG does).

    \b
    Example:
      lifecycle observe --date 2026-11-26
    """
    from lifecycle.dataops.observe import run as run_observe

    d = _parse_date(day) if day else _default_date()
    s = load_settings(services=True)
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    with progress(f"profiling the datasets of {d}"):
        result = run_observe(s, start, start + timedelta(days=1))
    echo_json(result)


@app.command()
def lineage():
    """Which job produced which dataset (OpenLineage events of the local file transport).

    \b
    Example:
      lifecycle lineage
    """
    from lifecycle.dataops.lineage import producers

    s = load_settings()
    found = producers(s)
    if not found:
        typer.echo(f"no lineage events in {s.lineage_file} yet")
        return
    for dataset, jobs in found.items():
        typer.echo(f"{dataset}  <-  {', '.join(jobs)}")


@app.command("airflow-env")
def airflow_env_cmd():
    """Print `export` lines of the Airflow environment (and the emulator's endpoint).

    \b
    Example:
      eval "$(lifecycle airflow-env)"; airflow dags list
    """
    import shlex

    from lifecycle.pipeline.environment import airflow_env

    for k, v in airflow_env(load_settings()).items():
        typer.echo(f"export {k}={shlex.quote(v)}")


@app.command()
def airflow(port: int = typer.Option(None, help="port of the UI / API server; default LIFECYCLE_AIRFLOW_PORT or 8080")):
    """Run Airflow 3 (scheduler, dag-processor, triggerer, api-server) until Ctrl-C.

    \b
    Example:
      lifecycle airflow                     # the UI on port 8080
      LIFECYCLE_AIRFLOW_PORT=8081 lifecycle airflow
    """
    from lifecycle.ops.airflow import run_airflow
    from lifecycle.ops.services import port_in_use, port_in_use_message

    s = load_settings(services=True)
    port = port or s.airflow_port
    if port_in_use(port):
        fail(port_in_use_message(port, "LIFECYCLE_AIRFLOW_PORT", "the Airflow UI") + " (or pass --port)", USAGE)
    raise typer.Exit(run_airflow(s, port))


# deploy, review, preflight, recover: lifecycle.cli.operations
operations.register(app)


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
