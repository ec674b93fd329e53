"""Serving: the publish step, the read-only BI role, the dashboard in a real browser, Metabase's SQL.

A fresh warehouse gets hand-written marts and ``serving_next`` tables (known numbers), then
``serve_publish``'s two steps run as the DAG runs them (``recommend.run``, ``publish.run``).

- ``bi_reader`` (logged in as itself) reads every ``serving`` table and is refused
  everywhere else: landing, marts, the sales database, writes and DDL in ``serving``.
- The static dashboard, rendered by headless Chromium (the Debian package, driven by
  Playwright; ``make browser`` installs it, CI runs it), shows four charts whose bars carry
  exactly the published numbers, scaled to them, with no network request at all.
- Every card of the provisioned Metabase dashboard (``infra/metabase/dashboard.json``) runs
  as ``bi_reader`` on the published tables, returns the columns its chart uses, and the
  numbers of the serving tables.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest
from conftest import reset_environment, tool_missing

from lifecycle.clients import pg
from lifecycle.serve import publish, recommend

# Debian's package by default; LIFECYCLE_CHROMIUM elsewhere (e.g. macOS, README "macOS and Linux")
CHROMIUM = Path(os.environ.get("LIFECYCLE_CHROMIUM") or "/usr/bin/chromium")

DAILY = [(date(2026, 5, 1), 3, 7, Decimal("120.50"), 3), (date(2026, 5, 2), 2, 4, Decimal("80.25"), 2),
         (date(2026, 5, 3), 4, 9, Decimal("310.00"), 4)]
FUNNEL = [(date(2026, 5, 1), 40, 12, 5, 3, 20, Decimal("0.1500")),
          (date(2026, 5, 2), 30, 8, 3, 2, 16, Decimal("0.1250")),
          (date(2026, 5, 3), 50, 15, 6, 4, 25, Decimal("0.1600"))]
PRODUCTS = [  # id, name, category, units, revenue, views, carts, purchases, avg_rating, reviews
    (1, "Tent", "outdoor", 5, Decimal("250.00"), 30, 8, 4, Decimal("4.50"), 2),
    (2, "Sleeping Bag", "outdoor", 4, Decimal("120.00"), 25, 6, 3, Decimal("4.00"), 1),
    (3, "Lantern", "outdoor", 3, Decimal("45.00"), 20, 5, 3, None, 0),
    (4, "Novel", "books", 6, Decimal("60.00"), 15, 4, 5, Decimal("3.25"), 4),
    (5, "Cookbook", "books", 2, Decimal("35.75"), 10, 2, 2, Decimal("2.00"), 1),
    (6, "Atlas", "books", 0, Decimal("0.00"), 5, 0, 0, None, 0),
]
# orders of the marts: outdoor products together, books together, one mixed order
ORDER_LINES = [(o, p) for o, ps in enumerate([(1, 2, 3), (1, 2), (2, 3), (1, 3), (4, 5, 6), (4, 5), (5, 6),
                                               (4, 6), (3, 4), (1, 2, 3), (4, 5, 6)], start=1) for p in ps]

SERVING_DDL = """
CREATE SCHEMA marts;
CREATE TABLE marts.fct_order_items (order_id bigint, product_id bigint);
CREATE TABLE marts.fct_events (session_id varchar, product_id bigint, event_type varchar);
CREATE SCHEMA IF NOT EXISTS landing;  -- `lifecycle infra apply` creates it for the loader role
CREATE TABLE landing.bi_probe (order_id bigint);  -- not a loader table: later tests load those
INSERT INTO landing.bi_probe VALUES (1);
CREATE SCHEMA serving_next;
CREATE TABLE serving_next.daily_sales (order_date date, orders bigint, items bigint,
    revenue numeric(14,2), customers bigint);
CREATE TABLE serving_next.funnel_daily (event_date date, page_views bigint, add_to_carts bigint,
    checkouts bigint, purchases bigint, sessions bigint, conversion_rate numeric(8,4));
CREATE TABLE serving_next.product_performance (product_id bigint, name varchar, category varchar,
    units_sold bigint, revenue numeric(14,2), views bigint, add_to_carts bigint, purchases bigint,
    avg_rating numeric(4,2), review_count bigint);
"""


@pytest.fixture(scope="module")
def served(settings):
    """A published serving schema with known numbers, as serve_publish leaves it."""
    from lifecycle.sources.sales_db import ensure_schema

    reset_environment(settings)
    ensure_schema(settings)
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute(SERVING_DDL)
        cur.executemany("INSERT INTO serving_next.daily_sales VALUES (%s, %s, %s, %s, %s)", DAILY)
        cur.executemany("INSERT INTO serving_next.funnel_daily VALUES (%s, %s, %s, %s, %s, %s, %s)", FUNNEL)
        cur.executemany("INSERT INTO serving_next.product_performance VALUES "
                        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", PRODUCTS)
        cur.executemany("INSERT INTO marts.fct_order_items VALUES (%s, %s)", ORDER_LINES)
    rec = recommend.run(settings)
    out = publish.run(settings)
    assert out["swapped"] and rec["products"] == 6
    assert out["tables"] == {"daily_sales": 3, "funnel_daily": 3, "product_embeddings": 6,
                             "product_performance": 6, "product_recommendations": 6 * recommend.TOP_K}
    return out


def _as_reader(settings, database: str | None = None):
    conn = psycopg2.connect(host=settings.pg.host, port=settings.pg.port, user=settings.pg.bi_reader_user,
                            dbname=database or settings.pg.warehouse_db, connect_timeout=10)
    conn.autocommit = True
    return conn


# ---- bi_reader ------------------------------------------------------------------------------------


def test_bi_reader_reads_every_serving_table(settings, served):
    conn = _as_reader(settings)
    try:
        with conn.cursor() as cur:
            for table, n in served["tables"].items():
                cur.execute(f"SELECT count(*) FROM serving.{table}")
                assert cur.fetchone()[0] == n, table
            cur.execute("SELECT embedding FROM serving.product_embeddings LIMIT 1")
            assert cur.fetchone()[0].startswith("[")
    finally:
        conn.close()


@pytest.mark.parametrize("statement", [
    "SELECT * FROM landing.bi_probe",
    "SELECT * FROM marts.fct_order_items",
    "INSERT INTO serving.daily_sales VALUES ('2026-01-01', 1, 1, 1, 1)",
    "DELETE FROM serving.daily_sales",
    "CREATE TABLE serving.mine (x int)",
    "CREATE TABLE public.mine (x int)",
    "DROP TABLE serving.daily_sales",
    "CREATE SCHEMA mine",
])
def test_bi_reader_is_refused_everywhere_else(settings, served, statement):
    conn = _as_reader(settings)
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.Error) as err:
            cur.execute(statement)
        assert err.value.pgcode in ("42501", "25006"), err.value  # insufficient privilege / read-only
    finally:
        conn.close()


def test_bi_reader_cannot_read_the_sales_database(settings, served):
    try:
        conn = _as_reader(settings, settings.pg.sales_db)
    except psycopg2.OperationalError as refused:  # not even allowed to connect (and not down)
        assert "permission denied for database" in str(refused), refused
        return
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.Error) as err:
            cur.execute("SELECT * FROM public.orders")
        assert err.value.pgcode == "42501"
    finally:
        conn.close()


# ---- the dashboard in headless Chromium -----------------------------------------------------------


@pytest.fixture(scope="module")
def page(settings, served):
    if not CHROMIUM.exists():
        tool_missing(f"Chromium is not installed at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    assert settings.dashboard_path.exists()
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            pg_ = browser.new_page(viewport={"width": 1600, "height": 1200})
            pg_.on("request", lambda r: requests.append(r.url))
            pg_.goto(settings.dashboard_path.as_uri())
            pg_.wait_for_load_state("load")
            yield {"page": pg_, "requests": requests}
        finally:
            browser.close()


def _bars(page, chart_id: str) -> list[dict]:
    return page.eval_on_selector_all(
        f"#{chart_id} rect.bar",
        "els => els.map(e => ({label: e.dataset.label, value: e.dataset.value, "
        "height: e.getBoundingClientRect().height, width: e.getBoundingClientRect().width}))")


def test_dashboard_has_four_visible_charts_and_needs_no_network(page):
    p = page["page"]
    ids = p.eval_on_selector_all("figure.chart", "els => els.map(e => e.id)")
    assert ids == ["chart-daily-revenue", "chart-top-products", "chart-funnel", "chart-review-scores"]
    for chart_id in ids:
        box = p.locator(f"#{chart_id} svg").bounding_box()
        assert box and box["width"] > 300 and box["height"] > 50, chart_id
        assert p.locator(f"#{chart_id} svg").is_visible()
    assert [u for u in page["requests"] if not u.startswith("file://")] == []
    assert p.locator("script").count() == 0


def test_daily_revenue_chart_shows_the_published_revenue(page):
    bars = _bars(page["page"], "chart-daily-revenue")
    assert [(b["label"], Decimal(b["value"])) for b in bars] == [(str(d), rev) for d, _, _, rev, _ in DAILY]
    # heights are proportional to the values
    top = max(b["height"] for b in bars)
    for b, (_, _, _, rev, _) in zip(bars, DAILY, strict=True):
        assert b["height"] / top == pytest.approx(float(rev) / 310.0, rel=0.02)
    text = page["page"].locator("#chart-daily-revenue").inner_text()
    assert "310.00" in text and "120.50" in text and "total 510.75" in text


def test_top_products_chart_ranks_by_revenue(page):
    bars = _bars(page["page"], "chart-top-products")
    expected = sorted(PRODUCTS, key=lambda r: (-r[4], r[0]))
    assert [b["label"] for b in bars] == [f"{r[0]} · {r[1]}" for r in expected]
    assert [Decimal(b["value"]) for b in bars] == [r[4] for r in expected]
    widths = [b["width"] for b in bars]
    assert widths == sorted(widths, reverse=True) and widths[0] > 0


def test_funnel_chart_shows_the_totals_of_each_step(page):
    bars = _bars(page["page"], "chart-funnel")
    totals = [sum(r[i] for r in FUNNEL) for i in (1, 2, 3, 4)]
    assert [b["label"] for b in bars] == ["page views", "add to carts", "checkouts", "purchases"]
    assert [int(b["value"]) for b in bars] == totals == [120, 35, 14, 9]
    text = page["page"].locator("#chart-funnel").inner_text()
    assert "29.17 % of previous" in text  # 35 / 120
    assert "2026-05-02: 12.50 %" in text  # the daily conversion rate (purchases per session)


def test_review_scores_chart_shows_the_average_ratings(page):
    bars = _bars(page["page"], "chart-review-scores")
    rated = sorted((r for r in PRODUCTS if r[9]), key=lambda r: (-r[8], -r[9], r[0]))
    assert [(b["label"], Decimal(b["value"])) for b in bars] == [(f"{r[0]} · {r[1]}", r[8]) for r in rated]
    text = page["page"].locator("#chart-review-scores").inner_text()
    assert "4.50" in text and "(4 reviews)" in text and "(1 review)" in text


def test_dashboard_is_also_in_the_serving_bucket(settings, served):
    from lifecycle.clients import aws

    body = aws(settings, "s3").get_object(Bucket=settings.names.bucket("serving"), Key="dashboard/index.html")["Body"]
    assert body.read().decode() == settings.dashboard_path.read_text()


def test_chromium_is_where_make_browser_puts_it():
    """CI installs it (`make browser` in .ci/run); locally the dashboard tests skip without it
    (under CI=true they fail instead, conftest.tool_missing)."""
    if shutil.which("apt-get") and CHROMIUM.exists():
        assert CHROMIUM.stat().st_mode & 0o111


# ---- the Metabase dashboard's SQL, as bi_reader -----------------------------------------------------


def _spec() -> dict:
    from lifecycle.serve.metabase import load_spec

    return load_spec()


def _run_card(settings, sql: str) -> tuple[list[str], list[tuple]]:
    conn = _as_reader(settings)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return [d[0] for d in cur.description], cur.fetchall()
    finally:
        conn.close()


def test_every_metabase_card_runs_as_bi_reader_with_the_columns_its_chart_uses(settings, served):
    spec = _spec()
    assert {c["key"] for c in spec["cards"]} >= {"daily_revenue", "top_products", "funnel_conversion",
                                                  "review_scores"}
    for card in spec["cards"]:
        cols, rows = _run_card(settings, card["sql"])
        assert rows, card["key"]
        viz = card.get("visualization_settings", {})
        used = set(viz.get("graph.dimensions", [])) | set(viz.get("graph.metrics", []))
        used |= {viz[k] for k in ("funnel.dimension", "funnel.metric") if k in viz}
        assert used and used <= set(cols), (card["key"], used, cols)


def test_metabase_cards_show_the_serving_numbers(settings, served):
    cards = {c["key"]: c for c in _spec()["cards"]}
    _, rows = _run_card(settings, cards["daily_revenue"]["sql"])
    assert [(r[0], r[1]) for r in rows] == [(d, rev) for d, _, _, rev, _ in DAILY]
    _, rows = _run_card(settings, cards["top_products"]["sql"])
    assert [r[1] for r in rows][:3] == [Decimal("250.00"), Decimal("120.00"), Decimal("60.00")]
    cols, rows = _run_card(settings, cards["funnel_conversion"]["sql"])
    assert [(r[0], int(r[1])) for r in rows] == [("page views", 120), ("add to carts", 35),
                                                 ("checkouts", 14), ("purchases", 9)]
    _, rows = _run_card(settings, cards["review_scores"]["sql"])
    assert [(r[0], r[1], r[2]) for r in rows] == [("Tent", Decimal("4.50"), 2), ("Sleeping Bag", Decimal("4.00"), 1),
                                                  ("Novel", Decimal("3.25"), 4), ("Cookbook", Decimal("2.00"), 1)]


def test_metabase_spec_layout_fits_the_grid_without_overlaps():
    cells = set()
    for card in _spec()["cards"]:
        lay = card["layout"]
        assert 0 <= lay["col"] and lay["col"] + lay["size_x"] <= 24, card["key"]
        for r in range(lay["row"], lay["row"] + lay["size_y"]):
            for c in range(lay["col"], lay["col"] + lay["size_x"]):
                assert (r, c) not in cells, f"{card['key']} overlaps at {(r, c)}"
                cells.add((r, c))
    assert json.dumps(_spec())  # plain JSON
