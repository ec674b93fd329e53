"""Case 8: a backfill of past intervals after new data arrived.

Two daily intervals run through the lifecycle (the original runs); then a third day of
data arrives in the sources; then the two past intervals are run again, oldest first (what
``airflow backfill create --dag-id ... --from-date ... --to-date ...`` makes the scheduler
do, here with the stages called directly: see docs/chaos.md for why not the scheduler;
test_airflow_scheduler.py backfills the simulator DAG through the real scheduler).

Expected: the simulator's interval-keyed DAG returns what it returned originally (a day is
simulated once); every immutable fact of those intervals (the clean events of each date,
landing events, ``serving.funnel_daily`` of each date) equals what the original runs
produced; the mutable facts (orders whose status changed since) equal the source of now;
the new day's data is caught up and everything reconciles.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import reset_environment

from chaos.harness import assert_reconciled, reconcile
from lifecycle.clients import pg
from lifecycle.pipeline.stages import STAGES, run_stages

DAYS = (date(2026, 11, 20), date(2026, 11, 21))


def _interval(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _per_date(settings) -> dict:
    from lifecycle.clients import connect_duckdb
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import CLEAN_TABLES

    out = {}
    with connect_duckdb(settings) as con:
        for day in DAYS:
            out[f"clean events {day}"] = con.execute(
                f"SELECT count(*), md5(string_agg(t::VARCHAR, '|' ORDER BY t::VARCHAR)) FROM "
                f"{iceberg.scan_sql(settings, CLEAN_TABLES['events'])} t WHERE event_date = DATE '{day}'").fetchone()
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        for day in DAYS:
            cur.execute("SELECT count(*), coalesce(sum(hashtextextended((to_jsonb(t) - '_loaded_at')::text, 0)), 0) "
                        "FROM landing.events t WHERE event_date = %s", (day,))
            out[f"landing events {day}"] = cur.fetchone()
            cur.execute("SELECT to_jsonb(t)::text FROM serving.funnel_daily t WHERE event_date = %s", (day,))
            out[f"serving.funnel_daily {day}"] = sorted(r[0] for r in cur.fetchall())
    return out


@pytest.mark.chaos_slow
def test_backfill_of_past_intervals_after_new_data(settings, chaos_case):
    from lifecycle.sources.simulator import simulate_day

    chaos_case.fault = "backfill of 2 past daily intervals after a 3rd day of data arrived"
    reset_environment(settings)
    original = {}
    for day in DAYS:  # the original runs, one per interval
        original[day] = simulate_day(settings, day, scale=15, bad_rate=0.05)
        run_stages(settings, STAGES, *_interval(day))
    before = _per_date(settings)
    simulate_day(settings, date(2026, 11, 22), scale=15, bad_rate=0.05)  # new data arrives
    for day in DAYS:  # the backfill, oldest interval first
        again = simulate_day(settings, day, scale=15, bad_rate=0.05)
        assert again.pop("already_simulated") is True and again == original[day]
        run_stages(settings, STAGES, *_interval(day))
    after = _per_date(settings)
    changed = [k for k in before if before[k] != after[k]]
    assert changed == [], f"the backfill changed what the original runs produced: {changed}"
    report = reconcile(settings, chaos_case, serving=True)
    assert_reconciled(report)
    chaos_case.outcome = (f"{len(before)} per-interval results equal to the original runs; the new day "
                          "caught up; reconciled through serving")
