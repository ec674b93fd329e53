"""The static HTML dashboard: four charts and their tables, from the published ``serving`` schema.

Input: ``Settings``; the tables of schema ``serving`` in ``warehouse`` (``daily_sales``,
``funnel_daily``, ``product_performance`` and, when present, ``product_recommendations``).
Output: one self-contained HTML page (a string): inline SVG charts, no script, no CDN, no
network, so it opens from a file or an S3 bucket and renders the same anywhere:

- ``chart-daily-revenue``: revenue per order date (bars);
- ``chart-top-products``: the 10 products with the most revenue (horizontal bars);
- ``chart-funnel``: page views → add-to-carts → checkouts → purchases over every date, with
  each step's conversion from the previous one and the daily conversion rate;
- ``chart-review-scores``: average rating (0–5) of the products with reviews, with counts.

Every chart is a ``<figure class="chart" id=...>`` and every bar a ``<rect class="bar">`` that
carries ``data-label`` and ``data-value`` (the exact published number) and a visible value
label, so a browser test (and a reader) can check the page shows what was published.
"""

from __future__ import annotations

import html
from decimal import Decimal

from lifecycle.clients import pg
from lifecycle.settings import Settings

LIVE = "serving"
COLOURS = {"revenue": "#2563eb", "products": "#0d9488", "funnel": "#7c3aed", "reviews": "#d97706"}


def _query(settings: Settings, sql: str) -> tuple[list[str], list[tuple]]:
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()


def _exists(settings: Settings, table: str) -> bool:
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f"{LIVE}.{table}",))
        return cur.fetchone()[0] is not None


def fmt(v) -> str:
    """How the page prints a value: numbers with thousands separators (decimals at their scale)."""
    if isinstance(v, Decimal):
        return f"{v:,}"  # the column's own scale: 120.50, 0.1250
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def _esc(v) -> str:
    return html.escape(str(v), quote=True)


def table_html(cols: list[str], rows: list[tuple]) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_esc(fmt(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(chart_id: str, title: str, svg: str, note: str = "") -> str:
    caption = f"<figcaption>{_esc(title)}{(' — ' + _esc(note)) if note else ''}</figcaption>"
    return f'<figure class="chart" id="{chart_id}">{caption}{svg}</figure>'


def _empty(chart_id: str, title: str) -> str:
    return _figure(chart_id, title, f'<p class="empty">No data for {_esc(title.lower())} yet.</p>')


def column_chart(chart_id: str, title: str, labels: list[str], values: list, colour: str,
                 note: str = "") -> str:
    """Vertical bars, one per label (e.g. per day)."""
    if not values:
        return _empty(chart_id, title)
    w, h, left, bottom, top_pad = 720, 260, 16, 36, 24
    top = max(float(v) for v in values) or 1.0
    slot = (w - 2 * left) / len(values)
    bw = max(min(slot * 0.7, 80), 2)
    parts = [f'<line x1="{left}" y1="{h - bottom}" x2="{w - left}" y2="{h - bottom}" stroke="#9ca3af"/>']
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        bh = (h - bottom - top_pad) * float(v) / top
        x = left + i * slot + (slot - bw) / 2
        y = h - bottom - bh
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{bh:.1f}" fill="{colour}" '
            f'data-label="{_esc(lab)}" data-value="{_esc(v)}"><title>{_esc(lab)}: {_esc(fmt(v))}</title></rect>')
        if len(values) <= 31:
            parts.append(f'<text class="value" x="{x + bw / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                         f'font-size="11">{_esc(fmt(v))}</text>')
        if len(values) <= 14 or i % max(len(values) // 14, 1) == 0:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{h - bottom + 16}" text-anchor="middle" '
                         f'font-size="11">{_esc(lab)}</text>')
    svg = (f'<svg role="img" aria-label="{_esc(title)}" viewBox="0 0 {w} {h}" width="{w}" height="{h}">'
           + "".join(parts) + "</svg>")
    return _figure(chart_id, title, svg, note)


def bar_chart(chart_id: str, title: str, labels: list[str], values: list, colour: str,
              scale_max: float | None = None, note: str = "", extra: list[str] | None = None) -> str:
    """Horizontal bars, one row per label (e.g. per product), the value printed at the end."""
    if not values:
        return _empty(chart_id, title)
    label_w, w, row_h = 260, 720, 26
    h = row_h * len(values) + 10
    top = scale_max or max(float(v) for v in values) or 1.0
    span = w - label_w - 110
    parts = []
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        y = 5 + i * row_h
        bw = span * float(v) / top
        suffix = f" {extra[i]}" if extra else ""
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="12">{_esc(lab)}</text>')
        parts.append(
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{bw:.1f}" height="{row_h - 8}" fill="{colour}" '
            f'data-label="{_esc(lab)}" data-value="{_esc(v)}"><title>{_esc(lab)}: {_esc(fmt(v))}</title></rect>')
        parts.append(f'<text class="value" x="{label_w + bw + 6:.1f}" y="{y + 16}" font-size="12">'
                     f'{_esc(fmt(v))}{_esc(suffix)}</text>')
    svg = (f'<svg role="img" aria-label="{_esc(title)}" viewBox="0 0 {w} {h}" width="{w}" height="{h}">'
           + "".join(parts) + "</svg>")
    return _figure(chart_id, title, svg, note)


def render(settings: Settings) -> str:
    """The dashboard page for what ``serving`` holds now."""
    ds_cols, ds = _query(settings, f"SELECT * FROM {LIVE}.daily_sales ORDER BY order_date")
    fn_cols, fn = _query(settings, f"SELECT * FROM {LIVE}.funnel_daily ORDER BY event_date")
    pp_cols, pp = _query(settings, f"SELECT * FROM {LIVE}.product_performance "
                                   "ORDER BY revenue DESC, product_id LIMIT 10")
    _, rated = _query(settings, f"SELECT product_id, name, avg_rating, review_count "
                                f"FROM {LIVE}.product_performance WHERE review_count > 0 "
                                "ORDER BY avg_rating DESC, review_count DESC, product_id LIMIT 15")
    _, funnel_total = _query(settings, f"SELECT coalesce(sum(page_views), 0), coalesce(sum(add_to_carts), 0), "
                                       f"coalesce(sum(checkouts), 0), coalesce(sum(purchases), 0) "
                                       f"FROM {LIVE}.funnel_daily")

    rev = ds_cols.index("revenue")
    charts = [column_chart("chart-daily-revenue", "Daily revenue", [str(r[0]) for r in ds],
                           [r[rev] for r in ds], COLOURS["revenue"],
                           note=f"total {fmt(sum((r[rev] for r in ds), Decimal(0)))}")]
    pp_rev, pp_name = pp_cols.index("revenue"), pp_cols.index("name")
    charts.append(bar_chart("chart-top-products", "Top products by revenue",
                            [f"{r[0]} · {r[pp_name]}" for r in pp], [r[pp_rev] for r in pp],
                            COLOURS["products"]))
    steps = ["page views", "add to carts", "checkouts", "purchases"]
    totals = [int(v) for v in funnel_total[0]]
    conv = [""] + [f"({b / a * 100:.2f} % of previous)" if a else "" for a, b in
                   zip(totals, totals[1:], strict=False)]
    rate_idx = fn_cols.index("conversion_rate")
    rates = ", ".join(f"{r[0]}: {r[rate_idx] * 100:.2f} %" for r in fn if r[rate_idx] is not None)
    charts.append(bar_chart("chart-funnel", "Funnel conversion", steps, totals if any(totals) else [],
                            COLOURS["funnel"], extra=conv,
                            note=f"purchases per session by day: {rates}" if rates else ""))
    charts.append(bar_chart("chart-review-scores", "Review scores (average rating, 0–5)",
                            [f"{r[0]} · {r[1]}" for r in rated], [r[2] for r in rated], COLOURS["reviews"],
                            scale_max=5, extra=[f"({r[3]} review{'s' if r[3] != 1 else ''})" for r in rated]))

    recs = ""
    if _exists(settings, "product_recommendations"):
        rc_cols, rc = _query(settings, f"""
            SELECT r.product_id, p.name AS product, r.rank, r.recommended_product_id, q.name AS recommended,
                   r.score
            FROM {LIVE}.product_recommendations r
            JOIN {LIVE}.product_performance p ON p.product_id = r.product_id
            JOIN {LIVE}.product_performance q ON q.product_id = r.recommended_product_id
            WHERE r.product_id IN (SELECT product_id FROM {LIVE}.product_performance
                                   ORDER BY revenue DESC, product_id LIMIT 5) AND r.rank <= 3
            ORDER BY p.revenue DESC, r.product_id, r.rank""")
        recs = ("<h2>Similar products (top sellers)</h2><p>From the pgvector index of product embeddings "
                "learnt from co-purchase and co-view behaviour; score = cosine similarity. "
                "<code>lifecycle recommend &lt;product_id&gt;</code> for any product.</p>"
                + table_html(rc_cols, rc))

    style = ("body{font-family:system-ui,sans-serif;margin:2rem;color:#111;max-width:1200px}"
             ".charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(740px,1fr));gap:1.5rem}"
             "figure.chart{margin:0;border:1px solid #e5e7eb;border-radius:8px;padding:1rem}"
             "figcaption{font-weight:600;margin-bottom:.5rem}svg{max-width:100%;height:auto}"
             "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ddd;padding:4px 8px;"
             "text-align:right}th{background:#f3f4f6}h2{margin-top:2rem}.empty{color:#6b7280}")
    latest = f"data up to {ds[-1][0]}" if ds else "no sales yet"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Sales platform dashboard</title><style>{style}</style></head><body>"
        "<h1>Sales platform</h1>"
        f"<p>Built from the <code>serving</code> schema of the warehouse by <code>serve_publish</code> "
        f"({latest}). No scripts, no network: every chart is inline SVG.</p>"
        f"<section class='charts'>{''.join(charts)}</section>"
        f"<h2>Daily sales</h2>{table_html(ds_cols, ds)}"
        f"<h2>Funnel</h2>{table_html(fn_cols, fn)}"
        f"<h2>Top products by revenue</h2>{table_html(pp_cols, pp)}"
        f"{recs}"
        "<p><a href='observability.html'>Data observability: monitors, alerts and trends</a></p>"
        "</body></html>"
    )
