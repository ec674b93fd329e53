"""The Glue-style clean jobs on a small, hand-written raw zone in moto S3.

Input: DMS Parquet (a LOAD file and CDC files with an update, deletes and a primary-key
update written as D + I), Firehose-layout event objects with one record of every bad kind
and duplicates, and three DynamoDB exports (the newest one incomplete).
Asserts: the exact clean rows, the quarantine reasons, the PII masking, the Glue tables and
partitions, byte-identical objects on a rerun, stale partitions removed, empty inputs.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import reset_lake
from raw_lake import (
    CDC3,
    END,
    EV1,
    EV2,
    EV3,
    RAW_EVENTS,
    SCHEMAS,
    START,
    T0,
    T1,
    T2,
    TS,
    dms_parquet,
    objects,
    read,
    ts,
    write_raw,
)

from lifecycle.clients import aws

# ---- tests --------------------------------------------------------------------------------------

def test_get_resolved_options():
    from lifecycle.jobs.engine.contract import JobError, get_resolved_options

    argv = ["script.py", "--JOB_NAME", "j", "--raw_bucket=r", "--extra", "x", "--clean_bucket", "c"]
    assert get_resolved_options(argv, ["JOB_NAME", "raw_bucket", "clean_bucket"]) == {
        "JOB_NAME": "j", "raw_bucket": "r", "clean_bucket": "c"}
    with pytest.raises(JobError, match="--interval_start"):
        get_resolved_options(argv, ["JOB_NAME", "interval_start"])


def test_empty_raw_zone_gives_empty_tables(settings):
    from lifecycle.jobs.engine.runner import run_lake_clean
    from lifecycle.lake import catalog

    reset_lake(settings)
    result = run_lake_clean(settings, START, END)
    assert result["rows_out"] == {t: 0 for t in
                                  ["customers", "products", "orders", "order_items", "order_status_history",
                                   "events", "reviews", "sessions", "product_features",
                                   "customer_features", "training_repeat_purchase"]}
    assert result["rejected"] == 0
    keys = set(objects(settings, "clean"))
    # unpartitioned tables get an empty file with the schema; partitioned ones no objects
    assert {"customers/data_0.parquet", "products/data_0.parquet", "reviews/data_0.parquet"} <= keys
    assert not [k for k in keys if k.startswith(("orders/", "order_items/", "events/", "sessions/"))]
    assert read(settings, "SELECT count(*) FROM '{clean}/customers/data_0.parquet'") == [(0,)]
    tables = catalog.list_tables(settings)
    assert {t: tables[t] for t in catalog.CLEAN_TABLES} == {t: [] for t in catalog.CLEAN_TABLES}


@pytest.fixture(scope="module")
def cleaned(settings):
    from lifecycle.jobs.engine.runner import run_lake_clean

    reset_lake(settings)
    write_raw(settings)
    first = run_lake_clean(settings, START, END)
    snapshot = {zone: objects(settings, zone) for zone in ("clean", "quarantine")}
    return first, snapshot


def test_order_status_history_is_scd2_replayed_from_cdc(settings, cleaned):
    rows = read(settings, """SELECT order_id, status, valid_from, valid_to, is_current, change_op
                             FROM read_parquet('{clean}/order_status_history/*/*.parquet')
                             ORDER BY order_id, valid_from, status""")
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        (100, "placed", T0, T1, False),
        (100, "paid", T1, T2, False),
        (100, "delivered", T2, None, True),
        (100, "shipped", T2, T2, False),
        (101, "placed", T0, T2, False),   # deleted at T2: its last version is closed
        (102, "placed", T0, T1, False),   # the old key of a primary-key update
        (103, "placed", T1, None, True),
        (104, "placed", T2, None, True),
    ]


def test_sales_current_state(settings, cleaned):
    result, _ = cleaned
    sales = result["jobs"]["clean_sales"]
    assert sales["rows_in"] == {"customers": 6, "products": 5, "orders": 10, "order_items": 8}
    assert sales["rows_out"] == {"customers": 3, "products": 2, "orders": 3, "order_items": 4,
                                 "order_status_history": 8}

    orders = read(settings, """SELECT order_id, customer_id, status, order_ts, order_date
                               FROM read_parquet('{clean}/orders/*/*.parquet', hive_partitioning=true)
                               ORDER BY order_id""")
    assert orders == [
        (100, 1, "delivered", ts("2026-01-01T23:30:00Z"), datetime(2026, 1, 1).date()),
        (103, 1, "placed", ts("2026-01-02T10:00:00Z"), datetime(2026, 1, 2).date()),
        (104, 4, "placed", ts("2026-01-03T05:00:00Z"), datetime(2026, 1, 3).date()),
    ]
    items = read(settings, """SELECT order_id, line_no, product_id, quantity, unit_price, order_date
                              FROM read_parquet('{clean}/order_items/*/*.parquet', hive_partitioning=true)
                              ORDER BY order_id, line_no""")
    assert items == [
        (100, 1, 10, 2, Decimal("9.99"), datetime(2026, 1, 1).date()),
        (100, 2, 11, 2, Decimal("19.50"), datetime(2026, 1, 1).date()),
        (103, 1, 12, 3, Decimal("5.00"), datetime(2026, 1, 2).date()),
        (104, 1, 11, 1, Decimal("21.00"), datetime(2026, 1, 3).date()),
    ]
    products = read(settings, "SELECT * FROM '{clean}/products/data_0.parquet' ORDER BY product_id")
    assert products == [
        (10, "SKU-10", "Mug", "home", "A mug", Decimal("9.99"), True, T0),
        (11, "SKU-11", "Lamp", "home", None, Decimal("21.00"), False, T1),
    ]


def test_clean_objects_and_parquet_types(settings, cleaned):
    _, snapshot = cleaned
    assert sorted(snapshot["clean"]) == [
        "customers/data_0.parquet",
        "events/event_date=2026-01-02/data_0.parquet",
        "events/event_date=2026-01-03/data_0.parquet",
        "order_items/order_date=2026-01-01/data_0.parquet",
        "order_items/order_date=2026-01-02/data_0.parquet",
        "order_items/order_date=2026-01-03/data_0.parquet",
        "order_status_history/order_date=2026-01-01/data_0.parquet",
        "order_status_history/order_date=2026-01-02/data_0.parquet",
        "order_status_history/order_date=2026-01-03/data_0.parquet",
        "orders/order_date=2026-01-01/data_0.parquet",
        "orders/order_date=2026-01-02/data_0.parquet",
        "orders/order_date=2026-01-03/data_0.parquet",
        "products/data_0.parquet",
        "reviews/data_0.parquet",
        "sessions/session_date=2026-01-02/data_0.parquet",
        "sessions/session_date=2026-01-03/data_0.parquet",
    ]
    schema = read(settings, "DESCRIBE SELECT * FROM read_parquet("
                  "'{clean}/order_items/order_date=2026-01-01/data_0.parquet', hive_partitioning=false)")
    assert [(c, t) for c, t, *_ in schema] == [
        ("order_id", "BIGINT"), ("line_no", "INTEGER"), ("product_id", "BIGINT"),
        ("quantity", "INTEGER"), ("unit_price", "DECIMAL(10,2)")]
    schema = read(settings, "DESCRIBE SELECT * FROM read_parquet("
                  "'{clean}/orders/order_date=2026-01-01/data_0.parquet', hive_partitioning=false)")
    assert ("order_ts", "TIMESTAMP WITH TIME ZONE") in [(c, t) for c, t, *_ in schema]


def test_customers_pii_is_masked(settings, cleaned):
    salt = aws(settings, "secretsmanager").get_secret_value(
        SecretId=settings.names.pii_salt_secret)["SecretString"]
    rows = read(settings, "SELECT * FROM '{clean}/customers/data_0.parquet' ORDER BY customer_id")

    def h(email: str) -> str:
        return hashlib.sha256((salt + email.lower()).encode()).hexdigest()

    assert rows == [
        (1, h("Alice@Example.com"), "A***", "*******4567", "US", T0, T0),
        (2, h("bob@example.com"), "B***", "********0958", "GB", T0, T1),
        (4, h("dave@example.com"), "D***", "12", "FR", T2, T2),
    ]
    cols = [c for c, *_ in read(settings, "DESCRIBE SELECT * FROM '{clean}/customers/data_0.parquet'")]
    assert not {"email", "full_name", "phone"} & set(cols)


def test_events_valid_and_quarantined(settings, cleaned):
    result, _ = cleaned
    events = result["jobs"]["clean_events"]
    assert events["rows_in"] == {"events": 21, "clean.products": 2}
    assert events["rows_out"] == {"events": 7}
    assert events["rejected"] == 14

    rows = read(settings, """SELECT event_id, event_type, event_ts, customer_id, product_id, order_id,
                                    page, quantity, event_date
                             FROM read_parquet('{clean}/events/*/*.parquet', hive_partitioning=true)
                             ORDER BY event_id""")
    d2, d3 = datetime(2026, 1, 2).date(), datetime(2026, 1, 3).date()
    assert rows == [
        ("e1", "page_view", ts("2026-01-02T10:00:00Z"), 1, 10, None, "/p/10", None, d2),
        ("e10", "purchase", ts("2026-01-02T12:00:00Z"), 1, None, 100, "/done", None, d2),
        ("e15", "page_view", ts("2026-01-02T12:30:00Z"), None, None, None, None, None, d2),
        ("e17", "page_view", ts("2026-01-03T11:30:00Z"), 1, None, None, None, None, d3),
        ("e7", "add_to_cart", ts("2026-01-02T23:59:59.5Z"), 2, 11, None, "/p/11", 2, d2),
        ("e8", "page_view", ts("2026-01-02T10:05:00Z"), None, 11, None, "/p/11", None, d2),
        ("e9", "checkout", ts("2026-01-03T00:00:01Z"), None, None, None, "/checkout", None, d3),
    ]
    rejected = read(settings, """SELECT source, reason, raw_key, payload
                                 FROM '{quarantine}/events/data_0.parquet'""")
    got = sorted((r[1], r[2], r[3]) for r in rejected)
    l1, l2 = RAW_EVENTS[EV1], RAW_EVENTS[EV2]
    assert {r[0] for r in rejected} == {"events"}
    assert got == sorted([
        ("malformed_json", EV1, l1[1]),
        ("malformed_json", EV2, l2[7]),  # duplicate keys
        ("malformed_json", EV3, "\\xff\\xfe not text"),  # not UTF-8: kept with escapes
        ("missing_field", EV1, l1[2]),
        ("missing_field", EV2, l2[6]),
        ("unknown_event_type", EV1, l1[3]),
        ("unknown_event_type", EV2, l2[5]),
        ("unknown_product", EV1, l1[4]),
        ("unknown_product", EV2, l2[3]),  # product 12 was deleted at the source
        ("negative_quantity", EV1, l1[5]),
        ("future_timestamp", EV2, l2[8]),
        ("oversized_record", EV2, l2[10]),
        ("duplicate_event_id", EV2, l2[4]),  # e1 arrived first in EV1: the first delivery wins
        ("duplicate_event_id", EV2, l2[0]),
    ])


def test_reviews_from_newest_complete_export(settings, cleaned):
    result, _ = cleaned
    assert result["jobs"]["clean_reviews"]["rows_in"] == {"reviews": 2}
    rows = read(settings, "SELECT * FROM '{clean}/reviews/data_0.parquet' ORDER BY review_id")
    assert rows == [
        (10, "r1", 1, 5, "Great mug", "Holds coffee.\nAnd tea ☕", ts("2026-01-01T09:00:00Z")),
        (11, "r2", 2, 3, None, None, ts("2026-01-01T10:30:00.25Z")),
    ]


def test_glue_catalog(settings, cleaned):
    from lifecycle.lake import catalog

    tables = catalog.list_tables(settings)
    assert {t: tables[t] for t in catalog.CLEAN_TABLES} == {
        "customers": [], "products": [], "reviews": [],
        "order_status_history": ["2026-01-01", "2026-01-02", "2026-01-03"],
        "orders": ["2026-01-01", "2026-01-02", "2026-01-03"],
        "order_items": ["2026-01-01", "2026-01-02", "2026-01-03"],
        "events": ["2026-01-02", "2026-01-03"],
        "sessions": ["2026-01-02", "2026-01-03"],
    }
    glue = aws(settings, "glue")
    t = glue.get_table(DatabaseName=settings.names.clean_database, Name="order_items")["Table"]
    sd = t["StorageDescriptor"]
    assert sd["Location"] == f"s3://{settings.names.bucket('clean')}/order_items/"
    assert sd["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == [
        ("order_id", "bigint"), ("line_no", "int"), ("product_id", "bigint"), ("quantity", "int"),
        ("unit_price", "decimal(10,2)")]
    assert [(k["Name"], k["Type"]) for k in t["PartitionKeys"]] == [("order_date", "date")]
    p = glue.get_partition(DatabaseName=settings.names.clean_database, TableName="order_items",
                           PartitionValues=["2026-01-02"])["Partition"]
    assert p["StorageDescriptor"]["Location"] == (
        f"s3://{settings.names.bucket('clean')}/order_items/order_date=2026-01-02/")


def test_rerun_gives_identical_objects(settings, cleaned):
    from lifecycle.jobs.engine.runner import run_lake_clean
    from lifecycle.lake.catalog import CLEAN_TABLES, CURATED_TABLES

    first, snapshot = cleaned
    curated = {t: first["catalog"][t]["metadata_location"] for t in CURATED_TABLES}
    # with job bookmarks (the default) a rerun finds nothing new: no row processed
    second = run_lake_clean(settings, START, END)
    assert {zone: objects(settings, zone) for zone in ("clean", "quarantine")} == snapshot
    assert {j["mode"] for j in second["jobs"].values()} == {"incremental"}
    assert set(second["rows_out"].values()) <= {0} and second["rejected"] == 0
    assert all(c == {"table": "unchanged", "partitions_added": 0, "partitions_removed": 0}
               for t, c in second["catalog"].items() if t in CLEAN_TABLES)
    # the curated Iceberg tables: no new commit (the same metadata file is current)
    assert {t: second["catalog"][t]["metadata_location"] for t in CURATED_TABLES} == curated
    assert all(curated.values())
    # without them everything is reprocessed, into the same bytes
    from lifecycle.jobs.engine.runner import run_job

    third = {job: run_job(settings, job, START, END, bookmark_option="job-bookmark-disable")
             for job in first["jobs"]}
    assert {zone: objects(settings, zone) for zone in ("clean", "quarantine")} == snapshot
    assert {t: n for j in third.values() for t, n in j["rows_out"].items()} == first["rows_out"]
    assert sum(j["rejected"] for j in third.values()) == first["rejected"]


def test_stale_partitions_disappear(settings, cleaned):
    """Deleting the only order of a day removes that partition from S3 and the catalog."""
    from lifecycle.jobs.engine.runner import run_lake_clean
    from lifecycle.lake import catalog

    s3 = aws(settings, "s3")
    s3.put_object(Bucket=settings.names.bucket("raw"), Key=f"sales/public/orders/{CDC3}",
                  Body=dms_parquet("orders", [("D", ts("2026-01-03T09:00:00Z"), 104, None, None, None, None)]))
    try:
        result = run_lake_clean(settings, START, END)
        assert result["rows_out"]["orders"] == 2 and result["rows_out"]["order_items"] == 3
        assert result["catalog"]["orders"]["partitions_removed"] == 1
        # the status history keeps the deleted order's closed version, in its day
        assert not [k for k in objects(settings, "clean") if "order_date=2026-01-03" in k
                    and not k.startswith("order_status_history/")]
        tables = catalog.list_tables(settings)
        assert tables["orders"] == tables["order_items"] == ["2026-01-01", "2026-01-02"]
    finally:
        s3.delete_object(Bucket=settings.names.bucket("raw"), Key=f"sales/public/orders/{CDC3}")


def test_runner_command_line(settings, cleaned, capsys):
    """``python -m lifecycle.jobs.engine.runner --JOB_NAME <job> ...`` runs one job from the environment."""
    from lifecycle.jobs.engine.runner import main

    result = main(["runner", "--JOB_NAME", "clean_reviews", "--interval_start", START.isoformat(),
                   "--interval_end", END.isoformat(), "--job-bookmark-option", "job-bookmark-disable"])
    assert result["rows_out"] == {"reviews": 2}
    assert json.loads(capsys.readouterr().out)["job"] == "clean_reviews"


def test_a_new_source_column_flows_to_clean_catalog_and_landing(settings, cleaned):
    """Additive schema change: a nullable column added in the source reaches the clean table,
    the Glue Catalog and the warehouse; a new column of the PII table is held back."""
    from lifecycle.clients import pg
    from lifecycle.jobs.engine.runner import run_lake_clean
    from lifecycle.warehouse.load import load_landing

    s3, raw = aws(settings, "s3"), settings.names.bucket("raw")
    schema = pa.schema([("Op", pa.string()), ("_commit_ts", TS), *SCHEMAS["orders"], ("gift_wrap", pa.bool_())])
    row = [("I",), (T2,), (105,), (4,), ("placed",), (ts("2026-01-03T06:00:00Z"),), (T2,), (True,)]
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_arrays([pa.array(list(c), type=f.type) for c, f in zip(row, schema, strict=True)],
                                        schema=schema), buf)
    cust_schema = pa.schema([("Op", pa.string()), ("_commit_ts", TS), *SCHEMAS["customers"],
                             ("date_of_birth", pa.string())])
    cust = [("I",), (T2,), (5,), ("eve@example.com",), ("Eve",), (None,), ("US",), (T2,), (T2,), ("1990-01-01",)]
    cbuf = io.BytesIO()
    pq.write_table(pa.Table.from_arrays([pa.array(list(c), type=f.type) for c, f in zip(cust, cust_schema, strict=True)],
                                        schema=cust_schema), cbuf)
    name = "20260103-070000000000-00000000000000FF.parquet"
    s3.put_object(Bucket=raw, Key=f"sales/public/orders/{name}", Body=buf.getvalue())
    s3.put_object(Bucket=raw, Key=f"sales/public/customers/{name}", Body=cbuf.getvalue())
    try:
        result = run_lake_clean(settings, START, END)
        sales = result["jobs"]["clean_sales"]
        assert sales["columns_added"] == {"orders": ["gift_wrap"]}
        assert sales["columns_held_back"] == {"customers": ["date_of_birth"]}
        rows = read(settings, """SELECT order_id, gift_wrap FROM read_parquet('{clean}/orders/*/*.parquet',
                                 hive_partitioning=true) ORDER BY order_id""")
        assert rows == [(100, None), (103, None), (104, None), (105, True)]
        glue = aws(settings, "glue").get_table(DatabaseName=settings.names.clean_database, Name="orders")["Table"]
        assert [c["Name"] for c in glue["StorageDescriptor"]["Columns"]][-1] == "gift_wrap"
        cust_cols = [c["Name"] for c in aws(settings, "glue").get_table(
            DatabaseName=settings.names.clean_database, Name="customers")["Table"]["StorageDescriptor"]["Columns"]]
        assert "date_of_birth" not in cust_cols
        load_landing(settings, START, END, tables=["orders"])
        with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
            cur.execute("SELECT order_id, gift_wrap FROM landing.orders ORDER BY order_id")
            assert cur.fetchall() == [(100, None), (103, None), (104, None), (105, True)]
    finally:
        s3.delete_object(Bucket=raw, Key=f"sales/public/orders/{name}")
        s3.delete_object(Bucket=raw, Key=f"sales/public/customers/{name}")
        run_lake_clean(settings, START, END)
