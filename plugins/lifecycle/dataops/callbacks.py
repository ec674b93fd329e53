"""The Airflow callbacks every DAG attaches: SNS alert on failure, CloudWatch metrics on success.

Input: the Airflow task context (passed by Airflow to the callback).
Output: on failure, one message on the SNS alert topic (DAG, task, run, try, interval, the
exception, the log location: Airflow UI URL, CloudWatch log group and stream, a runbook line),
deduplicated by ``alerts.publish``; on success, the task's metrics (duration and the
``rows_in``/``rows_out``/``rejected``/``files_written``/``bytes_written`` of its return value)
in CloudWatch, with the datasets it read and wrote handed to OpenLineage (``lineage.py``);
both also write one structured JSON log line to CloudWatch Logs. Before a task runs, its
lineage collector is reset. ``default_args()`` is what DAG files pass as ``default_args``; ``run_deadline()`` is their
``deadline=``: an Airflow 3 ``DeadlineAlert`` whose callback (``run_too_long``, run by the
triggerer) alerts when a run is still going ``LIFECYCLE_RUN_DEADLINE_MINUTES`` after it was queued.

A callback never raises: a broken alert path must not turn a good task red, so errors are
logged instead (and the failed publish itself shows up as a missing metric).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)

OWNER = "data-platform"


def _interval(context) -> str | None:
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    return f"{start.isoformat()}/{end.isoformat()}" if start and end else None


def on_task_failure(context) -> None:
    """Called by Airflow only when the task failed with no retry left (a retry calls
    ``on_retry_callback``, which we leave unset). If the same try is reported twice (e.g. by
    the task runner and by the scheduler's handling of a lost task), the dedupe key of
    ``alerts.publish`` keeps it to one message."""
    try:
        from lifecycle.dataops import alerts, logs, metrics
        from lifecycle.settings import Settings

        settings = Settings.from_env()
        ti = context["ti"]
        exc = context.get("exception")
        map_index = getattr(ti, "map_index", None)
        alert = alerts.build_alert(
            dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, try_number=ti.try_number,
            interval=_interval(context), error=f"{type(exc).__name__}: {exc}" if exc else "unknown error",
            log_url=getattr(ti, "log_url", None), target=settings.target, map_index=map_index,
            max_tries=getattr(ti, "max_tries", None), log_group=settings.names.log_group,
            log_stream=logs.task_log_stream(ti.dag_id, ti.run_id, ti.task_id, ti.try_number, map_index),
        )
        sent = alerts.publish(settings, alert)
        metrics.publish_task_metrics(settings, ti.dag_id, ti.task_id, None, None, succeeded=False)
        logs.emit(settings, "task_failed", dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id,
                  level="ERROR", try_number=ti.try_number, error=alert["error"], alert_sent=bool(sent),
                  log_stream=alert["log_stream"])
    except Exception:
        log.exception("could not publish the failure alert")


def on_task_start(context) -> None:
    """Before the task runs: start its lineage from a clean slate (see ``lineage.reset``), and
    send the alerts kept while AWS was unreachable."""
    try:
        from lifecycle.dataops import lineage

        lineage.reset()
    except Exception:
        log.exception("could not reset the lineage collector")
    try:  # alerts kept while AWS was unreachable (alerts.flush_pending)
        from lifecycle.dataops import alerts
        from lifecycle.settings import Settings

        alerts.flush_pending(Settings.from_env())
    except Exception:
        log.exception("could not send the pending alerts")


def on_task_success(context) -> None:
    try:
        from lifecycle.dataops import lineage, logs, metrics
        from lifecycle.settings import Settings

        ti = context["ti"]
        result = None
        # only our @task functions return a result dict; pulling a missing XCom logs an error
        if hasattr(ti.task, "python_callable"):
            result = ti.xcom_pull(task_ids=ti.task_id, map_indexes=getattr(ti, "map_index", None))
        started = getattr(ti, "start_date", None)
        duration = (datetime.now(UTC) - started).total_seconds() if started else None
        settings = Settings.from_env()
        result = result if isinstance(result, dict) else None
        lineage.report(settings, ti.dag_id, ti.task_id)  # before the OpenLineage listener's COMPLETE event
        if result is not None and "bytes_written" not in result:
            written = lineage.output_bytes(settings, ti.dag_id, ti.task_id)
            if written:
                result = {**result, "bytes_written": written}
        published = metrics.publish_task_metrics(settings, ti.dag_id, ti.task_id, result, duration)
        logs.emit(settings, "task_succeeded", dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id,
                  try_number=ti.try_number, duration_s=duration, metrics=published,
                  **{k: metrics.total_count(result.get(k)) for k in metrics.RESULT_METRICS
                     if result and metrics.total_count(result.get(k)) is not None})
    except Exception:
        log.exception("could not publish task metrics")


async def run_too_long(context: dict | None = None, **kwargs) -> None:
    """Deadline callback (runs in the triggerer): a DAG run is past its deadline; alert once.

    ``context`` is what Airflow passes to deadline callbacks: ``dag_run`` (the run as the REST
    API shows it) and ``deadline`` (its id and time).
    """
    import asyncio

    from lifecycle.dataops import alerts
    from lifecycle.settings import Settings

    run = (context or {}).get("dag_run") or {}
    deadline = (context or {}).get("deadline") or {}
    settings = Settings.from_env()
    alert = alerts.build_notice(
        kind="run_too_long", source=f"{run.get('dag_id')} run {run.get('dag_run_id') or run.get('run_id')}",
        message=(f"DAG run {run.get('dag_run_id') or run.get('run_id')} of {run.get('dag_id')} is still "
                 f"{run.get('state')} at its deadline {deadline.get('deadline_time')} "
                 f"(queued {run.get('queued_at')}, limit {kwargs.get('minutes')} min)"),
        runbook=("Open the run in the Airflow UI: find the task that is still running or queued; check the "
                 "pool/executor slots and the source it waits on; `lifecycle logs <dag> <task>` shows its log."),
        target=settings.target)
    alert.update(dag_id=run.get("dag_id"), run_id=run.get("dag_run_id") or run.get("run_id"),
                 data_interval=(f"{run['data_interval_start']}/{run['data_interval_end']}"
                                if run.get("data_interval_start") and run.get("data_interval_end") else None))
    await asyncio.to_thread(alerts.publish, settings, alert,
                            f"run_too_long|{run.get('dag_id')}|{run.get('dag_run_id') or run.get('run_id')}")


def run_deadline(minutes: int | None = None):
    """The ``deadline=`` of every lifecycle DAG: alert when a run is not done ``minutes`` after
    it was queued (default ``LIFECYCLE_RUN_DEADLINE_MINUTES``, 120; read at parse time from the
    environment only, no connection or variable)."""
    import os

    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    minutes = minutes or int(os.environ.get("LIFECYCLE_RUN_DEADLINE_MINUTES") or 120)
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(minutes=minutes),
                         callback=AsyncCallback(run_too_long, kwargs={"minutes": minutes}),
                         name="run too long")


def default_args(**overrides) -> dict:
    args = {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "on_execute_callback": on_task_start,
        "on_failure_callback": on_task_failure,
        "on_success_callback": on_task_success,
    }
    args.update(overrides)
    return args
