"""`lifecycle`: the command line for everything outside Airflow.

Input: the command line and the environment (``Settings.from_env()``).
Output: the action's result on stdout; exit code 0 on success, 1 when a check failed,
2 on a usage or settings error.

    lifecycle services up|down|status     embedded Postgres + moto
    lifecycle infra apply                  buckets, stream, tables, topic, Glue, IAM
    lifecycle simulate --date 2026-11-26   one business day into the sources
    lifecycle run                          every lifecycle DAG once, in order (dag.test)
    lifecycle reconcile                    source vs lake vs warehouse vs serving
    lifecycle demo                         all of the above, with a report
    lifecycle query "select ..."           SQL on the warehouse
    lifecycle airflow                      Airflow 3 (UI on :8080) on the embedded services
    lifecycle metrics [--html f.html]      latest CloudWatch metrics with a trend
    lifecycle logs <dag> <task>            a task's log from CloudWatch Logs
    lifecycle alarms evaluate|list         CloudWatch alarms (evaluated here on emulators)
    lifecycle observe --date 2026-11-26    data-observability monitors for one day
    lifecycle lineage                      which job produced which dataset (OpenLineage)
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import typer

from lifecycle.settings import Settings, SettingsError

app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True, add_completion=False)
services_app = typer.Typer(help="Embedded services (pgserver Postgres + moto).", no_args_is_help=True)
infra_app = typer.Typer(help="Infrastructure as data (infra/).", no_args_is_help=True)
cdc_app = typer.Typer(help="Change data capture from the sales database (DMS-style).", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(infra_app, name="infra")
alarms_app = typer.Typer(help="CloudWatch alarms of infra/.", no_args_is_help=True)
app.add_typer(cdc_app, name="cdc")
app.add_typer(alarms_app, name="alarms")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        typer.secho(f"settings: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


def _default_date() -> date:
    return (datetime.now(UTC) - timedelta(days=1)).date()


def _echo_json(data) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@services_app.command("up")
def services_up():
    """Start Postgres and moto (idempotent)."""
    from lifecycle import services

    s = _settings()
    try:
        result = services.up(s)
    except services.ServiceError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    st = services.status(s)
    typer.echo(f"postgres  127.0.0.1:{s.pg_port}  pid {st.pg_pid}  (databases sales, warehouse, airflow)")
    typer.echo(f"moto      {s.aws_endpoint}  pid {st.moto_pid}")
    if result["environment_reset"]:
        typer.secho("moto was restarted, so its state is new: the sales and warehouse databases were "
                    "recreated to match.", fg=typer.colors.YELLOW)


@services_app.command("down")
def services_down():
    """Stop Postgres and moto."""
    from lifecycle import services

    services.down(_settings())
    typer.echo("stopped")


@services_app.command("status")
def services_status():
    """Show whether the embedded services run; exit 1 if not."""
    from lifecycle import services

    s = _settings()
    st = services.status(s)
    typer.echo(f"postgres: {'up' if st.postgres else 'down'} (port {s.pg_port})")
    typer.echo(f"moto:     {'up' if st.moto else 'down'} ({s.aws_endpoint})")
    if st.all_up:
        for k, v in services.rss_mb(s).items():
            typer.echo(f"{k}: {v:.0f}")
    raise typer.Exit(0 if st.all_up else 1)


@infra_app.command("apply")
def infra_apply():
    """Create or converge every resource in infra/ on the selected target."""
    from lifecycle import infra

    _echo_json(infra.apply(_settings()))


@cdc_app.command("status")
def cdc_status():
    """The replication slot, its lag (bytes, seconds) and the raw files per table."""
    from lifecycle.clients import aws, pg
    from lifecycle.ingest import sales_cdc

    s = _settings()
    lag = sales_cdc.slot_lag(s)
    if not lag["exists"]:
        typer.echo(f"slot {sales_cdc.SLOT}: missing (the next ingest_sales run re-snapshots)")
        raise typer.Exit(1)
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
    """Recreate the slot and take a new full load (after a breaking schema change)."""
    from lifecycle.ingest import sales_cdc

    if not yes:
        typer.confirm("This replaces the raw sales files with a new full load (CDC history is dropped). Go on?",
                      abort=True)
    _echo_json(sales_cdc.full_load(_settings()))


@app.command()
def simulate(
    day: str = typer.Option(None, "--date", help="business date (YYYY-MM-DD); default: yesterday UTC"),
    scale: int = typer.Option(200, help="orders per day"),
    seed: int = typer.Option(42),
    bad_rate: float = typer.Option(0.02, help="share of deliberately bad event records"),
    late_rate: float = typer.Option(0.01, help="share of late events (yesterday's, arriving today)"),
):
    """Play one business day of the sales platform into the sources."""
    from lifecycle.simulator import simulate_day

    d = date.fromisoformat(day) if day else _default_date()
    _echo_json(simulate_day(_settings(), d, seed=seed, scale=scale, bad_rate=bad_rate, late_rate=late_rate))


@app.command()
def run(dags: str = typer.Option(None, help="comma-separated DAG ids; default: the whole lifecycle")):
    """Run the lifecycle's DAGs once, in order, with Airflow's dag.test()."""
    from lifecycle import orchestrate

    s = _settings()
    orchestrate.configure_airflow(s)
    orchestrate.migrate_metadata(s)
    orchestrate.build_dbt_manifest()
    ids = tuple(dags.split(",")) if dags else orchestrate.LIFECYCLE_DAGS
    results = orchestrate.run_dags(ids)
    _echo_json({d: r["state"] for d, r in results.items()})
    ok = len(results) == len(ids) and all(r["state"].endswith("success") for r in results.values())
    raise typer.Exit(0 if ok else 1)


@app.command()
def reconcile():
    """Compare source, lake, warehouse and serving; exit 1 on any mismatch."""
    from lifecycle.reconcile import print_report
    from lifecycle.reconcile import reconcile as check

    report = check(_settings())
    print_report(report)
    raise typer.Exit(0 if report["ok"] else 1)


@app.command()
def demo(
    day: str = typer.Option(None, "--date", help="business date; default: yesterday UTC"),
    scale: int = typer.Option(200, help="orders per day"),
    bad_rate: float = typer.Option(0.02, help="share of deliberately bad event records"),
    late_rate: float = typer.Option(0.01, help="share of late events"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show Airflow's task logs"),
):
    """Start services, apply infra, simulate a day, run the lifecycle, reconcile, report."""
    from lifecycle.demo import run_demo

    d = date.fromisoformat(day) if day else _default_date()
    raise typer.Exit(run_demo(_settings(), d, scale=scale, bad_rate=bad_rate, late_rate=late_rate,
                                verbose=verbose))


@app.command()
def query(sql: str = typer.Argument(..., help="SQL to run on the warehouse database")):
    """Run SQL on the warehouse (e.g. select * from serving.daily_sales)."""
    from lifecycle.clients import pg

    s = _settings()
    with pg(s, s.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute(sql)
        if cur.description is None:
            typer.echo(cur.statusmessage)
            return
        cols = [d[0] for d in cur.description]
        rows = cur.fetchall()
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        typer.echo("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context):
    """Benchmark every stage against a raw baseline on the same data; options pass through
    (`python -m lifecycle.bench --help` lists them).

    Example: lifecycle bench --scale 200000 --events 50000
    """
    from lifecycle.bench import main as bench_main

    raise typer.Exit(bench_main(list(ctx.args)))


@app.command()
def metrics(
    hours: int = typer.Option(24 * 7, help="how far back the trend goes"),
    period: int = typer.Option(3600, help="seconds per trend point"),
    dag: str = typer.Option(None, help="only this DAG"),
    metric: str = typer.Option(None, help="only this metric (e.g. RowsOut, FreshnessSeconds)"),
    html: str = typer.Option(None, "--html", help="also write an HTML page with the table to this file"),
):
    """Latest value and a text trend (sparkline) of every CloudWatch metric the pipeline publishes."""
    from lifecycle.dataops.metrics import overview

    rows = overview(_settings(), hours=hours, period=period, dag=dag, metric=metric)
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
    """A task's log from CloudWatch Logs (what the failure alert's `log_command` runs)."""
    from lifecycle.dataops.logs import pipeline_lines, task_logs

    s = _settings()
    if pipeline:
        for line in pipeline_lines(s, dag_id, task_id, run_id):
            typer.echo(json.dumps(line, sort_keys=True))
        return
    found = task_logs(s, dag_id, task_id, run_id)
    if not found["stream"]:
        typer.echo(f"no task log in CloudWatch group {s.log_group} for {dag_id}.{task_id}"
                   + (f" run {run_id}" if run_id else "") + " (runs under the real scheduler ship logs; "
                   "`lifecycle run` uses dag.test, which logs to the console)", err=True)
        raise typer.Exit(1)
    typer.echo(f"# log group {s.log_group}, stream {found['stream']}")
    for line in found["lines"]:
        typer.echo(line)


@alarms_app.command("evaluate")
def alarms_evaluate():
    """Evaluate the CloudWatch alarms (the emulators do not); set their state; alert on ALARM."""
    from lifecycle.dataops.alarms import evaluate

    for a in evaluate(_settings()):
        typer.echo(f"{a['alarm']:<40} {a['before']:>17} -> {a['state']:<17} {a['reason']}"
                   + ("  [alerted]" if a["alerted"] else ""))


@alarms_app.command("list")
def alarms_list():
    """The alarms and their current state."""
    from lifecycle.dataops.alarms import alarms as list_alarms

    for a in list_alarms(_settings()):
        typer.echo(f"{a['AlarmName']:<40} {a.get('StateValue', ''):<17} {a['MetricName']} "
                   f"{a['ComparisonOperator']} {a['Threshold']:g}")


@app.command()
def observe(day: str = typer.Option(None, "--date", help="business date to observe; default: yesterday UTC")):
    """Run the data-observability monitors for one day (what the observe DAG does)."""
    from lifecycle.dataops.observe import run as run_observe

    d = date.fromisoformat(day) if day else _default_date()
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    _echo_json(run_observe(_settings(), start, start + timedelta(days=1)))


@app.command()
def lineage():
    """Which job produced which dataset, from the OpenLineage events of the local file transport."""
    from lifecycle.dataops.lineage import producers

    s = _settings()
    found = producers(s)
    if not found:
        typer.echo(f"no lineage events in {s.lineage_file} yet")
        return
    for dataset, jobs in found.items():
        typer.echo(f"{dataset}  <-  {', '.join(jobs)}")


@app.command("airflow-env")
def airflow_env_cmd():
    """Print `export` lines of the Airflow environment (for `eval $(lifecycle airflow-env)`)."""
    import shlex

    from lifecycle.airflow_env import airflow_env

    for k, v in airflow_env(_settings()).items():
        typer.echo(f"export {k}={shlex.quote(v)}")


@app.command()
def airflow(port: int = typer.Option(None, help="port of the UI / API server; default LIFECYCLE_AIRFLOW_PORT or 8080")):
    """Run Airflow 3 (scheduler, dag-processor, triggerer, api-server) until Ctrl-C."""
    from lifecycle.airflow_runner import run_airflow

    s = _settings()
    raise typer.Exit(run_airflow(s, port or s.airflow_port))


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
