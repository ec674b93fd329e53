"""CloudWatch metrics of the pipeline, in one namespace.

Input: ``Settings``, the DAG/task names and a result dict (``rows_in``, ``rows_out``,
``rejected``, ``files_written``: counts, or per-table dicts of counts, which are summed)
plus the duration.
Output: ``PutMetricData`` into namespace ``settings.metrics_namespace`` with dimensions
DAG, Task and Target; ``latest(...)`` reads a metric back (for tests and the CLI).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lifecycle.clients import aws
from lifecycle.settings import Settings

RESULT_METRICS = {
    "rows_in": ("RowsIn", "Count"),
    "rows_out": ("RowsOut", "Count"),
    "rejected": ("Rejected", "Count"),
    "files_written": ("FilesWritten", "Count"),
}


def total_count(value) -> float | None:
    """A count, or the sum of a per-table (possibly nested) dict of counts."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        parts = [total_count(v) for v in value.values()]
        return sum(p for p in parts if p is not None)
    return None


def dimensions(settings: Settings, dag_id: str, task_id: str) -> list[dict]:
    return [{"Name": "DAG", "Value": dag_id}, {"Name": "Task", "Value": task_id},
            {"Name": "Target", "Value": settings.target}]


def publish_task_metrics(settings: Settings, dag_id: str, task_id: str, result: dict | None,
                         duration_s: float | None, succeeded: bool = True) -> list[str]:
    dims = dimensions(settings, dag_id, task_id)
    now = datetime.now(UTC)
    data = [{"MetricName": "TaskSucceeded" if succeeded else "TaskFailed", "Dimensions": dims,
             "Timestamp": now, "Value": 1, "Unit": "Count"}]
    if duration_s is not None:
        data.append({"MetricName": "DurationSeconds", "Dimensions": dims, "Timestamp": now,
                     "Value": float(duration_s), "Unit": "Seconds"})
    for key, (name, unit) in RESULT_METRICS.items():
        value = total_count(result.get(key)) if isinstance(result, dict) else None
        if value is not None:
            data.append({"MetricName": name, "Dimensions": dims, "Timestamp": now,
                         "Value": value, "Unit": unit})
    aws(settings, "cloudwatch").put_metric_data(Namespace=settings.metrics_namespace, MetricData=data)
    return [d["MetricName"] for d in data]


def latest(settings: Settings, metric: str, dag_id: str, task_id: str, hours: int = 24) -> float | None:
    """Sum of a task metric over the last ``hours`` (None when never published)."""
    now = datetime.now(UTC)
    resp = aws(settings, "cloudwatch").get_metric_statistics(
        Namespace=settings.metrics_namespace, MetricName=metric,
        Dimensions=dimensions(settings, dag_id, task_id),
        StartTime=now - timedelta(hours=hours), EndTime=now + timedelta(minutes=5),
        Period=3600, Statistics=["Sum"],
    )
    points = resp.get("Datapoints", [])
    return sum(p["Sum"] for p in points) if points else None


def list_published(settings: Settings) -> list[dict]:
    """Every (metric, dimensions) pair the pipeline has published."""
    out = []
    paginator = aws(settings, "cloudwatch").get_paginator("list_metrics")
    for page in paginator.paginate(Namespace=settings.metrics_namespace):
        for m in page["Metrics"]:
            out.append({"metric": m["MetricName"], **{d["Name"]: d["Value"] for d in m["Dimensions"]}})
    return out
