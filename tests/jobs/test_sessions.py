"""The ``curate_sessions`` job: sessions (30-minute inactivity rule) built in the lake.

Input: Firehose-layout raw event objects in moto S3 (the session fixture's environment),
turned into clean events by ``clean_events``; then ``curate_sessions`` on them.
Asserts: the exact sessions — a gap of exactly 30 minutes keeps the session, 30 minutes and
a microsecond splits it, anonymous events are one session each, a session crossing midnight
belongs to its start date, invalid and duplicate records count nothing; the Parquet types of
the contract, one data file per session date, the Iceberg table in the Glue Catalog; a rerun
commits nothing; late events (arriving in a later object) merge two sessions into one and
move a session's start to the previous day (its old date partition disappears) after a
rerun; the warehouse loader picks the table up as ``landing.sessions``.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from lifecycle.clients import aws

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 2, tzinfo=UTC)
D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)

OBJ1 = "events/2026/03/02/23/user-activity-1-2026-03-02-23-00-00-shardId-000000000000-4970000001"
# arrives later with two late events (from days before its arrival hour)
LATE = "events/2026/03/03/01/user-activity-1-2026-03-03-01-00-00-shardId-000000000000-4970000002"


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def ev(event_id, event_type, event_ts, customer_id, **extra) -> str:
    return json.dumps({"event_id": event_id, "event_type": event_type, "event_ts": event_ts,
                       "customer_id": customer_id, **extra})


RAW = [
    # customer 1: 10:00 -> 10:30 is exactly 30 minutes (same session); 10:30 -> 11:00:00.000001
    # is 30 minutes and 1 µs (new session)
    ev("a1", "page_view", "2026-03-01T10:00:00Z", 1),
    ev("a2", "add_to_cart", "2026-03-01T10:30:00Z", 1, quantity=1),
    ev("a3", "page_view", "2026-03-01T11:00:00.000001Z", 1),
    ev("a4", "purchase", "2026-03-01T11:10:00Z", 1, order_id=7),
    # not valid events: would bridge the gap between a2 and a3 if they counted
    ev("a5", "refund", "2026-03-01T10:45:00Z", 1),
    ev("a1", "page_view", "2026-03-01T10:45:00Z", 1),  # duplicate event_id (later: dropped)
    # anonymous: each event its own session, even a minute apart
    ev("n1", "page_view", "2026-03-01T10:05:00Z", None),
    ev("n2", "page_view", "2026-03-01T10:06:00Z", None),
    # customer 2: a session crossing midnight counts on its start date; then a new one
    ev("b1", "page_view", "2026-03-01T23:50:00Z", 2),
    ev("b2", "checkout", "2026-03-02T00:15:00Z", 2),
    ev("b3", "page_view", "2026-03-02T02:00:00Z", 2),
    # customer 4: 14:00 and 14:50 are two sessions until the late 14:25 arrives
    ev("d1", "page_view", "2026-03-01T14:00:00Z", 4),
    ev("d2", "add_to_cart", "2026-03-01T14:50:00Z", 4, quantity=2),
    ev("d4", "page_view", "2026-03-01T16:00:00Z", 4),
    # customer 5: the only session starting on 2026-03-03, until a late event extends it back
    ev("f1", "page_view", "2026-03-03T00:10:00Z", 5),
]
LATE_EVENTS = [
    ev("d3", "add_to_cart", "2026-03-01T14:25:00Z", 4, quantity=1),
    ev("f0", "page_view", "2026-03-02T23:55:00Z", 5),
]

COLUMNS = ("session_id, customer_id, session_start, session_end, event_count, page_views, "
           "add_to_carts, checkouts, purchases, converted, session_date")

# (session_id, customer_id, start, end, events, page_views, add_to_carts, checkouts,
#  purchases, converted, session_date)
EXPECTED = [
    ("a-n1", None, ts("2026-03-01T10:05:00Z"), ts("2026-03-01T10:05:00Z"), 1, 1, 0, 0, 0, False, D1),
    ("a-n2", None, ts("2026-03-01T10:06:00Z"), ts("2026-03-01T10:06:00Z"), 1, 1, 0, 0, 0, False, D1),
    ("c1-1", 1, ts("2026-03-01T10:00:00Z"), ts("2026-03-01T10:30:00Z"), 2, 1, 1, 0, 0, False, D1),
    ("c1-2", 1, ts("2026-03-01T11:00:00.000001Z"), ts("2026-03-01T11:10:00Z"), 2, 1, 0, 0, 1, True, D1),
    ("c2-1", 2, ts("2026-03-01T23:50:00Z"), ts("2026-03-02T00:15:00Z"), 2, 1, 0, 1, 0, False, D1),
    ("c2-2", 2, ts("2026-03-02T02:00:00Z"), ts("2026-03-02T02:00:00Z"), 1, 1, 0, 0, 0, False, D2),
    ("c4-1", 4, ts("2026-03-01T14:00:00Z"), ts("2026-03-01T14:00:00Z"), 1, 1, 0, 0, 0, False, D1),
    ("c4-2", 4, ts("2026-03-01T14:50:00Z"), ts("2026-03-01T14:50:00Z"), 1, 0, 1, 0, 0, False, D1),
    ("c4-3", 4, ts("2026-03-01T16:00:00Z"), ts("2026-03-01T16:00:00Z"), 1, 1, 0, 0, 0, False, D1),
    ("c5-1", 5, ts("2026-03-03T00:10:00Z"), ts("2026-03-03T00:10:00Z"), 1, 1, 0, 0, 0, False, D3),
]
# after the late events: c4's first two sessions merge (and its third is renumbered), c5's
# session starts the day before, so 2026-03-03 has no session any more
EXPECTED_AFTER_LATE = [
    *EXPECTED[:6],
    ("c4-1", 4, ts("2026-03-01T14:00:00Z"), ts("2026-03-01T14:50:00Z"), 3, 1, 2, 0, 0, False, D1),
    ("c4-2", 4, ts("2026-03-01T16:00:00Z"), ts("2026-03-01T16:00:00Z"), 1, 1, 0, 0, 0, False, D1),
    ("c5-1", 5, ts("2026-03-02T23:55:00Z"), ts("2026-03-03T00:10:00Z"), 2, 2, 0, 0, 0, False, D2),
]


# ---- helpers ----------------------------------------------------------------------------------

def reset(settings) -> None:
    from conftest import reset_lake

    reset_lake(settings)


def put(settings, key: str, lines: list[str]) -> None:
    aws(settings, "s3").put_object(Bucket=settings.names.bucket("raw"), Key=key, Body="\n".join(lines).encode())


def session_files(settings) -> dict[str, str]:
    """``{data file: session date}`` of the sessions table's current snapshot."""
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import CLEAN_TABLES

    return iceberg.data_files(iceberg.load_table(settings, CLEAN_TABLES["sessions"]))


def query(settings, sql: str) -> list[tuple]:
    from raw_lake import read

    return read(settings, sql)


def read_sessions(settings) -> list[tuple]:
    return query(settings, f"SELECT {COLUMNS} FROM {{clean.sessions}} ORDER BY session_id")


def run(settings) -> dict:
    from lifecycle.jobs.engine.runner import run_job

    run_job(settings, "clean_events", START, END)
    return run_job(settings, "curate_sessions", START, END)


@pytest.fixture(scope="module")
def first(settings):
    reset(settings)
    put(settings, OBJ1, RAW)
    result = run(settings)
    return result, session_files(settings)


# ---- tests --------------------------------------------------------------------------------------

def test_sessions_exact(settings, first):
    result, _ = first
    assert result["rows_in"] == {"clean.events": 13}
    assert result["rows_out"] == {"sessions": 10}
    assert result["rejected"] == 0
    assert read_sessions(settings) == EXPECTED


def test_files_types_and_catalog(settings, first):
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import CLEAN_TABLES

    _, files = first
    assert sorted(files.values()) == [str(d) for d in (D1, D2, D3)]  # one data file a session date
    (d1,) = [f for f, v in files.items() if v == str(D1)]
    schema = query(settings, f"DESCRIBE SELECT * FROM read_parquet('{d1}')")
    assert [(c, t) for c, t, *_ in schema] == [
        ("session_id", "VARCHAR"), ("customer_id", "BIGINT"),
        ("session_start", "TIMESTAMP WITH TIME ZONE"), ("session_end", "TIMESTAMP WITH TIME ZONE"),
        ("event_count", "BIGINT"), ("page_views", "BIGINT"), ("add_to_carts", "BIGINT"),
        ("checkouts", "BIGINT"), ("purchases", "BIGINT"), ("converted", "BOOLEAN"), ("session_date", "DATE")]
    # a session is written once, in its start date's partition
    rows = query(settings, f"SELECT session_id FROM read_parquet('{d1}') ORDER BY session_id")
    assert [r[0] for r in rows] == [e[0] for e in EXPECTED if e[-1] == D1]
    glue = aws(settings, "glue").get_table(DatabaseName=settings.names.clean_database, Name="sessions")["Table"]
    assert glue["Parameters"]["table_type"] == "ICEBERG"
    assert iceberg.partitions(settings, CLEAN_TABLES["sessions"]) == [str(D1), str(D2), str(D3)]


def test_rerun_commits_nothing(settings, first):
    from lifecycle.jobs.engine.runner import run_job

    _, files = first
    again = run_job(settings, "curate_sessions", START, END)
    assert again["mode"] == "incremental" and again["rows_out"] == {"sessions": 0}  # nothing new
    assert session_files(settings) == files
    full = run_job(settings, "curate_sessions", START, END, bookmark_option="job-bookmark-disable")
    assert full["rows_out"] == {"sessions": 10}
    assert sorted(session_files(settings).values()) == sorted(files.values())
    # disabling dropped the bookmark; the next enabled run is full and bookmarks again
    assert run_job(settings, "curate_sessions", START, END)["mode"] == "full"
    assert read_sessions(settings) == EXPECTED


def test_warehouse_loads_sessions(settings, first):
    from lifecycle.clients import pg
    from lifecycle.warehouse.load import load_landing

    assert load_landing(settings, START, END, tables=["sessions"]) == {"sessions": 10}
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM landing.sessions ORDER BY session_id")
        assert cur.fetchall() == EXPECTED


def test_late_events_merge_and_move_sessions(settings, first):
    """Late events in a later object: a rebuild merges c4's first two sessions (renumbering
    the next one) and moves c5's start to the day before; 2026-03-03's partition goes."""

    put(settings, LATE, LATE_EVENTS)
    try:
        result = run(settings)
        # incremental: only the customers with events in the rewritten partitions (c4, c5)
        assert result["mode"] == "incremental"
        # only the affected customers' events are read (not anonymous ones, nor others')
        assert 0 < result["rows_in"]["clean.events"] < 15
        assert 0 < result["rows_out"]["sessions"] <= 9
        assert read_sessions(settings) == EXPECTED_AFTER_LATE
        assert sorted(session_files(settings).values()) == [str(D1), str(D2)]
    finally:
        aws(settings, "s3").delete_object(Bucket=settings.names.bucket("raw"), Key=LATE)
    # without the late object the sessions are as before
    run(settings)
    assert read_sessions(settings) == EXPECTED


def test_no_events_no_sessions(settings, first):
    from lifecycle.jobs.engine.runner import run_job

    reset(settings)
    result = run_job(settings, "curate_sessions", START, END)
    assert result["rows_in"] == {"clean.events": 0} and result["rows_out"] == {"sessions": 0}
    assert session_files(settings) == {}
