"""Value reconciliation: every contract column of every row, layer against layer.

Input: ``Settings`` (the lifecycle run at least once) and a DuckDB connection of
``clients.connect_duckdb``. Output: ``value_checks`` and ``serving_value_checks``, checks
(``name``, ``expected``, ``actual``, ``ok``) per table and pair of layers:

- ``sales`` tables: source = clean zone on the contract's columns the source has (an order's
  and an order line's ``order_date`` derived: the UTC date of the order's ``order_ts``), clean =
  ``landing`` on every contract column (the masked PII columns included);
- the clean tables no source holds (status history, sessions): clean = ``landing``;
- reviews: DynamoDB (now) = clean = ``landing``, by key and value;
- events: every clean event has a record on the stream with the same id and values, and
  clean = ``landing`` by id and value;
- serving (``serving_value_checks``): ``daily_sales`` per day and ``product_performance`` per
  product against the same figures computed here from the source and DynamoDB, and
  ``funnel_daily``'s event counts per day against the clean events.

A check's ``actual`` counts the keys missing from the right layer, extra in it and changed
(the same key, another value), and names the first keys that differ with the columns that
differ: a lost, stale or reverted update names its table and key. Every layer is read into
the one DuckDB session (Postgres through the postgres extension, the lake through
``iceberg_scan``, DynamoDB and Kinesis through boto3) and cast to the contract's types, so
the same value hashes alike whichever engine held it.
"""

from __future__ import annotations

from lifecycle.clients import attach_postgres, aws
from lifecycle.lake.catalog import CLEAN_TABLES, duckdb_type, lake_table
from lifecycle.lake.iceberg import scan_sql
from lifecycle.settings import Settings
from lifecycle.sql import ident, literal

SOURCE, WAREHOUSE = "recon_source", "recon_warehouse"
SHOWN = 3  # differing keys named in a failed check

# source table -> its rows as the clean contract has them (the columns the source holds)
SOURCE_ROWS = {
    "orders": f"SELECT o.*, CAST(o.order_ts AS DATE) AS order_date FROM {SOURCE}.public.orders o",
    "order_items": (f"SELECT i.*, CAST(o.order_ts AS DATE) AS order_date FROM {SOURCE}.public.order_items i "
                    f"JOIN {SOURCE}.public.orders o USING (order_id)"),
    "products": f"SELECT * FROM {SOURCE}.public.products",
    "customers": f"SELECT * FROM {SOURCE}.public.customers",
}
SOURCE_COLUMNS = {"customers": ("customer_id", "country", "created_at", "updated_at")}


def _layer(con, name: str, select_sql: str, keys: tuple[str, ...], columns: list[tuple[str, str]]) -> str:
    """A temp table ``name`` of ``select_sql``'s contract columns cast to their types, and ``_h``,
    the hash of all of them (one engine hashes every layer)."""
    cast = ", ".join(f"CAST({ident(c)} AS {duckdb_type(t)}) AS {ident(c)}" for c, t in columns)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {ident(name)} AS SELECT *, "
                f"hash({', '.join(ident(c) for c, _ in columns)}) AS _h FROM (SELECT {cast} FROM ({select_sql}))")
    return name


def _show(key_names: tuple[str, ...], key: tuple) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(key_names, key, strict=True))


def compare(con, table: str, left: tuple[str, str], right: tuple[str, str], keys: tuple[str, ...],
            columns: list[str]) -> list[dict]:
    """Checks that layer ``right`` (name, temp table) has the rows of ``left``, value for value,
    and no key twice."""
    (lname, ltab), (rname, rtab) = left, right
    on = " AND ".join(f"l.{ident(k)} = r.{ident(k)}" for k in keys)
    key_l = ", ".join(f"coalesce(l.{ident(k)}, r.{ident(k)})" for k in keys)
    diff = (f"SELECT {key_l}, CASE WHEN r._h IS NULL THEN 'missing' WHEN l._h IS NULL THEN 'extra' "
            f"ELSE 'changed' END AS kind FROM {ident(ltab)} l FULL JOIN {ident(rtab)} r ON {on} "
            "WHERE l._h IS DISTINCT FROM r._h")
    counts = dict(con.execute(f"SELECT kind, count(*) FROM ({diff}) GROUP BY 1").fetchall())
    expected = "0 missing, 0 extra, 0 changed"
    actual = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("missing", "extra", "changed"))
    if counts:
        shown = []
        for *key, kind in con.execute(f"SELECT * FROM ({diff}) ORDER BY ALL LIMIT {SHOWN}").fetchall():
            note = f"{kind} {_show(keys, tuple(key))}"
            if kind == "changed":
                note += f" ({_changed_columns(con, ltab, rtab, keys, tuple(key), columns)})"
            shown.append(note)
        actual += ": " + "; ".join(shown)
    name = f"{table}: {lname} = {rname}, value for value ({len(columns)} columns)"
    checks = [{"name": name, "expected": expected, "actual": actual, "ok": not counts}]
    key_cols = ", ".join(ident(k) for k in keys)
    (dupes,) = con.execute(f"SELECT count(*) - count(DISTINCT ({key_cols})) FROM {ident(rtab)}").fetchone()
    checks.append({"name": f"{table}: no key twice in {rname}", "expected": 0, "actual": int(dupes),
                   "ok": dupes == 0})
    return checks


def _changed_columns(con, ltab: str, rtab: str, keys: tuple[str, ...], key: tuple, columns: list[str]) -> str:
    where = " AND ".join(f"{ident(k)} = ?" for k in keys)
    cols = ", ".join(ident(c) for c in columns)
    (lrow,) = con.execute(f"SELECT {cols} FROM {ident(ltab)} WHERE {where} LIMIT 1", list(key)).fetchall()
    (rrow,) = con.execute(f"SELECT {cols} FROM {ident(rtab)} WHERE {where} LIMIT 1", list(key)).fetchall()
    return ", ".join(f"{c} {a!r} ≠ {b!r}" for c, a, b in zip(columns, lrow, rrow, strict=True) if a != b)


def _attach(con, settings: Settings) -> None:
    attach_postgres(con, settings, settings.pg.sales_db, SOURCE)
    attach_postgres(con, settings, settings.pg.warehouse_db, WAREHOUSE)


def value_checks(settings: Settings, con, stream: list[bytes] | None = None) -> list[dict]:
    """Source = clean = landing, row by row and value by value, for every clean table a
    source holds; clean = landing for the others (see the module docstring). ``stream``: the
    stream's records (``stream_payloads``), when the caller has read them already."""
    _attach(con, settings)
    checks: list[dict] = []
    for table, spec in CLEAN_TABLES.items():
        cols = list(spec.all_columns)
        names = [c for c, _ in cols]
        clean = _layer(con, f"clean_{table}", f"SELECT * FROM {scan_sql(settings, spec)}", spec.keys, cols)
        landing = _layer(con, f"landing_{table}", f"SELECT * FROM {WAREHOUSE}.landing.{ident(table)}",
                         spec.keys, cols)
        if table in SOURCE_ROWS:
            shared = SOURCE_COLUMNS.get(table, names)
            scols = [(c, t) for c, t in cols if c in shared]
            source = _layer(con, f"source_{table}", SOURCE_ROWS[table], spec.keys, scols)
            clean_shared = _layer(con, f"clean_{table}_shared", f"SELECT * FROM {ident(clean)}", spec.keys, scols)
            checks += compare(con, table, ("source", source), ("clean", clean_shared), spec.keys,
                              [c for c, _ in scols])
        elif table == "reviews":
            ddb = _layer(con, "dynamodb_reviews", _dynamodb_reviews(settings, con), spec.keys, cols)
            checks += compare(con, table, ("DynamoDB", ddb), ("clean", clean), spec.keys, names)
        elif table == "events":
            records = stream if stream is not None else list(stream_payloads(settings))
            checks.append(_events_on_stream(con, records, clean, cols))
        checks += compare(con, table, ("clean", clean), ("landing", landing), spec.keys, names)
    return checks


def _dynamodb_reviews(settings: Settings, con) -> str:
    """The reviews in DynamoDB now, as a relation of text values (cast by ``_layer``)."""
    import pyarrow as pa

    names = lake_table("reviews").column_names
    rows = []
    for page in aws(settings, "dynamodb").get_paginator("scan").paginate(
            TableName=settings.names.reviews_table, ConsistentRead=True):
        for item in page["Items"]:
            rows.append({c: next(iter(item[c].values())) if c in item else None for c in names})
    con.register("dynamodb_review_items", pa.table({c: pa.array([r[c] for r in rows], pa.string()) for c in names}))
    return "SELECT * FROM dynamodb_review_items"


def stream_payloads(settings: Settings):
    """Every record's data in the stream, read from TRIM_HORIZON with a bare ``get_records``
    loop (no checkpoints, no consumer of ours)."""
    kinesis = aws(settings, "kinesis")
    for shard in kinesis.list_shards(StreamName=settings.names.stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=settings.names.stream, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            resp = kinesis.get_records(ShardIterator=it, Limit=10_000)
            for record in resp["Records"]:
                yield record["Data"]
            it = resp.get("NextShardIterator")
            if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
                break


def _events_on_stream(con, records: list[bytes], clean: str, cols: list[tuple[str, str]]) -> dict:
    """Every clean event equals, in every value, a record put on the stream with its id."""
    import pyarrow as pa

    payloads = [bytes(d).decode("utf-8", "replace") for d in records]
    con.register("stream_records", pa.table({"payload": pa.array(payloads, pa.string())}))
    fields = ", ".join(
        f"TRY_CAST(json_extract_string(payload, {literal('$.' + c)}) AS {duckdb_type(t)}) AS {ident(c)}"
        for c, t in cols if c != "event_date")
    stream = _layer(con, "stream_events",
                    f"SELECT *, CAST(event_ts AS DATE) AS event_date FROM (SELECT {fields} FROM stream_records "
                    "WHERE json_valid(payload))", ("event_id",), cols)
    unmatched = con.execute(
        f"SELECT event_id FROM {ident(clean)} c WHERE NOT EXISTS (SELECT 1 FROM {ident(stream)} s "
        "WHERE s.event_id = c.event_id AND s._h = c._h) ORDER BY event_id").fetchall()
    actual = f"{len(unmatched)} without" + (
        ": " + "; ".join(f"event_id={r[0]}" for r in unmatched[:SHOWN]) if unmatched else "")
    return {"name": "events: every clean event is a record of the stream, value for value",
            "expected": "0 without", "actual": actual, "ok": not unmatched}


# serving table -> (key, the figures computed from the layers below, its value columns)
SERVING = {
    "daily_sales": (("order_date",), f"""
        SELECT CAST(o.order_ts AS DATE) AS order_date, count(DISTINCT o.order_id) AS orders,
               coalesce(sum(i.quantity), 0) AS items, coalesce(sum(i.quantity * i.unit_price), 0) AS revenue,
               count(DISTINCT o.customer_id) AS customers
        FROM {SOURCE}.public.orders o LEFT JOIN {SOURCE}.public.order_items i USING (order_id)
        WHERE o.status <> 'cancelled' GROUP BY 1""",
        [("orders", "bigint"), ("items", "bigint"), ("revenue", "decimal(14,2)"), ("customers", "bigint")]),
    "product_performance": (("product_id",), f"""
        SELECT p.product_id, coalesce(s.units_sold, 0) AS units_sold, coalesce(s.revenue, 0) AS revenue,
               coalesce(s.purchases, 0) AS purchases, coalesce(r.review_count, 0) AS review_count
        FROM {SOURCE}.public.products p
        LEFT JOIN (SELECT i.product_id, sum(i.quantity) AS units_sold, sum(i.quantity * i.unit_price) AS revenue,
                          count(DISTINCT i.order_id) AS purchases
                   FROM {SOURCE}.public.order_items i JOIN {SOURCE}.public.orders o USING (order_id)
                   WHERE o.status <> 'cancelled' GROUP BY 1) s USING (product_id)
        LEFT JOIN (SELECT CAST(product_id AS BIGINT) AS product_id, count(*) AS review_count
                   FROM dynamodb_review_items GROUP BY 1) r USING (product_id)""",
        [("units_sold", "bigint"), ("revenue", "decimal(14,2)"), ("purchases", "bigint"),
         ("review_count", "bigint")]),
    "funnel_daily": (("event_date",), """
        SELECT event_date, count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
               count(*) FILTER (WHERE event_type = 'add_to_cart') AS add_to_carts,
               count(*) FILTER (WHERE event_type = 'checkout') AS checkouts,
               count(*) FILTER (WHERE event_type = 'purchase') AS purchases
        FROM clean_events GROUP BY 1""",
        [("page_views", "bigint"), ("add_to_carts", "bigint"), ("checkouts", "bigint"),
         ("purchases", "bigint")]),
}
KEY_TYPES = {"order_date": "date", "event_date": "date", "product_id": "bigint"}


def serving_value_checks(settings: Settings, con) -> list[dict]:
    """``serving`` against the figures of its definitions computed from the source, DynamoDB
    and the clean events (run after ``value_checks``, whose layers it reads)."""
    _attach(con, settings)
    checks = []
    for table, (keys, truth_sql, values) in SERVING.items():
        cols = [(k, KEY_TYPES[k]) for k in keys] + values
        truth = _layer(con, f"truth_{table}", truth_sql, keys, cols)
        served = _layer(con, f"serving_{table}", f"SELECT * FROM {WAREHOUSE}.serving.{ident(table)}", keys, cols)
        checks += compare(con, f"serving.{table}", ("computed from the sources", truth), ("serving", served),
                          keys, [c for c, _ in cols])
    return checks
