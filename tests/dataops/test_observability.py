"""Data observability on real data: monitors against each dataset's own history.

Input: a fresh environment; the simulator plays consecutive days; each day goes through the
real ingestion, clean jobs and warehouse load (the package functions the DAGs call, without
Airflow, to keep this fast), then ``observe.run`` profiles the lake and warehouse tables.
Asserts: three days of history, then a normal day raises nothing (no failed monitor, no
SNS message); a day with a tenth of the volume is a volume anomaly on the lake and warehouse
tables, alerted once (a rerun of the interval does not alert again); a column added to the
source is schema drift on the lake and warehouse tables, alerted; profiles and results are
kept in the `observability` schema, one row per dataset and interval.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import reset_environment

from lifecycle.clients import pg

SCALE = 30
FIRST = date(2026, 11, 10)


def _interval(d: date) -> tuple[datetime, datetime]:
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _play_day(settings, d: date, scale: int) -> dict:
    from lifecycle.dataops import observe
    from lifecycle.dataops.alerts import read_alerts
    from lifecycle.ingest import reviews, sales_cdc, user_activity
    from lifecycle.jobs.engine.runner import run_lake_clean
    from lifecycle.sources.simulator import simulate_day
    from lifecycle.warehouse.load import run as load

    start, end = _interval(d)
    simulate_day(settings, d, scale=scale)
    sales_cdc.run(settings)
    user_activity.run(settings)
    reviews.run(settings, point_in_time=end)
    run_lake_clean(settings, start, end)
    load(settings, start, end)
    read_alerts(settings)  # only what the observation itself sends counts below
    return observe.run(settings, start, end)


@pytest.fixture(scope="module")
def history(settings):
    reset_environment(settings)
    return [_play_day(settings, FIRST + timedelta(days=i), SCALE) for i in range(3)]


def test_a_normal_day_raises_nothing(settings, history):
    from lifecycle.dataops.alerts import read_alerts
    from lifecycle.dataops.observe import latest_results

    assert history[0]["findings"] == [] and history[0]["datasets"] >= 6
    out = _play_day(settings, FIRST + timedelta(days=3), SCALE)
    assert out["findings"] == [] and not out["alert_sent"]
    assert read_alerts(settings) == []
    results = {(r["dataset"], r["monitor"], r["subject"]): r for r in latest_results(settings)}
    assert results[("lake.orders", "volume", "*")]["status"] == "ok"  # judged, not skipped
    assert results[("lake.events", "distribution", "event_type")]["status"] == "ok"
    assert results[("warehouse.landing.events", "completeness", "*")]["value"] == 1.0
    assert results[("lake.events", "freshness", "*")]["status"] == "ok"


def test_a_tenth_of_the_volume_is_an_anomaly_alerted_once(settings, history):
    from lifecycle.dataops import observe
    from lifecycle.dataops.alerts import read_alerts

    d = FIRST + timedelta(days=4)
    out = _play_day(settings, d, SCALE // 10)
    assert {"lake.orders:volume:*", "lake.events:volume:*", "warehouse.landing.orders:volume:*"} <= set(
        out["findings"])
    assert not [f for f in out["findings"] if "schema_drift" in f]
    alerts = read_alerts(settings)
    assert len(alerts) == 1
    (alert,) = alerts
    assert alert["kind"] == "data_quality" and "lake.orders volume" in alert["error"]
    assert alert["data_interval"].startswith(_interval(d)[0].isoformat()) and alert["runbook"]
    # rerunning the interval replaces its results and does not alert again
    again = observe.run(settings, *_interval(d))
    assert again["findings"] == out["findings"] and not again["alert_sent"]
    assert read_alerts(settings) == []
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT interval_start) FROM observability.profiles "
                    "WHERE dataset = 'lake.orders'")
        assert cur.fetchone() == (5, 5)


def test_a_new_source_column_is_schema_drift_alerted(settings, history):
    from lifecycle.dataops.alerts import read_alerts

    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE orders ADD COLUMN coupon_code text")
    out = _play_day(settings, FIRST + timedelta(days=5), SCALE)
    assert {"lake.orders:schema_drift:*", "warehouse.landing.orders:schema_drift:*"} <= set(out["findings"])
    assert not [f for f in out["findings"] if ":volume:" in f]  # the low day does not skew the median
    (alert,) = read_alerts(settings)
    assert "coupon_code" in alert["error"]
    assert "Data observability" in settings.observability_page.read_text()
