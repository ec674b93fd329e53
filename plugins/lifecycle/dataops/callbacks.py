"""The Airflow callbacks every DAG attaches: SNS alert on failure, CloudWatch metrics on success.

Input: the Airflow task context (passed by Airflow to the callback).
Output: on failure, one message on the SNS alert topic (DAG, task, run, try, interval, the
exception, the log location, a runbook line); on success, the task's metrics (duration and
the ``rows_in``/``rows_out``/``rejected``/``files_written`` of its return value) in
CloudWatch. ``default_args()`` is what DAG files pass as ``default_args``.

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
    try:
        from lifecycle.dataops import alerts, metrics
        from lifecycle.settings import Settings

        settings = Settings.from_env()
        ti = context["ti"]
        exc = context.get("exception")
        alert = alerts.build_alert(
            dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, try_number=ti.try_number,
            interval=_interval(context), error=f"{type(exc).__name__}: {exc}" if exc else "unknown error",
            log_url=getattr(ti, "log_url", None), target=settings.target,
        )
        alerts.publish(settings, alert)
        metrics.publish_task_metrics(settings, ti.dag_id, ti.task_id, None, None, succeeded=False)
    except Exception:
        log.exception("could not publish the failure alert")


def on_task_success(context) -> None:
    try:
        from lifecycle.dataops import metrics
        from lifecycle.settings import Settings

        ti = context["ti"]
        result = None
        # only our @task functions return a result dict; pulling a missing XCom logs an error
        if hasattr(ti.task, "python_callable"):
            result = ti.xcom_pull(task_ids=ti.task_id, map_indexes=getattr(ti, "map_index", None))
        started = getattr(ti, "start_date", None)
        duration = (datetime.now(UTC) - started).total_seconds() if started else None
        metrics.publish_task_metrics(Settings.from_env(), ti.dag_id, ti.task_id,
                                     result if isinstance(result, dict) else None, duration)
    except Exception:
        log.exception("could not publish task metrics")


def default_args(**overrides) -> dict:
    args = {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "on_failure_callback": on_task_failure,
        "on_success_callback": on_task_success,
    }
    args.update(overrides)
    return args
