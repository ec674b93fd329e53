"""The dbt project on a real (embedded) Postgres, and the Cosmos DAG rendered from its manifest.

Input: the session fixture ``settings`` (pgserver + moto up, ``LIFECYCLE_PG_*`` in the
environment). This module creates its own database (``dbt_test_warehouse``, so it never
collides with other tests' ``warehouse.landing`` tables) with a small hand-written
``landing`` dataset, runs the venv's ``dbt`` in a subprocess with its target path and
log path in a temp dir (``dbt_project/target`` is left alone), and checks:

- ``dbt build`` passes (models, data tests, unit tests) and ``serving_next.daily_sales``,
  ``product_performance`` and ``funnel_daily`` hold exactly the expected numbers, computed
  by hand below (cancelled order excluded, UTC dates under a non-UTC session time zone,
  30-minute sessions, anonymous sessions, zero rows for an unsold product);
- nothing is built into ``serving`` (serve_publish owns that);
- source freshness (orders, events) runs and only ever warns;
- an order line whose order does not exist makes ``dbt build`` fail on the relationships test;
- the incremental marts: a rerun on the same data rewrites no row (Postgres ``xmin``
  unchanged), a changed line, a deleted and a new order rewrite exactly those orders and
  serving shows the same numbers as a full refresh; after new orders, a changed status, a
  deleted order, new events, a new review and a new customer (loaded as warehouse_load
  would: whole partitions / tables with a new ``_loaded_at``) every mart and serving table
  equals a ``--full-refresh`` build row for row, and unchanged rows are not rewritten;
- through Cosmos (``dags/dbt_build.py`` under ``dag.test()``): a contract violation and a
  failing data test fail exactly their own tasks, and each sends one SNS alert naming it;
- ``dbt parse`` writes a manifest, and ``dags/dbt_build.py`` renders from it in a real
  ``DagBag`` (a fresh process, no metadata database, nothing mocked) with one run and one
  test task per model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from lifecycle.settings import REPO_ROOT

TEST_DB = "dbt_test_warehouse"

MODELS = (
    "stg_sales__orders", "stg_sales__order_items", "stg_sales__customers", "stg_sales__products",
    "stg_activity__events", "stg_activity__sessions", "stg_reviews__reviews",
    "stg_sales__order_status_history",
    "int_order_lines", "int_sessions",
    "fct_orders", "fct_order_items", "dim_customers", "dim_products", "fct_events", "fct_reviews",
    "fct_order_status_changes",
    "agg_daily_sales", "agg_funnel_daily", "agg_product_performance",
    "daily_sales", "product_performance", "funnel_daily",
)

# the incremental models and their key (delete+insert on it)
INCREMENTAL = {
    "fct_orders": "order_id", "fct_events": "event_id", "fct_order_items": "order_line_id",
    "fct_order_status_changes": "order_id, valid_from", "fct_reviews": "review_id",
    "dim_customers": "customer_id", "agg_daily_sales": "order_date", "agg_funnel_daily": "event_date",
    "agg_product_performance": "product_id",
}

LANDING_DDL = """
DROP SCHEMA IF EXISTS landing CASCADE;
CREATE SCHEMA landing;
CREATE TABLE landing.orders (
    order_id bigint, customer_id bigint, status varchar, order_ts timestamptz,
    updated_at timestamptz, order_date date, _loaded_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE landing.order_items (
    order_id bigint, line_no int, product_id bigint, quantity int, unit_price numeric(10,2),
    order_date date, _loaded_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE landing.order_status_history (
    order_id bigint, status varchar, valid_from timestamptz, valid_to timestamptz,
    is_current boolean, change_op varchar,
    _loaded_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE landing.customers (
    customer_id bigint, email_hash varchar, full_name_masked varchar, phone_masked varchar,
    country varchar, created_at timestamptz, updated_at timestamptz,
    _loaded_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE landing.products (
    product_id bigint, sku varchar, name varchar, category varchar, description varchar,
    unit_price numeric(10,2), active boolean, updated_at timestamptz,
    _loaded_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE landing.events (
    event_id varchar, event_type varchar, event_ts timestamptz, customer_id bigint,
    product_id bigint, order_id bigint, page varchar, quantity int, event_date date,
    _loaded_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE landing.reviews (
    product_id bigint, review_id varchar, customer_id bigint, rating int, title varchar,
    body varchar, created_at timestamptz,
    _loaded_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE landing.sessions (
    session_id varchar, customer_id bigint, session_start timestamptz, session_end timestamptz,
    event_count bigint, page_views bigint, add_to_carts bigint, checkouts bigint,
    purchases bigint, converted boolean, session_date date, _loaded_at timestamptz NOT NULL DEFAULT now());
"""

# The dataset. Timestamps are instants (some written with a -05:00 offset on purpose).
LANDING_ROWS = """
INSERT INTO landing.customers VALUES
  (1, 'h1', 'A*** B***', '+49 *** 01', 'de', '2025-12-01 08:00+00', '2025-12-01 08:00+00'),
  (2, 'h2', 'C*** D***', '+33 *** 02', 'FR', '2025-12-02 08:00+00', '2025-12-02 08:00+00'),
  (3, 'h3', 'E*** F***', '+1 *** 03',  'US', '2025-12-03 08:00+00', '2025-12-03 08:00+00');
INSERT INTO landing.products VALUES
  (1, 'SKU-1', 'Widget', 'tools', 'a widget', 10.00, true,  '2025-12-01 00:00+00'),
  (2, 'SKU-2', 'Gadget', 'toys',  'a gadget', 25.50, true,  '2025-12-01 00:00+00'),
  (3, 'SKU-3', 'Gizmo',  'toys',  'unsold',    5.00, false, '2025-12-01 00:00+00');
INSERT INTO landing.orders VALUES
  (101, 1, 'paid',      '2026-01-10 09:00+00',    '2026-01-10 09:05+00', '2026-01-10'),
  (102, 2, 'cancelled', '2026-01-10 12:00+00',    '2026-01-10 13:00+00', '2026-01-10'),
  (103, 1, 'delivered', '2026-01-10 23:30-05:00', '2026-01-11 06:00+00', '2026-01-11'),
  (104, 3, 'shipped',   '2026-01-11 10:00+00',    '2026-01-11 12:00+00', '2026-01-11');
INSERT INTO landing.order_status_history VALUES
  (101, 'placed', '2026-01-10 09:00+00', '2026-01-10 09:05+00', false, 'I'),
  (101, 'paid',   '2026-01-10 09:05+00', NULL,                  true,  'U'),
  (102, 'placed', '2026-01-10 12:00+00', '2026-01-10 13:00+00', false, 'I'),
  (102, 'cancelled', '2026-01-10 13:00+00', NULL,               true,  'U');
INSERT INTO landing.order_items VALUES
  (101, 1, 1, 2, 10.00, '2026-01-10'),
  (101, 2, 2, 1, 25.50, '2026-01-10'),
  (102, 1, 1, 5, 10.00, '2026-01-10'),
  (103, 1, 2, 2, 25.00, '2026-01-11'),
  (104, 1, 1, 1,  9.50, '2026-01-11');
INSERT INTO landing.events VALUES
  ('e1', 'page_view',   '2026-01-10 10:00+00', 1,    1,    NULL, '/p/1',     NULL, '2026-01-10'),
  ('e2', 'add_to_cart', '2026-01-10 10:10+00', 1,    1,    NULL, '/p/1',     2,    '2026-01-10'),
  ('e3', 'checkout',    '2026-01-10 10:15+00', 1,    NULL, NULL, '/checkout', NULL, '2026-01-10'),
  ('e4', 'purchase',    '2026-01-10 10:16+00', 1,    1,    101,  '/thanks',   NULL, '2026-01-10'),
  ('e5', 'page_view',   '2026-01-10 10:56+00', 1,    2,    NULL, '/p/2',     NULL, '2026-01-10'),
  ('e6', 'add_to_cart', '2026-01-10 10:58+00', 1,    2,    NULL, '/p/2',     1,    '2026-01-10'),
  ('e7', 'page_view',   '2026-01-10 11:00+00', NULL, 1,    NULL, '/p/1',     NULL, '2026-01-10'),
  ('e8', 'page_view',   '2026-01-10 23:50+00', 2,    2,    NULL, '/p/2',     NULL, '2026-01-10'),
  ('e9', 'page_view',   '2026-01-10 19:05-05:00', 2, 2,    NULL, '/p/2',     NULL, '2026-01-11');
INSERT INTO landing.reviews VALUES
  (1, 'r1', 1, 5, 'great', 'body', '2026-01-09 10:00+00'),
  (1, 'r2', 2, 4, 'good',  'body', '2026-01-09 11:00+00'),
  (1, 'r3', 3, 4, 'good',  'body', '2026-01-09 12:00+00'),
  (2, 'r4', 1, 3, 'ok',    'body', '2026-01-09 13:00+00');
-- the sessions curate_sessions builds from the events above (30-minute rule, in the lake)
INSERT INTO landing.sessions VALUES
  ('c1-1', 1,    '2026-01-10 10:00+00', '2026-01-10 10:16+00', 4, 1, 1, 1, 1, true,  '2026-01-10'),
  ('c1-2', 1,    '2026-01-10 10:56+00', '2026-01-10 10:58+00', 2, 1, 1, 0, 0, false, '2026-01-10'),
  ('a-e7', NULL, '2026-01-10 11:00+00', '2026-01-10 11:00+00', 1, 1, 0, 0, 0, false, '2026-01-10'),
  ('c2-1', 2,    '2026-01-10 23:50+00', '2026-01-11 00:05+00', 2, 2, 0, 0, 0, false, '2026-01-10');
"""

# Hand-computed expectations.
# daily_sales: 102 is cancelled; 103 is 2026-01-11 in UTC (23:30-05:00 = 04:30Z).
EXPECTED_DAILY_SALES = [
    (date(2026, 1, 10), 1, 3, Decimal("45.50"), 1),  # 101: 2*10.00 + 1*25.50
    (date(2026, 1, 11), 2, 3, Decimal("59.50"), 2),  # 103: 2*25.00, 104: 1*9.50
]
# product_performance: (id, name, category, units, revenue, views, add_to_carts, purchases,
# avg_rating, review_count)
EXPECTED_PRODUCT_PERFORMANCE = [
    (1, "Widget", "tools", 3, Decimal("29.50"), 2, 1, 2, Decimal("4.33"), 3),
    (2, "Gadget", "toys", 3, Decimal("75.50"), 3, 1, 2, Decimal("3.00"), 1),
    (3, "Gizmo", "toys", 0, Decimal("0.00"), 0, 0, 0, None, 0),
]
# funnel_daily: 2026-01-10 sessions: c1-1 (e1..e4), c1-2 (e5, e6: 40 min after e4),
# a-e7 (anonymous), c2-1 (e8 at 23:50Z, continued by e9 at 00:05Z next day) = 4.
# 2026-01-11: only e9, whose session started the day before: 0 sessions, rate null.
EXPECTED_FUNNEL = [
    (date(2026, 1, 10), 4, 2, 1, 1, 4, Decimal("0.2500")),
    (date(2026, 1, 11), 1, 0, 0, 0, 0, None),
]


def _dbt_env(settings, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DBT_TARGET": "embedded",
        "LIFECYCLE_PG_HOST": settings.pg.host,
        "LIFECYCLE_PG_PORT": str(settings.pg.port),
        "LIFECYCLE_PG_USER": settings.pg.user,
        "LIFECYCLE_PG_PASSWORD": settings.pg.password,
        "LIFECYCLE_WAREHOUSE_DB": TEST_DB,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "DBT_LOG_PATH": str(tmp / "logs"),
        # a non-UTC session time zone: the models must still use UTC dates
        "PGTZ": "America/New_York",
    })
    return env


def _dbt(args: list[str], env: dict[str, str], target_path: Path) -> subprocess.CompletedProcess:
    from lifecycle.warehouse.dbt import dbt_command

    cmd = dbt_command(*args, target=env["DBT_TARGET"], target_path=target_path)
    assert cmd[0] == str(Path(sys.executable).parent / "dbt")  # the venv's dbt
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


def _query(dsn: str, sql: str) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def _execute(dsn: str, sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def warehouse(settings, tmp_path_factory):
    """A dedicated warehouse database with the landing dataset, and the dbt env to reach it."""
    _execute(settings.pg_dsn("postgres"), f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
    _execute(settings.pg_dsn("postgres"), f'CREATE DATABASE "{TEST_DB}"')
    dsn = settings.pg_dsn(TEST_DB)
    _execute(dsn, LANDING_DDL + LANDING_ROWS)
    # dbt logs in as its own role (lifecycle.security.pg_roles): give it this database too
    from dataclasses import replace

    from lifecycle.security import pg_roles

    pg_roles.apply_warehouse(replace(settings, pg=replace(settings.pg, warehouse_db=TEST_DB)))
    tmp = tmp_path_factory.mktemp("dbt")
    try:
        yield {"dsn": dsn, "env": _dbt_env(settings, tmp), "tmp": tmp}
    finally:
        _execute(settings.pg_dsn("postgres"), f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')


@pytest.fixture(scope="module")
def built(warehouse):
    """One `dbt build` of the whole project on the dataset; returns its run results."""
    target = warehouse["tmp"] / "target-build"
    started = time.monotonic()
    proc = _dbt(["build"], warehouse["env"], target)
    elapsed = time.monotonic() - started
    print(f"dbt build: {elapsed:.1f} s wall")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "deprecat" not in proc.stdout.lower(), proc.stdout[-6000:]
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {"results": results, "elapsed": elapsed, "stdout": proc.stdout}


def test_build_runs_every_model_test_and_unit_test(built):
    by_id = {r["unique_id"]: r["status"] for r in built["results"]}
    for model in MODELS:
        assert by_id.get(f"model.lifecycle.{model}") == "success", model
    unit_tests = {uid: s for uid, s in by_id.items() if uid.startswith("unit_test.")}
    assert {uid.rsplit(".", 1)[-1] for uid in unit_tests} == {
        "daily_sales_excludes_cancelled_orders",
        "int_sessions_keeps_the_lake_sessions",
        "funnel_daily_conversion_rate",
        "fct_orders_revenue_from_lines",
        "fct_order_status_changes_scd2_durations",
    }
    assert set(unit_tests.values()) == {"pass"}
    data_tests = [s for uid, s in by_id.items() if uid.startswith("test.")]
    assert len(data_tests) > 30
    assert set(data_tests) <= {"pass", "warn"}


def test_daily_sales(built, warehouse):
    rows = _query(warehouse["dsn"],
                  "SELECT order_date, orders, items, revenue, customers "
                  "FROM serving_next.daily_sales ORDER BY order_date")
    assert rows == EXPECTED_DAILY_SALES


def test_product_performance(built, warehouse):
    rows = _query(warehouse["dsn"],
                  "SELECT product_id, name, category, units_sold, revenue, views, add_to_carts, "
                  "purchases, avg_rating, review_count "
                  "FROM serving_next.product_performance ORDER BY product_id")
    assert rows == EXPECTED_PRODUCT_PERFORMANCE


def test_funnel_daily(built, warehouse):
    rows = _query(warehouse["dsn"],
                  "SELECT event_date, page_views, add_to_carts, checkouts, purchases, sessions, "
                  "conversion_rate FROM serving_next.funnel_daily ORDER BY event_date")
    assert rows == EXPECTED_FUNNEL


def test_serving_contract_types_and_schemas(built, warehouse):
    """Enforced contracts: exact column types; models only in their layer's schema."""
    cols = _query(warehouse["dsn"], """
        SELECT table_name, column_name,
               CASE WHEN data_type = 'numeric'
                    THEN format('numeric(%s,%s)', numeric_precision, numeric_scale)
                    ELSE data_type END
        FROM information_schema.columns
        WHERE table_schema = 'serving_next'
        ORDER BY table_name, ordinal_position""")
    types = {(t, c): ty for t, c, ty in cols}
    assert types[("daily_sales", "order_date")] == "date"
    assert types[("daily_sales", "revenue")] == "numeric(14,2)"
    assert types[("daily_sales", "orders")] == "bigint"
    assert types[("product_performance", "avg_rating")] == "numeric(4,2)"
    assert types[("funnel_daily", "conversion_rate")] == "numeric(8,4)"
    assert types[("funnel_daily", "sessions")] == "bigint"
    tables = _query(warehouse["dsn"], """
        SELECT table_schema, table_name FROM information_schema.tables
        WHERE table_schema IN ('staging', 'intermediate', 'marts', 'serving_next', 'serving', 'analytics')""")
    by_schema: dict[str, set[str]] = {}
    for schema, name in tables:
        by_schema.setdefault(schema, set()).add(name)
    assert by_schema["serving_next"] == {"daily_sales", "product_performance", "funnel_daily"}
    assert "serving" not in by_schema and "analytics" not in by_schema
    assert by_schema["staging"] == {m for m in MODELS if m.startswith("stg_")}
    assert by_schema["intermediate"] == {"int_order_lines", "int_sessions"}
    assert by_schema["marts"] == {m for m in MODELS if m[:4] in ("fct_", "dim_", "agg_")}


def test_sessions_split_at_30_minutes(built, warehouse):
    rows = _query(warehouse["dsn"],
                  "SELECT session_id, session_date, event_count FROM intermediate.int_sessions "
                  "ORDER BY session_id")
    assert rows == [
        ("a-e7", date(2026, 1, 10), 1),
        ("c1-1", date(2026, 1, 10), 4),
        ("c1-2", date(2026, 1, 10), 2),
        ("c2-1", date(2026, 1, 10), 2),
    ]


def test_order_status_durations(built, warehouse):
    rows = _query(warehouse["dsn"], "SELECT order_id, status, seconds_in_status, is_current "
                  "FROM marts.fct_order_status_changes ORDER BY order_id, valid_from")
    assert rows == [(101, "placed", 300, False), (101, "paid", None, True),
                    (102, "placed", 3600, False), (102, "cancelled", None, True)]


def test_source_freshness_only_warns(built, warehouse):
    """orders.updated_at and events.event_ts have freshness checks that warn, never error."""
    target = warehouse["tmp"] / "target-freshness"
    proc = _dbt(["source", "freshness"], warehouse["env"], target)
    assert proc.returncode == 0, proc.stdout[-3000:]
    results = json.loads((target / "sources.json").read_text())["results"]
    statuses = {r["unique_id"]: r["status"] for r in results}
    assert set(statuses) == {"source.lifecycle.sales.orders", "source.lifecycle.activity.events"}
    assert set(statuses.values()) <= {"pass", "warn"}


def test_orphan_order_line_fails_the_build(built, warehouse):
    """A line whose order does not exist: the relationships test fails, so does `dbt build`."""
    _execute(warehouse["dsn"],
             "INSERT INTO landing.order_items VALUES (999, 1, 1, 1, 10.00, '2026-01-10')")
    target = warehouse["tmp"] / "target-broken"
    try:
        proc = _dbt(["build", "--select", "stg_sales__orders", "stg_sales__order_items",
                     "stg_sales__products"], warehouse["env"], target)
    finally:
        _execute(warehouse["dsn"], "DELETE FROM landing.order_items WHERE order_id = 999")
    assert proc.returncode != 0, proc.stdout[-3000:]
    results = json.loads((target / "run_results.json").read_text())["results"]
    failed = {r["unique_id"] for r in results if r["status"] in ("fail", "error")}
    assert any("relationships_stg_sales__order_items_order_id" in uid for uid in failed), failed


def _xmins(dsn: str, table: str, key: str) -> dict:
    """{key: xmin} of a mart's rows (xmin changes when a row is rewritten)."""
    return dict(_query(dsn, f"SELECT {key}, xmin::text FROM marts.{table}"))


def test_incremental_marts_write_only_what_changed(built, warehouse):
    dsn, env = warehouse["dsn"], warehouse["env"]
    orders_before, events_before = _xmins(dsn, "fct_orders", "order_id"), _xmins(dsn, "fct_events", "event_id")
    proc = _dbt(["build"], env, warehouse["tmp"] / "target-rerun")
    assert proc.returncode == 0, proc.stdout[-4000:]
    # nothing changed: no row of either incremental mart was rewritten
    assert _xmins(dsn, "fct_orders", "order_id") == orders_before
    assert _xmins(dsn, "fct_events", "event_id") == events_before

    # someone edits a line of 101 (orders.updated_at untouched), deletes 104, adds 105; the
    # load replaces the partitions concerned (new rows: _loaded_at of that load)
    _execute(dsn, """
        UPDATE landing.order_items SET quantity = 3, _loaded_at = now() WHERE order_id = 101 AND line_no = 1;
        DELETE FROM landing.order_items WHERE order_id = 104;
        DELETE FROM landing.orders WHERE order_id = 104;
        INSERT INTO landing.orders VALUES (105, 2, 'paid', '2026-01-11 15:00+00', '2026-01-11 15:00+00', '2026-01-11');
        INSERT INTO landing.order_items VALUES (105, 1, 2, 2, 7.25, '2026-01-11');""")
    try:
        proc = _dbt(["build"], env, warehouse["tmp"] / "target-incremental")
        assert proc.returncode == 0, proc.stdout[-4000:]
        after = _xmins(dsn, "fct_orders", "order_id")
        assert set(after) == {101, 102, 103, 105}
        assert after[102] == orders_before[102] and after[103] == orders_before[103]  # untouched
        assert after[101] != orders_before[101]
        assert _xmins(dsn, "fct_events", "event_id") == events_before
        expected = [(date(2026, 1, 10), 1, 4, Decimal("55.50"), 1),   # 101: 3*10.00 + 25.50
                    (date(2026, 1, 11), 2, 4, Decimal("64.50"), 2)]   # 103: 50.00, 105: 2*7.25
        serving = "SELECT order_date, orders, items, revenue, customers FROM serving_next.daily_sales ORDER BY 1"
        assert _query(dsn, serving) == expected
        incremental = _query(dsn, "SELECT * FROM marts.fct_orders ORDER BY order_id")
        proc = _dbt(["build", "--full-refresh"], env, warehouse["tmp"] / "target-full")
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert _query(dsn, "SELECT * FROM marts.fct_orders ORDER BY order_id") == incremental
        assert _query(dsn, serving) == expected
    finally:
        _execute(dsn, """
            UPDATE landing.order_items SET quantity = 2 WHERE order_id = 101 AND line_no = 1;
            DELETE FROM landing.order_items WHERE order_id = 105;
            DELETE FROM landing.orders WHERE order_id = 105;
            INSERT INTO landing.orders VALUES (104, 3, 'shipped', '2026-01-11 10:00+00', '2026-01-11 12:00+00', '2026-01-11');
            INSERT INTO landing.order_items VALUES (104, 1, 1, 1, 9.50, '2026-01-11');""")



def _dump(dsn: str, relation: str) -> list[tuple]:
    """Every row of a relation, every column but _loaded_at, in a total order. _loaded_at is
    bookkeeping, not content: a row reloaded unchanged is not rewritten by an incremental
    build, so it keeps the time of the load that last changed it (a full refresh: the last load)."""
    schema, table = relation.split(".")
    cols = [c for (c,) in _query(dsn, "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                      f"'{schema}' AND table_name = '{table}' ORDER BY ordinal_position")]
    assert cols, relation
    select = ", ".join(c for c in cols if c != "_loaded_at")
    return _query(dsn, f"SELECT {select} FROM {relation} ORDER BY ({select})::text")


MARTS_AND_SERVING = [f"marts.{m}" for m in MODELS if m[:4] in ("fct_", "dim_", "agg_")] + [
    f"serving_next.{m}" for m in ("daily_sales", "funnel_daily", "product_performance")]

LANDING_TABLES = ("orders", "order_items", "order_status_history", "customers", "products", "events",
                  "reviews", "sessions")

# What later loads bring, as warehouse_load would write it: each changed partition (orders,
# lines and status history by order_date, events and sessions by date) and each unpartitioned
# table (customers, reviews) replaced whole, so its unchanged rows get the new _loaded_at too.
NEW_DATA = """
-- order 101 is shipped (a new status version ends the 'paid' one); the 2026-01-10 partition
-- of orders, lines and history is reloaded, 102 and 101's lines unchanged
UPDATE landing.orders SET status = 'shipped', updated_at = '2026-01-12 08:00+00' WHERE order_id = 101;
UPDATE landing.order_status_history SET valid_to = '2026-01-12 08:00+00', is_current = false
WHERE order_id = 101 AND status = 'paid';
INSERT INTO landing.order_status_history VALUES (101, 'shipped', '2026-01-12 08:00+00', NULL, true, 'U');
-- order 104 (customer 3's only order) is deleted; order 105 of a new customer 4 arrives
DELETE FROM landing.order_items WHERE order_id = 104;
DELETE FROM landing.orders WHERE order_id = 104;
INSERT INTO landing.orders VALUES (105, 4, 'placed', '2026-01-12 09:00+00', '2026-01-12 09:00+00', '2026-01-12');
INSERT INTO landing.order_items VALUES (105, 1, 3, 4, 5.00, '2026-01-12'), (105, 2, 1, 1, 10.00, '2026-01-12');
INSERT INTO landing.order_status_history VALUES (105, 'placed', '2026-01-12 09:00+00', NULL, true, 'I');
INSERT INTO landing.customers VALUES
  (4, 'h4', 'G*** H***', '+44 *** 04', 'gb', '2026-01-12 08:30+00', '2026-01-12 08:30+00');
-- new events (customer 4's session, an anonymous one) on a new date, a new review
INSERT INTO landing.events VALUES
  ('e10', 'page_view',   '2026-01-12 08:40+00', 4,    3, NULL, '/p/3', NULL, '2026-01-12'),
  ('e11', 'add_to_cart', '2026-01-12 08:45+00', 4,    3, NULL, '/p/3', 4,    '2026-01-12'),
  ('e12', 'page_view',   '2026-01-12 10:00+00', NULL, 2, NULL, '/p/2', NULL, '2026-01-12');
INSERT INTO landing.sessions VALUES
  ('c4-1', 4,    '2026-01-12 08:40+00', '2026-01-12 08:45+00', 2, 1, 1, 0, 0, false, '2026-01-12'),
  ('a-e12', NULL, '2026-01-12 10:00+00', '2026-01-12 10:00+00', 1, 1, 0, 0, 0, false, '2026-01-12');
INSERT INTO landing.reviews VALUES (3, 'r5', 4, 2, 'meh', 'body', '2026-01-12 11:00+00');
-- the reloads: every row of a replaced partition / table carries this load's time
UPDATE landing.orders SET _loaded_at = now() WHERE order_date IN ('2026-01-10', '2026-01-12');
UPDATE landing.order_items SET _loaded_at = now() WHERE order_date IN ('2026-01-10', '2026-01-12');
UPDATE landing.order_status_history SET _loaded_at = now()
WHERE order_id IN (SELECT order_id FROM landing.orders WHERE order_date IN ('2026-01-10', '2026-01-12'));
UPDATE landing.customers SET _loaded_at = now();
UPDATE landing.reviews SET _loaded_at = now();
"""


def test_incremental_build_equals_full_refresh(built, warehouse):
    """After new orders, a changed status (a new history version of an existing order), a
    deleted order, new events, a new review and a new customer, every mart and serving table
    of the incremental build equals the full refresh's, row for row; a rerun without new data
    writes no row."""
    dsn, env, tmp = warehouse["dsn"], warehouse["env"], warehouse["tmp"]
    _execute(dsn, "DROP SCHEMA IF EXISTS landing_saved CASCADE; CREATE SCHEMA landing_saved;" + "".join(
        f"CREATE TABLE landing_saved.{t} AS SELECT * FROM landing.{t};" for t in LANDING_TABLES))
    try:
        proc = _dbt(["build", "--full-refresh"], env, tmp / "target-inc-base")
        assert proc.returncode == 0, proc.stdout[-4000:]
        before = {m: _xmins(dsn, m, f"ROW({k})::text") for m, k in INCREMENTAL.items()}

        proc = _dbt(["build"], env, tmp / "target-inc-rerun")
        assert proc.returncode == 0, proc.stdout[-4000:]
        for model, key in INCREMENTAL.items():  # no new data: not one row rewritten
            assert _xmins(dsn, model, f"ROW({key})::text") == before[model], model

        _execute(dsn, NEW_DATA)
        proc = _dbt(["build"], env, tmp / "target-inc-new")
        assert proc.returncode == 0, proc.stdout[-4000:]
        incremental = {rel: _dump(dsn, rel) for rel in MARTS_AND_SERVING}
        after = {m: _xmins(dsn, m, f"ROW({k})::text") for m, k in INCREMENTAL.items()}
        # reloaded but unchanged: not rewritten
        assert after["fct_orders"]["(102)"] == before["fct_orders"]["(102)"]
        assert after["fct_order_items"]["(102-1)"] == before["fct_order_items"]["(102-1)"]
        assert after["fct_reviews"]["(r1)"] == before["fct_reviews"]["(r1)"]
        assert after["dim_customers"]["(2)"] == before["dim_customers"]["(2)"]
        # changed: rewritten; deleted: gone
        assert after["fct_orders"]["(101)"] != before["fct_orders"]["(101)"] and "(104)" not in after["fct_orders"]
        assert after["dim_customers"]["(3)"] != before["dim_customers"]["(3)"]  # lost its only order
        assert "(2026-01-12)" in after["agg_funnel_daily"] and "(105-2)" in after["fct_order_items"]
        history = _query(dsn, "SELECT status, is_current, seconds_in_status FROM marts.fct_order_status_changes "
                              "WHERE order_id = 101 ORDER BY valid_from")
        assert history == [("placed", False, 300), ("paid", False, 168900), ("shipped", True, None)]
        assert _query(dsn, "SELECT order_count, lifetime_revenue FROM marts.dim_customers "
                           "WHERE customer_id IN (3, 4) ORDER BY customer_id") == [(0, Decimal("0.00")),
                                                                                  (1, Decimal("30.00"))]

        proc = _dbt(["build", "--full-refresh"], env, tmp / "target-inc-full")
        assert proc.returncode == 0, proc.stdout[-4000:]
        for rel in MARTS_AND_SERVING:
            assert _dump(dsn, rel) == incremental[rel], rel

        after = {m: _xmins(dsn, m, f"ROW({k})::text") for m, k in INCREMENTAL.items()}
        proc = _dbt(["build"], env, tmp / "target-inc-rerun2")
        assert proc.returncode == 0, proc.stdout[-4000:]
        for model, key in INCREMENTAL.items():
            assert _xmins(dsn, model, f"ROW({key})::text") == after[model], model
    finally:
        # the dataset as it was, reloaded (new _loaded_at), and the models rebuilt on it
        _execute(dsn, "".join(
            f"TRUNCATE landing.{t}; INSERT INTO landing.{t} SELECT * FROM landing_saved.{t};"
            f"UPDATE landing.{t} SET _loaded_at = now();" for t in LANDING_TABLES)
            + "DROP SCHEMA landing_saved CASCADE;")
        _dbt(["build", "--full-refresh"], env, tmp / "target-inc-restore")

def test_contract_violation_and_failing_test_fail_their_cosmos_tasks_and_alert(settings, built, warehouse,
                                                                                tmp_path):
    """The real DAG file, rendered by Cosmos from a manifest of a copy of the project in which
    daily_sales breaks its contract (revenue as double precision), on data with an order line
    whose order does not exist (the relationships test fails)."""
    import shutil

    from conftest import lifecycle_env

    from lifecycle.dataops.alerts import read_alerts
    from lifecycle.infra import apply as infra

    project = tmp_path / "dbt_project"
    shutil.copytree(REPO_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    model = project / "models" / "serving" / "daily_sales.sql"
    sql = model.read_text()
    assert "cast(revenue as numeric(14, 2)) as revenue" in sql
    model.write_text(sql.replace("cast(revenue as numeric(14, 2)) as revenue",
                                 "cast(revenue as double precision) as revenue"))
    env = {**lifecycle_env(settings), **{k: v for k, v in warehouse["env"].items() if k.startswith(("LIFECYCLE_",
                                                                                                    "DBT_", "PGTZ"))}}
    env.update({"LIFECYCLE_DBT_PROJECT_DIR": str(project),
                "LIFECYCLE_DBT_MANIFEST": str(project / "target" / "manifest.json")})
    from lifecycle.warehouse.dbt import dbt_executable

    proc = subprocess.run([dbt_executable(), "parse", "--project-dir", str(project), "--profiles-dir", str(project)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=project)
    assert proc.returncode == 0, proc.stdout[-3000:]

    infra.apply(settings)
    read_alerts(settings)  # drain anything earlier
    _execute(warehouse["dsn"], "INSERT INTO landing.order_items VALUES (999, 1, 1, 1, 10.00, '2026-01-10')")
    script = f"""
import json
from lifecycle.ops import dag_runs as orchestrate
from lifecycle.settings import Settings
s = Settings.from_env()
orchestrate.configure_airflow(s, quiet=True)
orchestrate.migrate_metadata(s)
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(REPO_ROOT / "dags" / "dbt_build.py")!r})
assert not bag.import_errors, bag.import_errors
dag = bag.dags["dbt_build"]
for t in dag.tasks:
    t.retries = 0  # fail at the first attempt (the DAG retries twice, 30 s apart)
dr = dag.test()
print("RESULT" + json.dumps({{"state": str(dr.state),
      "tasks": {{ti.task_id: str(ti.state) for ti in dr.get_task_instances()}}}}))
"""
    try:
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                              timeout=600, cwd=REPO_ROOT)
    finally:
        _execute(warehouse["dsn"], "DELETE FROM landing.order_items WHERE order_id = 999")
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT")), None)
    assert line, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = json.loads(line[len("RESULT"):])
    tasks = out["tasks"]
    state = {t: st.split(".")[-1].lower() for t, st in tasks.items()}
    failed = {t for t, st in state.items() if st == "failed"}
    contract = "dbt.daily_sales_model_build"
    relationships = {t for t in tasks if t.startswith("dbt.relationships_stg_sales__order_items_order_id")}
    assert contract in failed and relationships and relationships <= failed, tasks
    assert failed == {contract} | relationships, failed  # nothing else failed
    assert state["dbt.product_performance_model_build"] == "success"
    assert state["dbt.funnel_daily_model_build"] == "success"
    assert state["models_built"] == "upstream_failed"  # serve_publish is not triggered
    assert out["state"].endswith("failed")

    alerts = read_alerts(settings)
    by_task = {a["task_id"]: a for a in alerts if a["dag_id"] == "dbt_build"}
    assert set(by_task) == failed, alerts
    assert "contract" in by_task[contract]["error"].lower(), by_task[contract]["error"]
    assert all(a["runbook"] and a["log_url"] for a in by_task.values())


@pytest.mark.services  # Airflow renders the Cosmos DAG in a subprocess
def test_parse_writes_manifest_and_cosmos_dag_renders(tmp_path):
    """`dbt parse` (no database) → manifest → the Cosmos DAG in a real DagBag, in a fresh process."""
    env = dict(os.environ)
    env.update({"DBT_TARGET": "embedded", "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
                "DBT_LOG_PATH": str(tmp_path / "logs")})
    target = tmp_path / "target"
    proc = _dbt(["parse"], env, target)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    manifest = json.loads((target / "manifest.json").read_text())
    nodes = manifest["nodes"]
    for model in MODELS:
        assert f"model.lifecycle.{model}" in nodes, model
    from lifecycle.warehouse.dbt import SERVING_MODELS, SERVING_SCHEMA

    # the publish refuses a serving_next without SERVING_MODELS: they are exactly dbt's
    assert {n["alias"] for n in nodes.values()
            if n["resource_type"] == "model" and n["schema"] == SERVING_SCHEMA} == set(SERVING_MODELS)
    for model in SERVING_MODELS:
        node = nodes[f"model.lifecycle.{model}"]
        assert node["schema"] == "serving_next"
        assert node["config"]["contract"]["enforced"] is True
        assert all(c.get("data_type") for c in node["columns"].values()), model
    assert nodes["model.lifecycle.stg_sales__orders"]["schema"] == "staging"
    # dbt's layering: staging models are the only users of source(), one source each
    for uid, node in nodes.items():
        if node["resource_type"] != "model":
            continue
        sources = [d for d in node["depends_on"]["nodes"] if d.startswith("source.")]
        if node["name"].startswith("stg_"):
            assert len(sources) == 1 and node["schema"] == "staging", uid
        else:
            assert sources == [], f"{uid} reads a source; only staging models may"
    assert len(manifest["unit_tests"]) == 5
    for model in INCREMENTAL:
        config = nodes[f"model.lifecycle.{model}"]["config"]
        assert config["materialized"] == "incremental" and config["unique_key"], model

    af_home = tmp_path / "airflow"
    af_home.mkdir()
    env.update({
        "AIRFLOW_HOME": str(af_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__COSMOS__CACHE_DIR": str(tmp_path / "cosmos"),
        "LIFECYCLE_DBT_MANIFEST": str(target / "manifest.json"),
    })
    script = f"""
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(REPO_ROOT / "dags" / "dbt_build.py")!r})
dag = bag.dags.get("dbt_build")
print("RESULT" + json.dumps({{
    "errors": {{k: str(v) for k, v in bag.import_errors.items()}},
    "task_ids": sorted(dag.task_ids) if dag else [],
    "schedule": [a.name for a in dag.schedule] if dag else [],
    "outlets": [o.name for o in dag.get_task("models_built").outlets] if dag else [],
    "tags": sorted(dag.tags) if dag else [],
    "owner": dag.owner if dag else None,
    "catchup": dag.catchup if dag else None,
    "max_active_runs": dag.max_active_runs if dag else None,
    "retries": dag.get_task("dbt.daily_sales_model_build").retries if dag else None,
    "emit_datasets": dag.get_task("dbt.daily_sales_model_build").emit_datasets if dag else None,
    "alerts": all(t.on_failure_callback for t in dag.tasks) if dag else None,
}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=180, cwd=REPO_ROOT)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT")), None)
    assert line, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(line[len("RESULT"):])
    assert out["errors"] == {}
    task_ids = set(out["task_ids"])
    for model in MODELS:
        assert f"dbt.{model}_model_build" in task_ids, model  # model + its tests, one task
    assert any(t.startswith("dbt.relationships_stg_sales__order_items_order_id") for t in task_ids)
    assert "models_built" in task_ids
    assert out["schedule"] == ["warehouse_landing"]
    assert out["outlets"] == ["warehouse_models"]
    assert out["tags"] == ["dbt", "lifecycle", "stage:transformation"]
    assert out["owner"] == "data-platform"
    assert out["catchup"] is False and out["max_active_runs"] == 1
    assert out["retries"] >= 1
    assert out["alerts"] is True
    assert out["emit_datasets"] is False
