"""`lifecycle metrics`, `logs`, `alarms`, `alerts`, `observe`, `lineage`: the lifecycle's observability.

Input: the settings and each command's options. Output: ``register(app)`` adds the commands and
the `alarms` group to the root app.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from lifecycle.cli.support import FAILED, default_date, echo_json, group, load_settings, parse_date, progress

alarms_app = group("CloudWatch alarms of infra/.", "lifecycle alarms list")


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
        typer.echo(f"no task log in CloudWatch group {s.names.log_group} for {dag_id}.{task_id}"
                   + (f" run {run_id}" if run_id else "") + " (runs under the real scheduler ship logs; "
                   "`lifecycle run` uses dag.test, which logs to the console)", err=True)
        raise typer.Exit(FAILED)
    typer.echo(f"# log group {s.names.log_group}, stream {found['stream']}")
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
        typer.echo(f"no alerts in {s.names.alert_queue} (every failure, lag or quarantine alert lands there)")
        return
    for a in found:
        where = ".".join(x for x in (a.get("dag_id"), a.get("task_id")) if x) or a.get("source", "")
        first = (a.get("error") or "").strip().splitlines()[0:1]
        typer.echo(f"{a.get('kind', 'alert'):<18} {where:<36} {first[0][:100] if first else ''}")
        if a.get("log_command"):
            typer.echo(f"{'':<18} log: {a['log_command']}")


def observe(day: str = typer.Option(None, "--date", help="business date to observe; default: yesterday UTC")):
    """Run the data-observability monitors for one day (what the observe DAG does).

    \b
    Example:
      lifecycle observe --date 2026-11-26
    """
    from lifecycle.dataops.observe import run as run_observe

    d = parse_date(day) if day else default_date()
    s = load_settings(services=True)
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    with progress(f"profiling the datasets of {d}"):
        result = run_observe(s, start, start + timedelta(days=1))
    echo_json(result)


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


def register(app: typer.Typer) -> None:
    app.command()(metrics)
    app.command()(logs)
    app.add_typer(alarms_app, name="alarms")
    app.command()(alerts)
    app.command()(observe)
    app.command()(lineage)
