"""Turn an Airflow task context into the plain values the package's functions take.

Input: the context dict Airflow passes to a ``@task`` (``**context``).
Output: ``(interval_start, interval_end)`` as aware UTC datetimes. Scheduled runs use their
data interval; asset-triggered and manual runs have none, so the interval is the UTC day
before ``run_after`` (when the data they consume was produced).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def interval(context) -> tuple[datetime, datetime]:
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start and end and end > start:
        return start.astimezone(UTC), end.astimezone(UTC)
    dag_run = context.get("dag_run")
    after = getattr(dag_run, "run_after", None) or context.get("logical_date") or datetime.now(UTC)
    day_end = after.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day_end - timedelta(days=1), day_end
