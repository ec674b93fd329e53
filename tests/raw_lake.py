"""A small, hand-written raw zone (DMS Parquet, Firehose event objects, DynamoDB exports) and
helpers to write it to moto S3 and read the lake back; shared by the jobs, lake and engine tests.

Input: the session's settings. Output: ``write_raw(settings)`` puts the objects in the raw
bucket; ``objects``/``read`` look at a zone afterwards.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq

from lifecycle.clients import aws

START = datetime(2026, 1, 2, tzinfo=UTC)
END = datetime(2026, 1, 3, tzinfo=UTC)

TS = pa.timestamp("us", tz="UTC")
DEC = pa.decimal128(10, 2)
SCHEMAS = {
    "customers": [("customer_id", pa.int64()), ("email", pa.string()), ("full_name", pa.string()),
                  ("phone", pa.string()), ("country", pa.string()), ("created_at", TS),
                  ("updated_at", TS)],
    "products": [("product_id", pa.int64()), ("sku", pa.string()), ("name", pa.string()),
                 ("category", pa.string()), ("description", pa.string()), ("unit_price", DEC),
                 ("active", pa.bool_()), ("updated_at", TS)],
    "orders": [("order_id", pa.int64()), ("customer_id", pa.int64()), ("status", pa.string()),
               ("order_ts", TS), ("updated_at", TS)],
    "order_items": [("order_id", pa.int64()), ("line_no", pa.int32()), ("product_id", pa.int64()),
                    ("quantity", pa.int32()), ("unit_price", DEC)],
}
KEYS = {"customers": ["customer_id"], "products": ["product_id"], "orders": ["order_id"],
        "order_items": ["order_id", "line_no"]}

LOAD = "LOAD00000001.parquet"
CDC1 = "20260102-101500000000-00000000016B3A10.parquet"
CDC2 = "20260102-183000123456-00000000016C0F28.parquet"
CDC3 = "20260103-090000000000-00000000016D0000.parquet"


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


T0, T1, T2 = ts("2026-01-01T00:00:00Z"), ts("2026-01-02T10:15:00Z"), ts("2026-01-02T18:30:00Z")

# Op, _commit_ts, then the table's columns (a delete carries the key only)
RAW_SALES = {
    "customers": {
        LOAD: [
            ("I", T0, 1, "Alice@Example.com", "Alice Smith", "+1 (555) 123-4567", "US", T0, T0),
            ("I", T0, 2, "bob@example.com", "Bob Jones", "555-0100", "GB", T0, T0),
            ("I", T0, 3, "carol@example.com", "Carol King", None, "DE", T0, T0),
        ],
        CDC1: [
            ("U", T1, 2, "bob@example.com", "Bob Jones", "+44 20 7946 0958", "GB", T0, T1),
            ("D", T1, 3, None, None, None, None, None, None),
        ],
        CDC2: [("I", T2, 4, "dave@example.com", "Dave", "12", "FR", T2, T2)],
    },
    "products": {
        LOAD: [
            ("I", T0, 10, "SKU-10", "Mug", "home", "A mug", Decimal("9.99"), True, T0),
            ("I", T0, 11, "SKU-11", "Lamp", "home", None, Decimal("19.50"), True, T0),
            ("I", T0, 12, "SKU-12", "Pen", "office", "Blue, \"fine\"\nink", Decimal("5.00"), True, T0),
        ],
        CDC1: [("U", T1, 11, "SKU-11", "Lamp", "home", None, Decimal("21.00"), False, T1)],
        CDC2: [("D", T2, 12, None, None, None, None, None, None, None)],
    },
    "orders": {
        LOAD: [
            ("I", T0, 100, 1, "placed", ts("2026-01-01T23:30:00Z"), T0),
            ("I", T0, 101, 2, "placed", ts("2026-01-02T00:15:00Z"), T0),
            ("I", T0, 102, 1, "placed", ts("2026-01-02T10:00:00Z"), T0),
        ],
        CDC1: [
            ("U", T1, 100, 1, "paid", ts("2026-01-01T23:30:00Z"), T1),
            # primary-key update 102 -> 103: D of the old key, I of the new row
            ("D", T1, 102, None, None, None, None),
            ("I", T1, 103, 1, "placed", ts("2026-01-02T10:00:00Z"), T1),
        ],
        CDC2: [
            ("I", T2, 104, 4, "placed", ts("2026-01-03T05:00:00Z"), T2),
            ("D", T2, 101, None, None, None, None),
            ("U", T2, 100, 1, "shipped", ts("2026-01-01T23:30:00Z"), T2),
            ("U", T2, 100, 1, "delivered", ts("2026-01-01T23:30:00Z"), T2),  # later in the file wins
        ],
    },
    "order_items": {
        LOAD: [
            ("I", T0, 100, 1, 10, 2, Decimal("9.99")),
            ("I", T0, 100, 2, 11, 1, Decimal("19.50")),
            ("I", T0, 101, 1, 10, 1, Decimal("9.99")),  # its order is deleted later
            ("I", T0, 102, 1, 12, 3, Decimal("5.00")),
        ],
        CDC1: [
            ("D", T1, 102, 1, None, None, None),
            ("I", T1, 103, 1, 12, 3, Decimal("5.00")),
            ("U", T1, 100, 2, 11, 2, Decimal("19.50")),
        ],
        CDC2: [("I", T2, 104, 1, 11, 1, Decimal("21.00"))],
    },
}

EV1 = "events/2026/01/02/10/user-activity-1-2026-01-02-10-00-00-shardId-000000000000-4960000001"
EV2 = "events/2026/01/02/11/user-activity-1-2026-01-02-11-00-00-shardId-000000000001-4960000002"


def ev(**fields) -> str:
    return json.dumps(fields)


RAW_EVENTS = {
    EV1: [
        ev(event_id="e1", event_type="page_view", event_ts="2026-01-02T10:00:00Z", customer_id=1,
           product_id=10, page="/p/10"),
        '{"event_id": "e2", "event_type": "page_view", "event_ts": ',
        ev(event_type="page_view", event_ts="2026-01-02T10:01:00Z", customer_id=1),
        ev(event_id="e4", event_type="refund", event_ts="2026-01-02T10:02:00Z", customer_id=1),
        ev(event_id="e5", event_type="add_to_cart", event_ts="2026-01-02T10:03:00Z", customer_id=2,
           product_id=999, quantity=1),
        ev(event_id="e6", event_type="add_to_cart", event_ts="2026-01-02T10:04:00Z", customer_id=2,
           product_id=10, quantity=-2),
        ev(event_id="e7", event_type="add_to_cart", event_ts="2026-01-02T23:59:59.5Z", customer_id=2,
           product_id=11, quantity=2, page="/p/11"),
        ev(event_id="e8", event_type="page_view", event_ts="2026-01-02T10:05:00Z", customer_id=None,
           product_id=11, page="/p/11"),
        "",
    ],
    EV2: [
        ev(event_id="e8", event_type="page_view", event_ts="2026-01-02T10:05:00Z", customer_id=None,
           product_id=11, page="/p/11"),
        ev(event_id="e9", event_type="checkout", event_ts="2026-01-03T00:00:01+00:00", customer_id=None,
           product_id=None, page="/checkout"),
        ev(event_id="e10", event_type="purchase", event_ts="2026-01-02T12:00:00Z", customer_id=1,
           order_id=100, page="/done"),
        ev(event_id="e11", event_type="page_view", event_ts="2026-01-02T12:01:00Z", customer_id=1,
           product_id=12),
        ev(event_id="e1", event_type="page_view", event_ts="2026-01-02T09:59:00Z", customer_id=1,
           product_id=10, page="/first"),
        ev(event_id="e9", event_type="bogus", event_ts="2026-01-02T12:02:00Z"),
        ev(event_id="e12", event_type="page_view", event_ts="not a time"),
        '{"event_id": "e13", "event_id": "e14", "event_type": "page_view", "event_ts": "2026-01-02T12:03:00Z"}',
        # arrived in hour 2026-01-02T11 but claims to be from 10 days later: a clock bug
        ev(event_id="e16", event_type="page_view", event_ts="2026-01-12T11:00:00Z", customer_id=1),
        # 2026-01-03T11:30 is within a day of arrival (a batch can hold backlog): still valid
        ev(event_id="e17", event_type="page_view", event_ts="2026-01-03T11:30:00Z", customer_id=1),
        ev(event_id="e18", event_type="page_view", event_ts="2026-01-02T11:00:00Z", page="x" * 70_000),
    ],
}
# an object that is not valid UTF-8 must not stop the job: its bad line goes to quarantine
EV3 = "events/2026/01/02/12/user-activity-1-2026-01-02-12-00-00-shardId-000000000000-4960000003"
EV3_BODY = (ev(event_id="e15", event_type="page_view", event_ts="2026-01-02T12:30:00Z").encode()
            + b"\r\n\xff\xfe not text\r\n")

EXPORTS = "reviews/AWSDynamoDB"


def review_item(product_id, review_id, customer_id, rating, created_at, title=None, body=None) -> str:
    item = {"product_id": {"N": str(product_id)}, "review_id": {"S": review_id},
            "customer_id": {"N": str(customer_id)}, "rating": {"N": str(rating)},
            "created_at": {"S": created_at}}
    if title is not None:
        item["title"] = {"S": title}
    if body is not None:
        item["body"] = {"S": body}
    return json.dumps({"Item": item})


RAW_REVIEWS = {
    # exportId -> (lines, complete?)
    "20260101T000000Z": ([review_item(10, "r0", 1, 1, "2026-01-01T08:00:00Z", "old", "gone")], True),
    "20260102T000000Z": ([
        review_item(10, "r1", 1, 5, "2026-01-01T09:00:00Z", "Great mug", "Holds coffee.\nAnd tea ☕"),
        review_item(11, "r2", 2, 3, "2026-01-01T10:30:00.25Z"),
    ], True),
    "20260103T000000Z": ([review_item(12, "r3", 1, 2, "2026-01-02T00:00:00Z")], False),  # no manifest
}



# ---- helpers ----------------------------------------------------------------------------------



def dms_parquet(table: str, rows: list[tuple]) -> bytes:
    schema = pa.schema([("Op", pa.string()), ("_commit_ts", TS), *SCHEMAS[table]])
    cols = list(zip(*rows, strict=True))
    arrays = [pa.array(list(c), type=f.type) for c, f in zip(cols, schema, strict=True)]
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), buf)
    return buf.getvalue()


def write_raw(settings, files: dict[str, dict[str, list[tuple]]] = RAW_SALES, events=True,
              reviews=True) -> None:
    s3, raw = aws(settings, "s3"), settings.names.bucket("raw")
    for table, by_file in files.items():
        for name, rows in by_file.items():
            s3.put_object(Bucket=raw, Key=f"sales/public/{table}/{name}", Body=dms_parquet(table, rows))
    if events:
        for key, lines in RAW_EVENTS.items():
            s3.put_object(Bucket=raw, Key=key, Body="\n".join(lines).encode())
        s3.put_object(Bucket=raw, Key=EV3, Body=EV3_BODY)
    if reviews:
        for export_id, (lines, complete) in RAW_REVIEWS.items():
            s3.put_object(Bucket=raw, Key=f"{EXPORTS}/{export_id}/data/part-00000.json",
                          Body=("\n".join(lines) + "\n").encode())
            if complete:
                s3.put_object(Bucket=raw, Key=f"{EXPORTS}/{export_id}/manifest-summary.json",
                              Body=json.dumps({"itemCount": len(lines)}).encode())


def objects(settings, zone: str) -> dict[str, str]:
    """``{key: ETag}`` of a zone's data objects (not the pipeline's ``_lifecycle/`` state)."""
    s3 = aws(settings, "s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.names.bucket(zone)):
        for o in page.get("Contents", []):
            if not o["Key"].startswith("_lifecycle/"):
                out[o["Key"]] = o["ETag"]
    return out


class LakeTables:
    """``{clean.orders}`` in ``read``'s SQL: the relation over a lake table (``table_sql``);
    ``{clean}`` alone: the zone's ``s3://`` bucket URL."""

    def __init__(self, settings, zone: str):
        self._settings, self._zone = settings, zone

    def __getattr__(self, name: str) -> str:
        from lifecycle.lake.catalog import lake_table

        return table_sql(self._settings, lake_table(name))

    def __format__(self, spec: str) -> str:
        return f"s3://{self._settings.names.bucket(self._zone)}"


def read(settings, sql: str) -> list[tuple]:
    from lifecycle.clients import connect_duckdb

    with connect_duckdb(settings) as con:
        return con.execute(sql.format(clean=LakeTables(settings, "clean"), curated=LakeTables(settings, "curated"),
                                      quarantine=f"s3://{settings.names.bucket('quarantine')}")).fetchall()


def table_sql(settings, spec) -> str:
    """A DuckDB relation over a clean or curated table as its readers see it: ``iceberg_scan``
    of Glue's metadata location (no rows, the contract's columns, before the first commit)."""
    from lifecycle.lake import iceberg

    return iceberg.scan_sql(settings, spec)
