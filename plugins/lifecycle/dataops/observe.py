"""Data observability: profile lake and warehouse tables per interval, run the monitors, keep history, alert.

Input: ``Settings`` and a data interval ``[start, end)``; the clean zone (Parquet on S3,
read with DuckDB) and the warehouse (Postgres) tables listed in ``DATASETS``.
Output:
- ``observability.profiles``: one row per (dataset, interval): rows, bytes, newest record,
  freshness, completeness, columns and types, null rates, value shares / means;
- ``observability.results``: one row per (dataset, interval, monitor, subject) with status
  ``ok`` / ``alert`` / ``skipped``, value, expectation and a sentence;
- CloudWatch metrics (DAG ``observe``, task ``monitor_datasets``, one ``Dataset`` each):
  ``DatasetRows``, ``BytesStored``, ``FreshnessSeconds``, ``Completeness``, ``MonitorAlerts``;
- one SNS ``data_quality`` alert per interval listing every failed monitor (deduplicated:
  a rerun of the same interval with the same findings does not alert again);
- the page ``observability.html`` (``render_page``), next to the dashboard.
Rerunning an interval replaces its profiles and results (idempotent by interval). The
monitors compare an interval with the intervals *before* it only.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from lifecycle.clients import pg
from lifecycle.dataops import monitors
from lifecycle.settings import Settings

DAG_ID, TASK_ID = "observe", "monitor_datasets"
DAY = 86400


@dataclass(frozen=True)
class Dataset:
    name: str  # lake.<table> | warehouse.<schema>.<table>
    table: str  # clean table name, or schema.table in the warehouse
    day_column: str | None = None  # the interval's rows: this date column in [start, end)
    ts_column: str | None = None  # freshness: newest value before the interval's end
    max_age_s: float | None = None
    required: tuple[str, ...] = ()
    nullable: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    mirrors: str | None = None  # completeness: the upstream dataset this one copies
    extra: dict = field(default_factory=dict)

    @property
    def layer(self) -> str:
        return self.name.split(".", 1)[0]


DATASETS: tuple[Dataset, ...] = (
    Dataset("lake.orders", "orders", "order_date", "order_ts", 26 * 3600,
            required=("order_id", "customer_id", "status", "order_ts"), categorical=("status",)),
    Dataset("lake.order_items", "order_items", "order_date",
            required=("order_id", "line_no", "product_id", "quantity", "unit_price"),
            numeric=("quantity", "unit_price")),
    Dataset("lake.events", "events", "event_date", "event_ts", 26 * 3600,
            required=("event_id", "event_type", "event_ts"), nullable=("customer_id", "product_id"),
            categorical=("event_type",)),
    Dataset("lake.products", "products", None, "updated_at", 3 * DAY,
            required=("product_id", "sku", "unit_price"), categorical=("category",)),
    Dataset("warehouse.landing.orders", "landing.orders", "order_date", "order_ts", 26 * 3600,
            required=("order_id", "status"), mirrors="lake.orders"),
    Dataset("warehouse.landing.events", "landing.events", "event_date", "event_ts", 26 * 3600,
            required=("event_id", "event_type"), categorical=("event_type",), mirrors="lake.events"),
    Dataset("warehouse.serving.daily_sales", "serving.daily_sales", "order_date",
            required=("orders", "revenue"), numeric=("revenue",)),
)


# ---- profiling ---------------------------------------------------------------------------

def _days(start: datetime, end: datetime) -> tuple[date, date]:
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    return first, max(last, first + timedelta(days=1))


def _profile(query, relation: str, ds: Dataset, columns: dict[str, str], start: datetime,
             end: datetime, num_cast: str) -> dict:
    """Rows, null rates, shares, means and newest record of ``relation`` for the interval."""
    first, last = _days(start, end)
    where = (f"WHERE {ds.day_column} >= DATE '{first}' AND {ds.day_column} < DATE '{last}'"
             if ds.day_column and ds.day_column in columns else "")
    watched = [c for c in (*ds.required, *ds.nullable) if c in columns]
    numeric = [c for c in ds.numeric if c in columns]
    parts = ["count(*)"] + [f"count({c})" for c in watched] + [f"avg(CAST({c} AS {num_cast}))" for c in numeric]
    row = query(f"SELECT {', '.join(parts)} FROM {relation} {where}")[0]
    rows = int(row[0])
    nulls = {c: (1 - row[1 + i] / rows) if rows else None for i, c in enumerate(watched)}
    means = {c: (float(row[1 + len(watched) + i]) if row[1 + len(watched) + i] is not None else None)
             for i, c in enumerate(numeric)}
    shares = {}
    for c in (c for c in ds.categorical if c in columns):
        counts = query(f"SELECT CAST({c} AS VARCHAR), count(*) FROM {relation} {where} GROUP BY 1")
        shares[c] = {str(k): n / rows for k, n in counts} if rows else {}
    newest = None
    if ds.ts_column and ds.ts_column in columns:
        end_lit = end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        newest = query(f"SELECT max({ds.ts_column}) FROM {relation} "
                       f"WHERE {ds.ts_column} < TIMESTAMPTZ '{end_lit}+00'")[0][0]
    return {"rows": rows, "null_rates": nulls, "means": means, "shares": shares, "newest": newest}


def profile_lake(settings: Settings, con, ds: Dataset, start: datetime, end: datetime) -> dict | None:
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import lake_table

    spec = lake_table(ds.table)
    files = iceberg.data_file_entries(iceberg.load_table(settings, spec))
    if not files:
        return None
    relation = iceberg.scan_sql(settings, spec)
    columns = {name: str(typ) for name, typ, *_ in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    out = _profile(lambda sql: con.execute(sql).fetchall(), relation, ds, columns, start, end, "DOUBLE")
    if ds.day_column:
        first, last = _days(start, end)
        days = {(first + timedelta(days=i)).isoformat() for i in range((last - first).days)}
        nbytes = sum(f.bytes for f in files if f.partition in days)
    else:
        nbytes = sum(f.bytes for f in files)
    return {**out, "columns": columns, "bytes": nbytes}


def profile_warehouse(settings: Settings, cur, ds: Dataset, start: datetime, end: datetime) -> dict | None:
    schema, table = ds.table.split(".", 1)
    cur.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s ORDER BY ordinal_position", (schema, table))
    columns = dict(cur.fetchall())
    if not columns:
        return None

    def query(sql):
        cur.execute(sql.replace("%", "%%"))
        return cur.fetchall()

    out = _profile(query, f'"{schema}"."{table}"', ds, columns, start, end, "double precision")
    cur.execute("SELECT pg_total_relation_size(%s::regclass)", (f'"{schema}"."{table}"',))
    return {**out, "columns": columns, "bytes": int(cur.fetchone()[0])}


# ---- store -------------------------------------------------------------------------------

DDL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.profiles (
    dataset text NOT NULL, interval_start timestamptz NOT NULL, interval_end timestamptz NOT NULL,
    layer text NOT NULL, row_count bigint NOT NULL, bytes bigint, newest_ts timestamptz,
    freshness_s double precision, completeness double precision, columns jsonb NOT NULL,
    null_rates jsonb NOT NULL, shares jsonb NOT NULL, means jsonb NOT NULL,
    observed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (dataset, interval_start));
CREATE TABLE IF NOT EXISTS {s}.results (
    dataset text NOT NULL, interval_start timestamptz NOT NULL, monitor text NOT NULL,
    subject text NOT NULL, status text NOT NULL CHECK (status IN ('ok', 'alert', 'skipped')),
    value double precision, expected text, detail text, observed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, interval_start, monitor, subject));
"""


def ensure_schema(settings: Settings, cur) -> None:
    cur.execute(DDL.format(s=settings.names.observability_schema))


def history(cur, settings: Settings, dataset: str, before: datetime, n: int = monitors.HISTORY) -> list[dict]:
    cur.execute(f"SELECT row_count, columns, null_rates, shares, means FROM {settings.names.observability_schema}.profiles "
                "WHERE dataset = %s AND interval_start < %s ORDER BY interval_start DESC LIMIT %s",
                (dataset, before, n))
    return [{"rows": r[0], "columns": r[1], "null_rates": r[2], "shares": r[3], "means": r[4]}
            for r in cur.fetchall()]


def evaluate(ds: Dataset, prof: dict, hist: list[dict], completeness: float | None) -> list[monitors.Result]:
    """Every monitor of one dataset for one interval (pure: profile + history in, results out)."""
    results = [
        monitors.volume(prof["rows"], [h["rows"] for h in hist]),
        monitors.schema_drift(prof["columns"], hist[0]["columns"] if hist else None),
        monitors.freshness(prof["freshness_s"], ds.max_age_s),
        monitors.completeness(completeness, ds.mirrors),
    ]
    for c in (*ds.required, *ds.nullable):
        results.append(monitors.null_rate(
            c, prof["null_rates"].get(c), [h["null_rates"][c] for h in hist if h["null_rates"].get(c) is not None],
            required=c in ds.required))
    # distributions are compared with intervals that had enough rows to have one
    big = [h for h in hist if h["rows"] >= monitors.MIN_ROWS]
    for c in ds.categorical:
        results.append(monitors.categorical_shift(
            c, prof["shares"].get(c), prof["rows"], [h["shares"][c] for h in big if h["shares"].get(c)]))
    for c in ds.numeric:
        results.append(monitors.numeric_shift(
            c, prof["means"].get(c), prof["rows"], [h["means"][c] for h in big if h["means"].get(c) is not None]))
    return results


def run(settings: Settings, start: datetime, end: datetime, datasets: tuple[Dataset, ...] = DATASETS) -> dict:
    """Profile, monitor, store, publish metrics, alert and write the page for ``[start, end)``."""
    settings = settings.for_stage("observability")  # its IAM role when stage roles are on
    from lifecycle.clients import connect_duckdb
    from lifecycle.dataops import alerts, metrics

    con = connect_duckdb(settings)
    profiles: dict[str, dict] = {}
    findings: list[dict] = []
    now = datetime.now(UTC)
    try:
        with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
            ensure_schema(settings, cur)
            sch = settings.names.observability_schema
            for ds in datasets:
                prof = (profile_lake(settings, con, ds, start, end) if ds.layer == "lake"
                        else profile_warehouse(settings, cur, ds, start, end))
                hist = history(cur, settings, ds.name, start)
                cur.execute(f"DELETE FROM {sch}.results WHERE dataset = %s AND interval_start = %s",
                            (ds.name, start))
                if prof is None:
                    status = "alert" if hist else "skipped"
                    res = [monitors.Result("exists", "*", status, None, "the table exists",
                                           "table not found" + (" (it existed before)" if hist else ""))]
                else:
                    newest = prof.pop("newest")
                    prof["freshness_s"] = max((end - newest).total_seconds(), 0.0) if newest else None
                    upstream = profiles.get(ds.mirrors) if ds.mirrors else None
                    completeness = (prof["rows"] / upstream["rows"] if upstream and upstream["rows"]
                                    else (1.0 if upstream else None))
                    prof["completeness"] = completeness
                    profiles[ds.name] = prof
                    res = evaluate(ds, prof, hist, completeness)
                    cur.execute(
                        f"INSERT INTO {sch}.profiles (dataset, interval_start, interval_end, layer, row_count, bytes, "
                        "newest_ts, freshness_s, completeness, columns, null_rates, shares, means) "
                        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (dataset, interval_start) DO UPDATE "
                        "SET interval_end=EXCLUDED.interval_end, row_count=EXCLUDED.row_count, bytes=EXCLUDED.bytes, "
                        "newest_ts=EXCLUDED.newest_ts, freshness_s=EXCLUDED.freshness_s, "
                        "completeness=EXCLUDED.completeness, columns=EXCLUDED.columns, "
                        "null_rates=EXCLUDED.null_rates, shares=EXCLUDED.shares, means=EXCLUDED.means, "
                        "observed_at=now()",
                        (ds.name, start, end, ds.layer, prof["rows"], prof["bytes"], newest, prof["freshness_s"],
                         completeness, json.dumps(prof["columns"]), json.dumps(prof["null_rates"]),
                         json.dumps(prof["shares"]), json.dumps(prof["means"])))
                for r in res:
                    cur.execute(f"INSERT INTO {sch}.results (dataset, interval_start, monitor, subject, status, "
                                "value, expected, detail) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                                (ds.name, start, r.monitor, r.subject, r.status,
                                 None if r.value is None or r.value != r.value else r.value, r.expected, r.detail))
                    if r.status == "alert":
                        findings.append({"dataset": ds.name, **r.as_dict()})
    finally:
        con.close()

    # metrics: one Dataset dimension per table
    data = []
    for ds in datasets:
        prof = profiles.get(ds.name)
        dims = metrics.dimensions(settings, DAG_ID, TASK_ID, ds.name)
        n_alerts = sum(1 for f in findings if f["dataset"] == ds.name)
        data.append({"MetricName": "MonitorAlerts", "Dimensions": dims, "Timestamp": now, "Value": n_alerts,
                     "Unit": "Count"})
        if prof is None:
            continue
        data += [{"MetricName": "DatasetRows", "Dimensions": dims, "Timestamp": now, "Value": prof["rows"],
                  "Unit": "Count"},
                 {"MetricName": "BytesStored", "Dimensions": dims, "Timestamp": now, "Value": prof["bytes"] or 0,
                  "Unit": "Bytes"}]
        if prof["freshness_s"] is not None:
            data.append({"MetricName": "FreshnessSeconds", "Dimensions": dims, "Timestamp": now,
                         "Value": prof["freshness_s"], "Unit": "Seconds"})
        if prof["completeness"] is not None:
            data.append({"MetricName": "Completeness", "Dimensions": dims, "Timestamp": now,
                         "Value": prof["completeness"], "Unit": "None"})
    metrics.put(settings, data)

    alerted = None
    interval = f"{start.isoformat()}/{end.isoformat()}"
    if findings:
        lines = [f"{f['dataset']} {f['monitor']}" + (f"({f['subject']})" if f["subject"] != "*" else "")
                 + f": {f['detail']}" for f in findings]
        alert = alerts.build_notice(
            kind="data_quality", source=", ".join(sorted({f["dataset"] for f in findings})),
            message=f"{len(findings)} monitor(s) failed for {interval}: " + " | ".join(lines),
            runbook=("Open the observability page (dashboard → Data observability) or query "
                     f"{settings.names.observability_schema}.results for the interval; volume and freshness point at "
                     "ingestion (`lifecycle logs ingest_* <task>`), schema drift at the source team; "
                     "rerun `observe` for the interval once fixed."),
            target=settings.target)
        alert.update(dag_id=DAG_ID, task_id=TASK_ID, data_interval=interval, findings=findings[:50])
        digest = hashlib.sha1(json.dumps(sorted(lines)).encode()).hexdigest()[:16]
        alerted = alerts.publish(settings, alert, f"data_quality|{start.isoformat()}|{digest}")
    page = publish_page(settings)
    return {"datasets": len(profiles), "rows_in": {n: p["rows"] for n, p in profiles.items()},
            "alerts": len(findings), "findings": [f"{f['dataset']}:{f['monitor']}:{f['subject']}" for f in findings],
            "alert_sent": alerted is not None, "page": page}


# ---- reading and the page ----------------------------------------------------------------

def latest_results(settings: Settings, interval_start: datetime | None = None) -> list[dict]:
    """Results of the newest observed interval (or of ``interval_start``)."""
    sch = settings.names.observability_schema
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f"{sch}.results",))
        if cur.fetchone()[0] is None:
            return []
        if interval_start is None:
            cur.execute(f"SELECT max(interval_start) FROM {sch}.results")
            interval_start = cur.fetchone()[0]
        cur.execute(f"SELECT dataset, interval_start, monitor, subject, status, value, expected, detail "
                    f"FROM {sch}.results WHERE interval_start = %s ORDER BY dataset, monitor, subject",
                    (interval_start,))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def row_history(settings: Settings, n: int = 30) -> dict[str, list[int]]:
    sch = settings.names.observability_schema
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f"{sch}.profiles",))
        if cur.fetchone()[0] is None:
            return {}
        cur.execute(f"SELECT dataset, row_count FROM (SELECT dataset, interval_start, row_count, row_number() "
                    f"OVER (PARTITION BY dataset ORDER BY interval_start DESC) AS k FROM {sch}.profiles) p "
                    "WHERE k <= %s ORDER BY dataset, interval_start", (n,))
        out: dict[str, list[int]] = {}
        for name, rows in cur.fetchall():
            out.setdefault(name, []).append(int(rows))
        return out


def render_page(settings: Settings) -> str:
    from lifecycle.dataops.metrics import sparkline

    results = latest_results(settings)
    trend = row_history(settings)
    interval = results[0]["interval_start"].isoformat() if results else "—"
    colour = {"alert": "#fee2e2", "ok": "#ecfdf5", "skipped": "#f3f4f6"}

    def value(v) -> str:
        return "" if v is None else f"{v:.4g}"

    rows = "".join(
        f"<tr style='background:{colour[r['status']]}'><td>{html.escape(r['dataset'])}</td>"
        f"<td>{html.escape(r['monitor'])}</td><td>{html.escape(r['subject'])}</td><td>{r['status']}</td>"
        f"<td>{value(r['value'])}</td>"
        f"<td>{html.escape(r['expected'] or '')}</td><td>{html.escape(r['detail'] or '')}</td></tr>"
        for r in results)
    trends = "".join(f"<tr><td>{html.escape(n)}</td><td style='font-size:1.3em'>{sparkline(v)}</td>"
                     f"<td>{v[-1]}</td></tr>" for n, v in trend.items())
    n_alert = sum(r["status"] == "alert" for r in results)
    style = ("body{font-family:system-ui,sans-serif;margin:2rem;color:#111}table{border-collapse:collapse;"
             "margin:1rem 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}th{background:#f3f4f6}")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Data observability</title>"
        f"<style>{style}</style></head><body><h1>Data observability</h1>"
        f"<p>Interval starting {interval}: <b>{n_alert}</b> monitor(s) alerting. Monitors compare each dataset "
        "with its own history (volume: robust z-score on the median and MAD; distributions: PSI; schema, "
        "null rate, freshness, completeness). Written by the <code>observe</code> DAG; history in "
        f"<code>{settings.names.observability_schema}.profiles</code> and <code>.results</code>.</p>"
        "<h2>Rows per interval</h2><table><tr><th>dataset</th><th>trend</th><th>latest</th></tr>"
        f"{trends}</table>"
        "<h2>Monitors</h2><table><tr><th>dataset</th><th>monitor</th><th>subject</th><th>status</th>"
        f"<th>value</th><th>expected</th><th>detail</th></tr>{rows}</table></body></html>"
    )


def publish_page(settings: Settings) -> dict:
    """Write the page next to the dashboard: locally and in the serving bucket."""
    from lifecycle.dataops.pages import write_page

    file, s3 = write_page(settings, render_page(settings), settings.observability_page, "observability.html")
    return {"file": file, "s3": s3}
