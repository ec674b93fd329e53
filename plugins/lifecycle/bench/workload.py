"""The benchmark's workload: deterministic, generated fast, the same for a stage and its baseline.

Input: ``Settings`` of the benchmark environment, a scale (orders), an event count, a
shard count and a business day.
Output:
- ``generate_sales``: rows in ``sales`` written by Postgres itself
  (``INSERT ... SELECT ... FROM generate_series``; no Python per row): ``products``
  (scale/500, 30..5000), ``customers`` (scale/10, at least 50), ``orders`` (= scale,
  status ``placed``, spread over the ``HISTORY_DAYS`` days up to the business day in id order) and ``order_items`` (1 to 4 lines per
  order, 2.5 on average, prices from the product's deterministic price). Every value is an
  arithmetic expression of the row number, so two runs at one scale hold identical data.
- ``change_orders``: ``n`` orders moved one status forward, in transactions of
  ``txn_rows`` rows (never one giant transaction): the CDC workload.
- ``make_events``: the Kinesis payloads (JSON, the documented event schema, deterministic
  UUIDs, valid products/customers/orders, ~1 % truncated records for the quarantine).
- ``recreate_stream``: ``settings.names.stream`` deleted and recreated with ``shards``
  shards (moto's Kinesis slows down as a shard fills, so the benchmark spreads records).
- ``put_events``: the payloads put by ``lifecycle.sources.simulator.put_events`` (one producer).

The generated rows skip foreign-key triggers (``session_replication_role = replica``):
they are consistent by construction and the checks would only slow the generation down.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from lifecycle.clients import aws, pg
from lifecycle.settings import Settings

CATEGORIES = ("books", "electronics", "garden", "kitchen", "outdoor", "toys", "apparel", "beauty")
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "SE", "PL", "BR", "JP", "CA")
DEFAULT_DAY = date(2026, 1, 15)
HISTORY_DAYS = 30
UUID_PREFIX = 0x5EED_BE7C_0000_0000  # high bits of every event id; the low 62 bits count


def sizes(scale: int) -> dict[str, int]:
    """Row counts of the catalogue for ``scale`` orders."""
    return {
        "orders": scale,
        "customers": max(scale // 10, 50),
        "products": min(max(scale // 500, 30), 5000),
    }


def _price_sql(pid: str) -> str:
    return f"round(((({pid}) * 1373) % 19800 + 199) / 100.0, 2)"


def _pg_array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


def generate_sales(settings: Settings, scale: int, day: date = DEFAULT_DAY) -> dict[str, int]:
    """Fill ``sales`` for ``scale`` orders (tables must be empty). Returns rows per table."""
    n = sizes(scale)
    products, customers, orders = n["products"], n["customers"], n["orders"]
    ts = "'" + datetime.combine(day, datetime.min.time(), tzinfo=UTC).isoformat() + "'::timestamptz"
    # orders over the HISTORY_DAYS days up to ``day``, in id order (as production data is):
    # the lake partitions them by day, and the newest orders are the ones that still change
    order_ts = (f"{ts} - (((({orders} - i) * {HISTORY_DAYS}) / {orders}) * interval '1 day') "
                f"+ ((i * 37) % 86400) * interval '1 second'")
    statements = [
        f"""INSERT INTO products (product_id, sku, name, category, description, unit_price,
                                  active, updated_at)
            SELECT p, 'SKU-' || lpad(p::text, 6, '0'), 'Product ' || p,
                   ({_pg_array(CATEGORIES)})[1 + p % {len(CATEGORIES)}],
                   'Benchmark product number ' || p, {_price_sql('p')}, true, {ts}
            FROM generate_series(1, {products}) AS p""",
        f"""INSERT INTO customers (customer_id, email, full_name, phone, country, created_at,
                                   updated_at)
            SELECT c, 'customer' || c || '@example.com', 'Customer Number ' || c,
                   '+1555' || lpad((c % 10000000)::text, 7, '0'),
                   ({_pg_array(COUNTRIES)})[1 + c % {len(COUNTRIES)}],
                   {ts} - (c % 365) * interval '1 day', {ts} - (c % 365) * interval '1 day'
            FROM generate_series(1, {customers}) AS c""",
        f"""INSERT INTO orders (order_id, customer_id, status, order_ts, updated_at)
            SELECT i, 1 + (i * 7919) % {customers}, 'placed',
                   {order_ts}, {order_ts}
            FROM generate_series(1, {orders}::bigint) AS i""",
        f"""INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price)
            SELECT i, l, pid, 1 + (i + l) % 3, {_price_sql('pid')}
            FROM generate_series(1, {orders}::bigint) AS i,
                 LATERAL generate_series(1, 1 + (i % 4)::int) AS l,
                 LATERAL (SELECT 1 + (i * 31 + l * 17) % {products} AS pid) AS p""",
    ]
    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        cur.execute("SET session_replication_role = replica")
        cur.execute("SELECT (SELECT count(*) FROM orders) + (SELECT count(*) FROM customers)")
        if cur.fetchone()[0]:
            raise RuntimeError("the benchmark's sales database is not empty")
        for sql in statements:
            cur.execute(sql)
        cur.execute("SELECT count(*) FROM order_items")
        items = int(cur.fetchone()[0])
    with pg(settings, settings.pg.sales_db, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE customers, products, orders, order_items")
    return {"customers": customers, "products": products, "orders": orders, "order_items": items}


def change_orders(settings: Settings, first: int, count: int, txn_rows: int = 10_000) -> int:
    """Move orders ``first .. first+count-1`` one status forward, ``txn_rows`` per transaction.

    Every row is updated exactly once (a delivered or cancelled order is still rewritten
    with a new ``updated_at``), so the slot receives exactly ``count`` changes.
    """
    done = 0
    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        for lo in range(first, first + count, txn_rows):
            hi = min(lo + txn_rows, first + count) - 1
            cur.execute(
                """UPDATE orders SET
                       status = CASE status WHEN 'placed' THEN 'paid' WHEN 'paid' THEN 'shipped'
                                            WHEN 'shipped' THEN 'delivered' ELSE status END,
                       updated_at = updated_at + interval '1 minute'
                   WHERE order_id BETWEEN %s AND %s""", (lo, hi))
            done += cur.rowcount
            conn.commit()
    return done


def event_id(i: int) -> str:
    return str(uuid.UUID(int=(UUID_PREFIX << 64) | i, version=4))


def make_events(scale: int, count: int, day: date = DEFAULT_DAY,
                bad_every: int = 100, first: int = 0) -> tuple[list[bytes], list[str]]:
    """``count`` payloads and partition keys (event numbers ``first`` ..); one in
    ``bad_every`` is truncated JSON."""
    n = sizes(scale)
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    payloads: list[bytes] = []
    keys: list[str] = []
    for i in range(first, first + count):
        kind = i % 10
        etype = ("page_view" if kind < 6 else "add_to_cart" if kind < 8
                 else "checkout" if kind == 8 else "purchase")
        anonymous = etype != "purchase" and i % 7 == 0
        customer_id = None if anonymous else 1 + (i * 7919) % n["customers"]
        product_id = None if etype in ("checkout", "purchase") else 1 + (i * 31) % n["products"]
        ts = start + timedelta(seconds=((i - first) * 86_400) // max(count, 1))
        ev = {
            "event_id": event_id(i),
            "event_type": etype,
            "event_ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "customer_id": customer_id,
            "product_id": product_id,
            "page": (f"/products/{product_id}" if product_id else
                     "/thank-you" if etype == "purchase" else "/checkout"),
        }
        if etype == "purchase":
            ev["order_id"] = 1 + (i * 13) % n["orders"]
        if etype == "add_to_cart":
            ev["quantity"] = 1 + i % 3
        data = json.dumps(ev, separators=(",", ":")).encode()
        if bad_every and i % bad_every == bad_every // 2:
            data = data[: 10 + i % 30]  # malformed: quarantined by clean_events
        payloads.append(data)
        keys.append(str(customer_id if customer_id is not None else ev["event_id"]))
    return payloads, keys


def recreate_stream(settings: Settings, shards: int) -> None:
    """Delete ``settings.names.stream`` (if any) and create it again with ``shards`` shards."""
    kinesis = aws(settings, "kinesis")
    name = settings.names.stream
    try:
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    except kinesis.exceptions.ResourceNotFoundException:
        pass
    for _ in range(200):
        try:
            kinesis.describe_stream_summary(StreamName=name)
        except kinesis.exceptions.ResourceNotFoundException:
            break
        time.sleep(0.1)
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    for _ in range(200):
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.1)
    raise RuntimeError(f"stream {name} did not become ACTIVE")


def put_events(settings: Settings, payloads: list[bytes], keys: list[str]) -> dict:
    """Put the payloads with the simulator's single producer; returns count and rate."""
    from lifecycle.sources.simulator import put_events as simulator_put

    started = time.perf_counter()
    sent = simulator_put(settings, payloads, keys)
    seconds = time.perf_counter() - started
    return {"records": sent, "seconds": round(seconds, 3),
            "records_per_s": round(sent / seconds, 1) if seconds else None}
