"""Reconciliation: does what came out equal what went in?

Input: ``Settings`` with the lifecycle run at least once.
Output: a report ``{"ok": bool, "checks": [{"name", "expected", "actual", "ok"}]}``:
- orders, items and revenue of non-cancelled orders in ``sales`` = ``serving.daily_sales``;
- every product in ``sales`` has a row in ``serving.product_performance``;
- good events per type (the simulator's ledger) = clean zone = ``landing.events`` =
  ``serving.funnel_daily``;
- every record in the Kinesis stream (read with a bare ``get_records`` loop) is a clean
  event, a quarantined record or a record in the Firehose error prefix: nothing lost,
  nothing doubled;
- the Glue Catalog lists every clean table as an Iceberg table naming its metadata file;
- reviews currently in DynamoDB = the reviews counted in ``serving.product_performance``;
- row for row: orders, order items, products and the non-personal columns of customers in
  ``warehouse.landing`` equal ``sales`` (an order-independent fingerprint of every row, so
  inserts, updates, deletes and primary-key updates must all have arrived).
"""

from __future__ import annotations

from decimal import Decimal

from lifecycle.clients import aws, pg
from lifecycle.settings import Settings

EVENT_COLUMNS = {"page_view": "page_views", "add_to_cart": "add_to_carts", "checkout": "checkouts",
                 "purchase": "purchases"}


# columns compared row for row between the source and landing (PII is hashed in between)
ROW_FOR_ROW = {
    "orders": "order_id, customer_id, status, order_ts, updated_at",
    "order_items": "order_id, line_no, product_id, quantity, unit_price",
    "products": "product_id, sku, name, category, description, unit_price, active, updated_at",
    "customers": "customer_id, country, created_at, updated_at",
}


def fingerprint(settings: Settings, database: str, schema: str, table: str, columns: str) -> tuple[int, int]:
    """(rows, order-independent hash of every row's text) of a table, in a UTC session."""
    with pg(settings, database) as conn, conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        cur.execute(f"SELECT count(*), coalesce(sum(hashtextextended(row({columns})::text, 0)), 0) "
                    f"FROM {schema}.{table}")
        rows, digest = cur.fetchone()
    return int(rows), int(digest)


def _check(name: str, expected, actual) -> dict:
    return {"name": name, "expected": expected, "actual": actual, "ok": expected == actual}


def count_stream_records(settings: Settings) -> int:
    """Every record in the stream, read from TRIM_HORIZON (the raw baseline, no checkpoints)."""
    kinesis = aws(settings, "kinesis")
    total = 0
    for shard in kinesis.list_shards(StreamName=settings.names.stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=settings.names.stream, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            resp = kinesis.get_records(ShardIterator=it, Limit=10_000)
            total += len(resp["Records"])
            it = resp.get("NextShardIterator")
            if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
                break
    return total


def _warehouse(settings: Settings, sql: str):
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def reconcile(settings: Settings) -> dict:
    from lifecycle.lake.counts import lake_counts
    from lifecycle.sources.sales_db import source_truth
    from lifecycle.sources.simulator import ledger

    checks: list[dict] = []
    truth = source_truth(settings)
    (orders, items, revenue), = _warehouse(
        settings, "SELECT coalesce(sum(orders),0), coalesce(sum(items),0), coalesce(sum(revenue),0) "
                  "FROM serving.daily_sales")
    checks.append(_check("orders (not cancelled): sales = serving.daily_sales", truth["orders_not_cancelled"], int(orders)))
    checks.append(_check("items (not cancelled): sales = serving.daily_sales", truth["items_not_cancelled"], int(items)))
    checks.append(_check("revenue: sales = serving.daily_sales", truth["revenue_not_cancelled"],
                         Decimal(revenue).quantize(Decimal("0.01"))))
    (pp,), = _warehouse(settings, "SELECT count(*) FROM serving.product_performance")
    checks.append(_check("products: sales = serving.product_performance", truth["products"], int(pp)))
    (rev_pp,), = _warehouse(settings, "SELECT coalesce(sum(revenue),0) FROM serving.product_performance")
    checks.append(_check("revenue: sales = Σ serving.product_performance", truth["revenue_not_cancelled"],
                         Decimal(rev_pp).quantize(Decimal("0.01"))))

    for table, columns in ROW_FOR_ROW.items():
        checks.append(_check(f"{table}: sales = landing, row for row",
                             fingerprint(settings, settings.pg.sales_db, "public", table, columns),
                             fingerprint(settings, settings.pg.warehouse_db, "landing", table, columns)))

    ddb_reviews = 0
    for page in aws(settings, "dynamodb").get_paginator("scan").paginate(
            TableName=settings.names.reviews_table, Select="COUNT", ConsistentRead=True):
        ddb_reviews += page["Count"]
    (served_reviews,), = _warehouse(settings, "SELECT coalesce(sum(review_count), 0) FROM serving.product_performance")
    checks.append(_check("reviews: DynamoDB = Σ serving.product_performance.review_count", ddb_reviews,
                         int(served_reviews)))

    book = ledger(settings)
    lake = lake_counts(settings)
    landing = dict(_warehouse(settings, "SELECT event_type, count(*) FROM landing.events GROUP BY 1"))
    funnel_row = _warehouse(settings, "SELECT " + ", ".join(f"coalesce(sum({c}),0)" for c in EVENT_COLUMNS.values())
                            + " FROM serving.funnel_daily")[0]
    funnel = dict(zip(EVENT_COLUMNS, (int(v) for v in funnel_row), strict=True))
    for etype in EVENT_COLUMNS:
        expected = int(book["events_good"].get(etype, 0))
        checks.append(_check(f"{etype}: simulator = clean zone", expected, lake["events_by_type"].get(etype, 0)))
        checks.append(_check(f"{etype}: simulator = landing.events", expected, int(landing.get(etype, 0))))
        checks.append(_check(f"{etype}: simulator = serving.funnel_daily", expected, funnel[etype]))
    in_stream = count_stream_records(settings)
    checks.append(_check("Kinesis records = clean events + quarantined + error prefix", in_stream,
                         lake["events_total"] + lake["quarantined_events"] + lake["processing_failed_events"]))
    checks.append(_check("quarantined + error prefix = bad records sent", sum(book["events_bad"].values()),
                         lake["quarantined_events"] + lake["processing_failed_events"]))

    from lifecycle.lake.catalog import CLEAN_TABLES
    from lifecycle.lake.iceberg import is_iceberg

    glue = aws(settings, "glue")
    for table in CLEAN_TABLES:
        try:
            entry = glue.get_table(DatabaseName=settings.names.clean_database, Name=table)["Table"]
            registered = is_iceberg(entry) and bool(entry["Parameters"].get("metadata_location"))
        except glue.exceptions.EntityNotFoundException:
            registered = False
        checks.append(_check(f"Glue Catalog has {settings.names.clean_database}.{table} (Iceberg, with a "
                             "current snapshot's metadata)", True, registered))
    return {"ok": all(c["ok"] for c in checks), "checks": checks, "source": truth, "ledger": book,
            "lake": lake, "stream_records": in_stream}


def print_report(report: dict, echo=print) -> None:
    width = max(len(c["name"]) for c in report["checks"])
    for c in report["checks"]:
        mark = "ok  " if c["ok"] else "FAIL"
        echo(f"  [{mark}] {c['name'].ljust(width)}  expected {c['expected']}  got {c['actual']}")
    echo(f"  reconciliation: {'PASSED' if report['ok'] else 'FAILED'} "
         f"({sum(c['ok'] for c in report['checks'])}/{len(report['checks'])} checks)")


# ---- per layer, per table and per event type (the chaos suite: lifecycle.chaos) ------------

# source table → (key columns, measure summed in every layer)
LAYER_TABLES = {
    "orders": (("order_id",), "order_id"),
    "order_items": (("order_id", "line_no"), "quantity * unit_price"),
    "products": (("product_id",), "unit_price"),
    "customers": (("customer_id",), "customer_id"),
}


def _lake_rows(con, settings: Settings, table: str, sql_cols: str, where: str = "") -> list[tuple]:
    from lifecycle.lake.catalog import lake_table
    from lifecycle.lake.iceberg import scan_sql

    return con.execute(f"SELECT {sql_cols} FROM {scan_sql(settings, lake_table(table))} t {where}").fetchall()


def _pg_rows(settings: Settings, database: str, sql: str) -> list[tuple]:
    with pg(settings, database) as conn, conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        cur.execute(sql)
        return cur.fetchall()


def _keyset_checks(name: str, layers: dict[str, list[tuple]], measure: dict[str, object]) -> list[dict]:
    """count, duplicates, key set and Σ measure of every layer against the first one."""
    (first, rows0), *others = layers.items()
    keys0 = {r for r in rows0}
    checks = []
    for layer, rows in others:
        keys = set(rows)
        checks.append(_check(f"{name}: {first} = {layer} (rows)", len(rows0), len(rows)))
        checks.append(_check(f"{name}: no duplicate key in {layer}", 0, len(rows) - len(keys)))
        missing, extra = len(keys0 - keys), len(keys - keys0)
        checks.append(_check(f"{name}: {first} = {layer} (key set: missing, extra)", (0, 0), (missing, extra)))
        checks.append(_check(f"{name}: {first} = {layer} (sum)", measure[first], measure[layer]))
    return checks


def _dec(v) -> Decimal:
    return Decimal(str(v or 0)).quantize(Decimal("0.01"))


def reconcile_layers(settings: Settings, serving: bool = False, bad_expected: dict | None = None) -> dict:
    """Source against the lake's clean zone and the warehouse ``landing`` schema (and, with
    ``serving``, everything ``reconcile`` checks), table by table and event type by type:
    row counts, duplicate keys, key sets (missing and extra keys) and a sum.

    - ``sales`` tables: source = clean = landing (keys, Σ measure of ``LAYER_TABLES``);
    - reviews: DynamoDB = clean = landing (keys);
    - events, per type: the simulator's ledger = clean = landing (counts), clean = landing
      (event-id sets, Σ quantity); Kinesis records = clean + quarantined + error prefix;
    - quarantine: rejected records per reason = the bad records the simulator sent, per kind
      (``bad_expected`` overrides the ledger, for cases that add records of their own).
    """
    from collections import Counter

    from lifecycle.clients import connect_duckdb
    from lifecycle.lake.counts import has_objects, lake_counts
    from lifecycle.sources.simulator import ledger

    checks: list[dict] = []
    with connect_duckdb(settings) as con:
        for table, (keys, measure) in LAYER_TABLES.items():
            cols = ", ".join(keys)
            layers = {
                "source": _pg_rows(settings, settings.pg.sales_db, f"SELECT {cols} FROM public.{table}"),
                "clean": _lake_rows(con, settings, table, cols),
                "landing": _pg_rows(settings, settings.pg.warehouse_db, f"SELECT {cols} FROM landing.{table}"),
            }
            sums = {
                "source": _dec(_pg_rows(settings, settings.pg.sales_db, f"SELECT sum({measure}) FROM public.{table}")[0][0]),
                "clean": _dec((_lake_rows(con, settings, table, f"sum({measure})") or [(0,)])[0][0]),
                "landing": _dec(_pg_rows(settings, settings.pg.warehouse_db,
                                         f"SELECT sum({measure}) FROM landing.{table}")[0][0]),
            }
            checks += _keyset_checks(table, layers, sums)

        ddb_keys = []
        for page in aws(settings, "dynamodb").get_paginator("scan").paginate(
                TableName=settings.names.reviews_table, ConsistentRead=True, ProjectionExpression="product_id, review_id"):
            ddb_keys += [(int(i["product_id"]["N"]), i["review_id"]["S"]) for i in page["Items"]]
        reviews = {"dynamodb": ddb_keys,
                   "clean": _lake_rows(con, settings, "reviews", "product_id, review_id"),
                   "landing": _pg_rows(settings, settings.pg.warehouse_db,
                                       "SELECT product_id, review_id FROM landing.reviews")}
        checks += _keyset_checks("reviews", reviews, {k: len(v) for k, v in reviews.items()})

        book = ledger(settings)
        lake = lake_counts(settings)
        clean_events = _lake_rows(con, settings, "events", "event_type, event_id, coalesce(quantity, 0)")
        landing_events = _pg_rows(settings, settings.pg.warehouse_db,
                                  "SELECT event_type, event_id, coalesce(quantity, 0) FROM landing.events")
        for etype in EVENT_COLUMNS:
            expected = int(book["events_good"].get(etype, 0))
            c = [(r[1],) for r in clean_events if r[0] == etype]
            w = [(r[1],) for r in landing_events if r[0] == etype]
            checks.append(_check(f"events/{etype}: simulator = clean (rows)", expected, len(c)))
            checks += _keyset_checks(f"events/{etype}", {"clean": c, "landing": w}, {
                "clean": sum(r[2] for r in clean_events if r[0] == etype),
                "landing": sum(r[2] for r in landing_events if r[0] == etype)})
        in_stream = count_stream_records(settings)
        checks.append(_check("Kinesis records = clean events + quarantined + error prefix", in_stream,
                             lake["events_total"] + lake["quarantined_events"] + lake["processing_failed_events"]))
        reasons: Counter = Counter()
        quarantine = settings.names.bucket("quarantine")
        if has_objects(settings, quarantine, "events/data_0.parquet"):
            reasons.update(dict(con.execute(
                f"SELECT reason, count(*) FROM read_parquet('s3://{quarantine}/events/data_0.parquet') "
                "GROUP BY 1").fetchall()))
            (no_reason,) = con.execute(
                f"SELECT count(*) FROM read_parquet('s3://{quarantine}/events/data_0.parquet') "
                "WHERE reason IS NULL OR reason = ''").fetchone()
            checks.append(_check("quarantine: every record has a reason", 0, int(no_reason)))
        bad = dict(bad_expected if bad_expected is not None else book["events_bad"])
        failed = lake["processing_failed_events"]
        checks.append(_check("quarantine by reason = bad records sent by kind",
                             {k: v for k, v in sorted(bad.items()) if v},
                             {k: v for k, v in sorted(reasons.items()) if v} if not failed
                             else {**dict(reasons), "processing_failed": failed}))
    report = {"checks": checks}
    if serving:
        report["checks"] += reconcile(settings)["checks"]
    report["ok"] = all(c["ok"] for c in report["checks"])
    return report
