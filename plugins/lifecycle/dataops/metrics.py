"""CloudWatch metrics of the pipeline, in one namespace.

Input: ``Settings``, the DAG/task names and a result dict (``rows_in``, ``rows_out``,
``rejected``, ``files_written``, ``bytes_written``: counts, or per-table dicts of counts)
plus the duration.
Output: ``PutMetricData`` into namespace ``settings.names.metrics_namespace`` with dimensions
DAG, Task, Dataset and Target: the task's totals under ``Dataset=all`` and, where the result
is per table, each table's value under ``Dataset=<table>``; a failed task also counts in
``FailedTasks`` (dimension Target only: what the failed-runs alarm watches).
``latest(...)`` reads a metric back, ``series(...)`` its recent datapoints, ``sparkline(...)``
draws them as text (for tests and ``lifecycle metrics``).
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
    "bytes_written": ("BytesWritten", "Bytes"),
}
ALL = "all"
SPARKS = "▁▂▃▄▅▆▇█"


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


def dimensions(settings: Settings, dag_id: str, task_id: str, dataset: str = ALL) -> list[dict]:
    return [{"Name": "DAG", "Value": dag_id}, {"Name": "Task", "Value": task_id},
            {"Name": "Dataset", "Value": dataset}, {"Name": "Target", "Value": settings.target}]


def _per_dataset(value) -> dict[str, float]:
    """Per-table counts of a result value (nested dicts are summed per top-level table)."""
    if not isinstance(value, dict):
        return {}
    out = {}
    for name, v in value.items():
        n = total_count(v)
        if n is not None:
            out[str(name)] = n
    return out


def put(settings: Settings, data: list[dict]) -> None:
    """PutMetricData in chunks CloudWatch accepts."""
    cw = aws(settings, "cloudwatch")
    for i in range(0, len(data), 500):
        cw.put_metric_data(Namespace=settings.names.metrics_namespace, MetricData=data[i:i + 500])


def publish_task_metrics(settings: Settings, dag_id: str, task_id: str, result: dict | None,
                         duration_s: float | None, succeeded: bool = True) -> list[str]:
    dims = dimensions(settings, dag_id, task_id)
    now = datetime.now(UTC)
    data = [{"MetricName": "TaskSucceeded" if succeeded else "TaskFailed", "Dimensions": dims,
             "Timestamp": now, "Value": 1, "Unit": "Count"}]
    if not succeeded:
        data.append({"MetricName": "FailedTasks", "Timestamp": now, "Value": 1, "Unit": "Count",
                     "Dimensions": [{"Name": "Target", "Value": settings.target}]})
    if duration_s is not None:
        data.append({"MetricName": "DurationSeconds", "Dimensions": dims, "Timestamp": now,
                     "Value": float(duration_s), "Unit": "Seconds"})
    for key, (name, unit) in RESULT_METRICS.items():
        raw = result.get(key) if isinstance(result, dict) else None
        value = total_count(raw)
        if value is not None:
            data.append({"MetricName": name, "Dimensions": dims, "Timestamp": now,
                         "Value": value, "Unit": unit})
        for dataset, n in _per_dataset(raw).items():
            data.append({"MetricName": name, "Dimensions": dimensions(settings, dag_id, task_id, dataset),
                         "Timestamp": now, "Value": n, "Unit": unit})
    put(settings, data)
    return sorted({d["MetricName"] for d in data})


def series(settings: Settings, metric: str, dims: list[dict], hours: int = 24 * 7, period: int = 3600,
           stat: str = "Sum") -> list[tuple[datetime, float]]:
    """The metric's datapoints (one per ``period``) over the last ``hours``, oldest first."""
    now = datetime.now(UTC)
    resp = aws(settings, "cloudwatch").get_metric_statistics(
        Namespace=settings.names.metrics_namespace, MetricName=metric, Dimensions=dims,
        StartTime=now - timedelta(hours=hours), EndTime=now + timedelta(minutes=5),
        Period=period, Statistics=[stat],
    )
    return sorted((p["Timestamp"], float(p[stat])) for p in resp.get("Datapoints", []))


def latest(settings: Settings, metric: str, dag_id: str, task_id: str, hours: int = 24,
           dataset: str = ALL) -> float | None:
    """Sum of a task metric over the last ``hours`` (None when never published)."""
    points = series(settings, metric, dimensions(settings, dag_id, task_id, dataset), hours=hours)
    return sum(v for _, v in points) if points else None


def sparkline(values: list[float]) -> str:
    """A text trend: one block character per value, scaled between the min and the max."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi == lo:
        return SPARKS[len(SPARKS) // 2] * len(values)
    return "".join(SPARKS[round((v - lo) / (hi - lo) * (len(SPARKS) - 1))] for v in values)


def list_published(settings: Settings) -> list[dict]:
    """Every (metric, dimensions) pair the pipeline has published."""
    out = []
    paginator = aws(settings, "cloudwatch").get_paginator("list_metrics")
    for page in paginator.paginate(Namespace=settings.names.metrics_namespace):
        for m in page["Metrics"]:
            out.append({"metric": m["MetricName"], **{d["Name"]: d["Value"] for d in m["Dimensions"]}})
    return out


# statistic that makes sense per metric when reading a trend (counts add up, gauges do not)
GAUGE_STATS = {"DurationSeconds": "Average", "FreshnessSeconds": "Maximum", "Completeness": "Minimum",
               "CdcLagSeconds": "Maximum", "CdcLagBytes": "Maximum", "QuarantineRate": "Maximum",
               "BytesStored": "Maximum", "DatasetRows": "Maximum", "VolumeZScore": "Maximum"}


def overview(settings: Settings, hours: int = 24 * 7, period: int = 3600, dag: str | None = None,
             metric: str | None = None) -> list[dict]:
    """Every published (metric, dimensions) with its trend: ``latest``, ``points`` and ``spark``."""
    rows, seen = [], set()
    for m in list_published(settings):
        name = m.pop("metric")
        key = (name, tuple(sorted(m.items())))
        if key in seen or (dag and m.get("DAG") != dag) or (metric and name != metric):
            continue  # (an emulator may list a metric once per datapoint)
        seen.add(key)
        stat = GAUGE_STATS.get(name, "Sum")
        dims = [{"Name": k, "Value": v} for k, v in sorted(m.items())]
        points = [v for _, v in series(settings, name, dims, hours=hours, period=period, stat=stat)]
        if points:
            rows.append({"metric": name, "stat": stat, "dimensions": m, "latest": points[-1],
                         "points": points, "spark": sparkline(points)})
    rows.sort(key=lambda r: (r["dimensions"].get("DAG", ""), r["dimensions"].get("Task", ""), r["metric"],
                             r["dimensions"].get("Dataset", "")))
    return rows
