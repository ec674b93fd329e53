"""Publish the serving layer: atomic schema swap, then the static dashboard.

Input: ``Settings``; schema ``serving_next`` in ``warehouse``, freshly built by dbt.
Output: schema ``serving`` replaced by ``serving_next`` in one transaction (readers see the
old tables or the new ones, never a half-built table; ``bi_reader`` keeps its grants), a
self-contained HTML dashboard at ``settings.dashboard_path`` and in the serving bucket
(``dashboard/index.html``), and row counts per serving table.

Rerunning after a publish finds no ``serving_next`` and changes nothing.
"""

from __future__ import annotations

import html
from decimal import Decimal

from lifecycle.clients import aws, pg
from lifecycle.settings import Settings

NEXT, LIVE, OLD = "serving_next", "serving", "serving_previous"
READER_ROLE = "bi_reader"


def _schema_exists(cur, name: str) -> bool:
    cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,))
    return cur.fetchone() is not None


def swap(settings: Settings) -> bool:
    """Swap ``serving_next`` in as ``serving``. Returns False when there is nothing to publish."""
    with pg(settings, settings.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('lifecycle.serve_publish'))")
        if not _schema_exists(cur, NEXT):
            return False
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER_ROLE,))
        if not cur.fetchone():
            cur.execute(f"CREATE ROLE {READER_ROLE} NOLOGIN")
        cur.execute(f"DROP SCHEMA IF EXISTS {OLD} CASCADE")
        if _schema_exists(cur, LIVE):
            cur.execute(f"ALTER SCHEMA {LIVE} RENAME TO {OLD}")
        cur.execute(f"ALTER SCHEMA {NEXT} RENAME TO {LIVE}")
        cur.execute(f"GRANT USAGE ON SCHEMA {LIVE} TO {READER_ROLE}")
        cur.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {LIVE} TO {READER_ROLE}")
        cur.execute(f"DROP SCHEMA IF EXISTS {OLD} CASCADE")
    return True


def serving_counts(settings: Settings) -> dict[str, int]:
    with pg(settings, settings.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                    "ORDER BY table_name", (LIVE,))
        tables = [r[0] for r in cur.fetchall()]
        counts = {}
        for t in tables:
            cur.execute(f'SELECT count(*) FROM {LIVE}."{t}"')
            counts[t] = cur.fetchone()[0]
    return counts


def _query(settings: Settings, sql: str) -> tuple[list[str], list[tuple]]:
    with pg(settings, settings.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()


def _table_html(cols: list[str], rows: list[tuple]) -> str:
    def cell(v):
        if isinstance(v, Decimal | float):
            return f"{v:,.2f}"
        return html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bars_svg(labels: list[str], values: list[float], title: str) -> str:
    if not values:
        return f"<p>No data for {html.escape(title)} yet.</p>"
    w, h, pad = 640, 220, 30
    top = max(values) or 1
    bw = (w - 2 * pad) / len(values)
    bars = []
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        bh = (h - 2 * pad) * v / top
        x, y = pad + i * bw, h - pad - bh
        bars.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw * 0.8:.1f}" height="{bh:.1f}" fill="#3b82f6">'
                    f"<title>{html.escape(lab)}: {v:,.2f}</title></rect>")
        bars.append(f'<text x="{x:.1f}" y="{h - 10}" font-size="10">{html.escape(lab[-5:])}</text>')
    return (f'<svg role="img" aria-label="{html.escape(title)}" width="{w}" height="{h}">'
            + "".join(bars) + "</svg>")


def render_dashboard(settings: Settings) -> str:
    ds_cols, ds = _query(settings, f"SELECT * FROM {LIVE}.daily_sales ORDER BY order_date")
    fn_cols, fn = _query(settings, f"SELECT * FROM {LIVE}.funnel_daily ORDER BY event_date")
    pp_cols, pp = _query(settings, f"SELECT * FROM {LIVE}.product_performance ORDER BY revenue DESC LIMIT 10")
    rev_idx = ds_cols.index("revenue")
    chart = _bars_svg([str(r[0]) for r in ds], [float(r[rev_idx]) for r in ds], "Revenue per day")
    style = ("body{font-family:system-ui,sans-serif;margin:2rem;color:#111}"
             "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ddd;padding:4px 8px;"
             "text-align:right}th{background:#f3f4f6}h2{margin-top:2rem}")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Sales platform dashboard</title>"
        f"<style>{style}</style></head><body><h1>Sales platform</h1>"
        "<p>Built from the <code>serving</code> schema of the warehouse by <code>serve_publish</code>.</p>"
        f"<h2>Daily sales</h2>{chart}{_table_html(ds_cols, ds)}"
        f"<h2>Funnel</h2>{_table_html(fn_cols, fn)}"
        f"<h2>Top products by revenue</h2>{_table_html(pp_cols, pp)}"
        "<p><a href='observability.html'>Data observability: monitors, alerts and trends</a></p>"
        "</body></html>"
    )


def publish_dashboard(settings: Settings) -> dict:
    page = render_dashboard(settings)
    settings.dashboard_path.parent.mkdir(parents=True, exist_ok=True)
    settings.dashboard_path.write_text(page)
    key = "dashboard/index.html"
    aws(settings, "s3").put_object(Bucket=settings.bucket("serving"), Key=key, Body=page.encode(),
                                   ContentType="text/html")
    return {"dashboard_file": str(settings.dashboard_path), "dashboard_s3": f"s3://{settings.bucket('serving')}/{key}"}


def run(settings: Settings) -> dict:
    swapped = swap(settings)
    counts = serving_counts(settings)
    out = {"swapped": swapped, "tables": counts, "rows_out": sum(counts.values())}
    if {"daily_sales", "funnel_daily", "product_performance"} <= counts.keys():
        out.update(publish_dashboard(settings))
    return out
