"""The Airflow context to data interval mapping of ``lifecycle.pipeline.context`` (no Airflow run).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def test_interval_uses_the_data_interval_when_there_is_one():
    from lifecycle.pipeline.context import interval

    a, b = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
    assert interval({"data_interval_start": a, "data_interval_end": b}) == (a, b)


def test_interval_of_an_asset_triggered_run_is_the_previous_utc_day():
    from lifecycle.pipeline.context import interval

    class Run:
        run_after = datetime(2026, 3, 2, 5, 30, tzinfo=UTC)

    start, end = interval({"dag_run": Run(), "data_interval_start": Run.run_after,
                           "data_interval_end": Run.run_after})
    assert (start, end) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    assert end - start == timedelta(days=1)
