"""A deterministic sales platform: one simulated business day per call.

Input: ``Settings``, a business date, a seed, a scale (orders per day), an optional rate
of deliberately bad event records (every kind the pipeline must quarantine) and an optional
rate of late events (page views of the previous day that only arrive now).
Output: rows in ``sales`` (new customers, orders and items, the products of a basket
mostly from one category: see ``_basket``; status changes, a price change,
an email change, abandoned orders inserted then deleted), product reviews in DynamoDB and
user-activity events in Kinesis, all timestamped inside that day. Returns a summary (the
ledger the reconciliation checks against), also stored in ``sales.simulator.runs``.

Idempotent per (date, seed): a second call returns the stored summary and writes nothing.
Every order that exists at the end of the day has exactly one ``purchase`` event carrying
its ``order_id``; an abandoned (deleted) order has none.
"""

from __future__ import annotations

import io
import json
import random
import uuid
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from lifecycle.clients import aws, pg
from lifecycle.settings import Settings
from lifecycle.sources.sales_db import ensure_schema

CATEGORIES = ("books", "electronics", "garden", "kitchen", "outdoor", "toys", "apparel", "beauty")
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "SE", "PL", "BR", "JP", "CA")
STATUS_NEXT = {"placed": "paid", "paid": "shipped", "shipped": "delivered"}
BAD_KINDS = ("malformed_json", "missing_field", "unknown_event_type", "future_timestamp",
             "oversized_record", "unknown_product", "negative_quantity", "duplicate_event_id")
UNKNOWN_PRODUCT_ID = 999_999_999


def _copy_rows(cur, table: str, columns: list[str], rows: list[tuple]) -> None:
    """Stream rows with COPY (several times faster than INSERTs here)."""
    if not rows:
        return
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join("\\N" if v is None else str(v).replace("\t", " ") for v in row) + "\n")
    buf.seek(0)
    cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buf)


class _Day:
    def __init__(self, day: date, rng: random.Random):
        self.start = datetime.combine(day, time(0), tzinfo=UTC)
        self.rng = rng

    def ts(self, lo: float = 0.0, hi: float = 1.0) -> datetime:
        secs = self.rng.uniform(lo * 86400, hi * 86400 - 1)
        return (self.start + timedelta(seconds=secs)).replace(microsecond=0)


def _event(rng: random.Random, etype: str, ts: datetime, customer_id, product_id=None,
           order_id=None, page: str | None = None, quantity: int | None = None) -> dict:
    ev = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_type": etype,
        "event_ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "customer_id": customer_id,
        "product_id": product_id,
        "page": page or (f"/products/{product_id}" if product_id else "/checkout"),
    }
    if order_id is not None:
        ev["order_id"] = order_id
    if quantity is not None:
        ev["quantity"] = quantity
    return ev


AFFINITY = 0.8  # chance that a further product of a basket comes from the first one's category


def _basket(rng: random.Random, catalogue: list[tuple[int, Decimal]], category_of: dict[int, str],
            k: int) -> list[tuple[int, Decimal]]:
    """``k`` distinct products that shoppers pick together: the first at random, each further
    one from the same category with probability ``AFFINITY`` (a tent, then a sleeping bag),
    else from the whole catalogue. This affinity is what the product embeddings learn
    (co-purchase and co-view) and what the recommendation test checks."""
    k = min(k, len(catalogue))
    first = rng.choice(catalogue)
    chosen = [first]
    same = [p for p in catalogue if category_of.get(p[0]) == category_of.get(first[0]) and p != first]
    while len(chosen) < k:
        pool = [p for p in (same if same and rng.random() < AFFINITY else catalogue) if p not in chosen]
        if not pool:
            pool = [p for p in catalogue if p not in chosen]
        pick = rng.choice(pool)
        chosen.append(pick)
        if pick in same:
            same.remove(pick)
    return chosen


def put_events(settings: Settings, payloads: list[bytes], partition_keys: list[str]) -> int:
    """One producer, batches of 500 (moto can lose records with concurrent producers)."""
    kinesis = aws(settings, "kinesis")
    sent = 0
    for i in range(0, len(payloads), 500):
        batch = [{"Data": d, "PartitionKey": k}
                 for d, k in zip(payloads[i:i + 500], partition_keys[i:i + 500], strict=True)]
        pending = batch
        for _ in range(10):
            resp = kinesis.put_records(StreamName=settings.names.stream, Records=pending)
            if not resp.get("FailedRecordCount"):
                break
            pending = [r for r, res in zip(pending, resp["Records"], strict=True) if res.get("ErrorCode")]
        else:
            raise RuntimeError(f"Kinesis kept rejecting {len(pending)} records")
        sent += len(batch)
    return sent


class SimulationRefused(ValueError):
    """A day the simulator cannot play here (the message says why and what to do)."""


def simulate_day(settings: Settings, business_date: date, *, seed: int = 42, scale: int = 200,
                 bad_rate: float = 0.0, late_rate: float = 0.0) -> dict:
    ensure_schema(settings)
    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT summary FROM simulator.runs WHERE business_date=%s AND seed=%s",
                    (business_date, seed))
        row = cur.fetchone()
        if row:
            return {**row[0], "already_simulated": True}
        cur.execute("SELECT max(business_date) FROM simulator.runs")
        (last,) = cur.fetchone()
    if last is not None and business_date < last:
        # a day's orders, statuses and ids follow from the days before it (the next ids, the
        # orders still open): an earlier day played after a later one would contradict them
        raise SimulationRefused(f"cannot simulate {business_date}: {last} is already simulated here and days "
                                "are simulated in order (simulate a later day, or `lifecycle reset` to start over)")

    rng = random.Random(f"{seed}:{business_date.isoformat()}")
    from faker import Faker

    fake = Faker()
    fake.seed_instance(rng.getrandbits(32))
    day = _Day(business_date, rng)
    summary: dict = {"business_date": business_date.isoformat(), "seed": seed, "scale": scale}

    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        # ---- catalogue: products and customers (grow a little every day) ----------------
        cur.execute("SELECT coalesce(max(product_id), 0) FROM products")
        (max_pid,) = cur.fetchone()
        cur.execute("SELECT coalesce(max(customer_id), 0) FROM customers")
        (max_cid,) = cur.fetchone()
        cur.execute("SELECT coalesce(max(order_id), 0) FROM orders")
        (max_oid,) = cur.fetchone()

        n_new_products = max(30 - max_pid, 0) + rng.randint(0, 2)
        products = []
        for pid in range(max_pid + 1, max_pid + 1 + n_new_products):
            cat = rng.choice(CATEGORIES)
            price = Decimal(rng.randint(199, 19999)) / 100
            products.append((pid, f"SKU-{pid:06d}", f"{fake.color_name()} {fake.word()} {cat[:-1]}".title(),
                             cat, fake.sentence(nb_words=12), price, True, day.ts(0, 0.05)))
        _copy_rows(cur, "products",
                   ["product_id", "sku", "name", "category", "description", "unit_price", "active",
                    "updated_at"], products)
        n_new_customers = max(50 - max_cid, 0) + max(scale // 10, 1)
        customers = []
        for cid in range(max_cid + 1, max_cid + 1 + n_new_customers):
            created = day.ts(0, 0.1)
            customers.append((cid, fake.unique.email(), fake.name(), fake.msisdn()[:12],
                              rng.choice(COUNTRIES), created, created))
        _copy_rows(cur, "customers",
                   ["customer_id", "email", "full_name", "phone", "country", "created_at", "updated_at"],
                   customers)
        cur.execute("SELECT product_id, unit_price FROM products WHERE active ORDER BY product_id")
        catalogue = [(int(p), Decimal(u)) for p, u in cur.fetchall()]
        cur.execute("SELECT max(customer_id) FROM customers")
        (n_customers,) = cur.fetchone()

        # ---- a price change and an email change (updates the CDC must carry) ------------
        repriced = rng.choice(catalogue)[0]
        cur.execute("UPDATE products SET unit_price = round(unit_price * 1.10, 2), updated_at = %s "
                    "WHERE product_id = %s", (day.ts(0.05, 0.1), repriced))
        cur.execute("SELECT product_id, unit_price FROM products WHERE active ORDER BY product_id")
        catalogue = [(int(p), Decimal(u)) for p, u in cur.fetchall()]
        cur.execute("SELECT product_id, category FROM products WHERE active ORDER BY product_id")
        category_of = {int(p): c for p, c in cur.fetchall()}
        moved = rng.randint(1, n_customers)
        cur.execute("UPDATE customers SET email = %s, updated_at = %s WHERE customer_id = %s",
                    (f"moved{moved}.{business_date:%Y%m%d}@example.org", day.ts(0.05, 0.1), moved))

        # ---- orders, items and the events of each shopping session ----------------------
        orders, items, events = [], [], []
        abandoned: list[int] = []
        oid = max_oid
        for _ in range(scale):
            oid += 1
            cid = rng.randint(1, n_customers)
            order_ts = day.ts(0.15, 0.9)
            lines = _basket(rng, catalogue, category_of, rng.randint(1, 4))
            t = order_ts - timedelta(minutes=rng.randint(5, 25))
            for pid, _price in lines:
                events.append(_event(rng, "page_view", t, cid, pid))
                t += timedelta(seconds=rng.randint(20, 120))
                events.append(_event(rng, "add_to_cart", t, cid, pid, quantity=1))
                t += timedelta(seconds=rng.randint(5, 60))
            events.append(_event(rng, "checkout", t, cid))
            orders.append((oid, cid, "placed", order_ts, order_ts))
            for line_no, (pid, price) in enumerate(lines, start=1):
                items.append((oid, line_no, pid, rng.randint(1, 3), price))
            if rng.random() < 0.03:
                abandoned.append(oid)  # inserted, then deleted before payment: no purchase event
            else:
                events.append(_event(rng, "purchase", order_ts, cid, None, order_id=oid, page="/thank-you"))
        # browsing-only sessions, some anonymous
        for _ in range(scale):
            cid = rng.randint(1, n_customers) if rng.random() < 0.7 else None
            t = day.ts(0.0, 0.95)
            for pid, _price in _basket(rng, catalogue, category_of, rng.randint(1, 4)):
                events.append(_event(rng, "page_view", t, cid, pid))
                t += timedelta(seconds=rng.randint(10, 300))
                if rng.random() < 0.2:
                    events.append(_event(rng, "add_to_cart", t, cid, pid, quantity=rng.randint(1, 2)))
        _copy_rows(cur, "orders", ["order_id", "customer_id", "status", "order_ts", "updated_at"], orders)
        _copy_rows(cur, "order_items", ["order_id", "line_no", "product_id", "quantity", "unit_price"], items)
        conn.commit()

        # ---- the day goes on: payments, shipping, cancellations, abandoned carts -------
        if abandoned:
            cur.execute("DELETE FROM order_items WHERE order_id = ANY(%s)", (abandoned,))
            cur.execute("DELETE FROM orders WHERE order_id = ANY(%s)", (abandoned,))
        cur.execute("SELECT order_id, status, updated_at FROM orders WHERE status NOT IN "
                    "('delivered', 'cancelled') ORDER BY order_id")
        transitions = Counter()
        for order_id, status, last_change in cur.fetchall():
            roll = rng.random()
            if roll < 0.05:
                new = "cancelled"
            elif roll < 0.75:
                new = STATUS_NEXT[status]
            else:
                continue
            # after the order's previous change (and not before this day starts)
            changed_at = max(last_change, day.start) + timedelta(minutes=rng.randint(10, 600))
            cur.execute("UPDATE orders SET status = %s, updated_at = %s WHERE order_id = %s",
                        (new, changed_at, order_id))
            transitions[new] += 1
        conn.commit()

    # ---- reviews in DynamoDB ------------------------------------------------------------
    ddb = aws(settings, "dynamodb")
    reviews = 0
    for _ in range(max(scale // 10, 1)):
        pid = rng.choice(catalogue)[0]
        rating = rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 5])[0]
        ddb.put_item(TableName=settings.names.reviews_table, Item={
            "product_id": {"N": str(pid)},
            "review_id": {"S": str(uuid.UUID(int=rng.getrandbits(128), version=4))},
            "customer_id": {"N": str(rng.randint(1, n_customers))},
            "rating": {"N": str(rating)},
            "title": {"S": fake.sentence(nb_words=4)},
            "body": {"S": fake.paragraph(nb_sentences=2)},
            "created_at": {"S": day.ts(0, 1).strftime("%Y-%m-%dT%H:%M:%SZ")},
        })
        reviews += 1

    # ---- late arrivals: yesterday's browsing that reaches the stream only today ---------
    n_late = int(len(events) * late_rate)
    for _ in range(n_late):
        t = day.start - timedelta(seconds=rng.randint(60, 6 * 3600))
        events.append(_event(rng, "page_view", t, rng.randint(1, n_customers), rng.choice(catalogue)[0]))

    # ---- events into Kinesis, in time order, plus the bad ones if asked ----------------
    events.sort(key=lambda e: e["event_ts"])
    good_by_type = Counter(e["event_type"] for e in events)
    payloads = [json.dumps(e).encode() for e in events]
    keys = [str(e["customer_id"] or e["event_id"]) for e in events]
    bad = Counter()
    n_bad = int(len(events) * bad_rate)
    for _ in range(n_bad):
        kind = rng.choice(BAD_KINDS)
        base = rng.choice(events)
        fresh_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if kind == "malformed_json":
            data = json.dumps(base).encode()[: rng.randint(5, 40)]
        elif kind == "missing_field":
            data = json.dumps({k: v for k, v in base.items() if k != "event_type"} | {"event_id": fresh_id}).encode()
        elif kind == "unknown_event_type":
            data = json.dumps({**base, "event_id": fresh_id, "event_type": "refund"}).encode()
        elif kind == "future_timestamp":
            data = json.dumps({**base, "event_id": fresh_id, "event_type": "page_view", "order_id": None,
                               "event_ts": f"2099-{rng.randint(1, 12):02d}-01T00:00:00Z"}).encode()
        elif kind == "oversized_record":
            data = json.dumps({**base, "event_id": fresh_id, "page": "/" + "x" * 80_000}).encode()
        elif kind == "unknown_product":
            data = json.dumps({**base, "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                               "event_type": "page_view", "product_id": UNKNOWN_PRODUCT_ID,
                               "order_id": None}).encode()
        elif kind == "negative_quantity":
            data = json.dumps({**base, "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                               "event_type": "add_to_cart", "product_id": catalogue[0][0],
                               "quantity": -rng.randint(1, 5)}).encode()
        else:  # an exact redelivery of a good record
            data = json.dumps(base).encode()
        pos = rng.randint(0, len(payloads))
        payloads.insert(pos, data)
        keys.insert(pos, str(base["customer_id"] or base["event_id"]))
        bad[kind] += 1
    sent = put_events(settings, payloads, keys)

    summary.update({
        "new_customers": len(customers), "new_products": len(products),
        "orders_inserted": len(orders), "orders_deleted": len(abandoned),
        "items_inserted": len(items), "status_changes": dict(transitions),
        "repriced_product": repriced, "email_changed_customer": moved,
        "events_good": dict(good_by_type), "events_bad": dict(bad), "events_sent": sent,
        "events_late": n_late,
        "reviews_written": reviews,
    })
    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO simulator.runs VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (business_date, seed, scale, json.dumps(summary)))
    return summary


def ledger(settings: Settings) -> dict:
    """Sum of every simulated day: good events by type, bad records by kind, events sent."""
    good, bad, sent = Counter(), Counter(), 0
    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('simulator.runs')")
        if cur.fetchone()[0] is None:
            return {"events_good": {}, "events_bad": {}, "events_sent": 0, "days": 0}
        cur.execute("SELECT summary FROM simulator.runs")
        rows = [r[0] for r in cur.fetchall()]
    for s in rows:
        good.update(s["events_good"])
        bad.update(s["events_bad"])
        sent += s["events_sent"]
    return {"events_good": dict(good), "events_bad": dict(bad), "events_sent": sent, "days": len(rows)}


def change_reviews(settings: Settings, business_date: date, seed: int, n_updates: int,
                   n_deletes: int) -> dict:
    """Edit and delete existing product reviews in DynamoDB (changes the review stream carries).

    Deterministic for a given table state: the reviews are taken in key order and chosen with
    a generator seeded by (seed, business_date); ``n_updates`` of them get another rating and
    an edited body (UpdateItem, only if the review still exists), ``n_deletes`` others are
    deleted (DeleteItem). Returns the counts and the keys touched.
    """
    ddb = aws(settings, "dynamodb")
    items: list[dict] = []
    for page in ddb.get_paginator("scan").paginate(
            TableName=settings.names.reviews_table, ConsistentRead=True,
            ProjectionExpression="product_id, review_id, #r, #b",
            ExpressionAttributeNames={"#r": "rating", "#b": "body"}):
        items.extend(page["Items"])
    items.sort(key=lambda i: (int(i["product_id"]["N"]), i["review_id"]["S"]))
    rng = random.Random(f"{seed}:{business_date.isoformat()}:review-changes")
    chosen = rng.sample(items, k=min(n_updates + n_deletes, len(items)))
    updated, deleted = [], []
    for item in chosen[:n_updates]:
        key = {"product_id": item["product_id"], "review_id": item["review_id"]}
        old = int(item["rating"]["N"]) if "rating" in item else None
        rating = rng.choice([r for r in range(1, 6) if r != old])
        body = (item.get("body", {}).get("S", "") + f" [edited {business_date.isoformat()}]").strip()
        ddb.update_item(
            TableName=settings.names.reviews_table, Key=key,
            UpdateExpression="SET #r = :r, #b = :b", ConditionExpression="attribute_exists(review_id)",
            ExpressionAttributeNames={"#r": "rating", "#b": "body"},
            ExpressionAttributeValues={":r": {"N": str(rating)}, ":b": {"S": body}})
        updated.append([int(item["product_id"]["N"]), item["review_id"]["S"], rating])
    for item in chosen[n_updates:]:
        ddb.delete_item(TableName=settings.names.reviews_table,
                        Key={"product_id": item["product_id"], "review_id": item["review_id"]})
        deleted.append([int(item["product_id"]["N"]), item["review_id"]["S"]])
    return {"business_date": business_date.isoformat(), "seed": seed,
            "reviews_updated": len(updated), "reviews_deleted": len(deleted),
            "updated": updated, "deleted": deleted}
