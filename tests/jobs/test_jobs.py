"""The Glue-style clean jobs on a small, hand-written raw zone in moto S3.

Input: DMS Parquet (a LOAD file and CDC files with an update, deletes and a primary-key
update written as D + I), Firehose-layout event objects with one record of every bad kind
and duplicates, and three DynamoDB exports (the newest one incomplete).
Asserts: the exact clean rows, the quarantine reasons, the PII masking, the Iceberg tables in
the Glue Catalog and their partitions, no commit on a rerun (and the same rows when rebuilt),
stale partitions removed, empty inputs.
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
    from lifecycle.lake import catalog, iceberg

    reset_lake(settings)
    result = run_lake_clean(settings, START, END)
    assert result["rows_out"] == {t: 0 for t in
                                  ["customers", "products", "orders", "order_items", "order_status_history",
                                   "events", "reviews", "sessions", "product_features",
                                   "customer_features", "training_repeat_purchase"]}
    assert result["rejected"] == 0
    # every table exists, with a snapshot of no rows (and no data file)
    for name, spec in catalog.CLEAN_TABLES.items():
        assert result["catalog"][name]["table"] == "iceberg" and result["catalog"][name]["rows"] == 0, name
        assert iceberg.partitions(settings, spec) == []
    assert read(settings, "SELECT count(*) FROM {clean.customers}") == [(0,)]


@pytest.fixture(scope="module")
def cleaned(settings):
    from lifecycle.jobs.engine.runner import run_lake_clean

    reset_lake(settings)
    write_raw(settings)
    first = run_lake_clean(settings, START, END)
    return first, lake_state(settings)


def lake_state(settings) -> dict:
    """What a rerun must not change: every lake table's current snapshot, the quarantine objects."""
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import CLEAN_TABLES, CURATED_TABLES

    tables = iceberg.describe_tables(settings, [*CLEAN_TABLES.values(), *CURATED_TABLES.values()])
    return {"snapshots": {t: d["snapshot_id"] for t, d in tables.items()},
            "quarantine": objects(settings, "quarantine")}


def table_rows(settings) -> dict:
    from lifecycle.lake.catalog import CLEAN_TABLES

    return {t: read(settings, f"SELECT * FROM {{clean.{t}}} ORDER BY ALL") for t in CLEAN_TABLES}


def test_order_status_history_is_scd2_replayed_from_cdc(settings, cleaned):
    rows = read(settings, """SELECT order_id, status, valid_from, valid_to, is_current, change_op
                             FROM {clean.order_status_history}
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
                               FROM {clean.orders}
                               ORDER BY order_id""")
    assert orders == [
        (100, 1, "delivered", ts("2026-01-01T23:30:00Z"), datetime(2026, 1, 1).date()),
        (103, 1, "placed", ts("2026-01-02T10:00:00Z"), datetime(2026, 1, 2).date()),
        (104, 4, "placed", ts("2026-01-03T05:00:00Z"), datetime(2026, 1, 3).date()),
    ]
    items = read(settings, """SELECT order_id, line_no, product_id, quantity, unit_price, order_date
                              FROM {clean.order_items}
                              ORDER BY order_id, line_no""")
    assert items == [
        (100, 1, 10, 2, Decimal("9.99"), datetime(2026, 1, 1).date()),
        (100, 2, 11, 2, Decimal("19.50"), datetime(2026, 1, 1).date()),
        (103, 1, 12, 3, Decimal("5.00"), datetime(2026, 1, 2).date()),
        (104, 1, 11, 1, Decimal("21.00"), datetime(2026, 1, 3).date()),
    ]
    products = read(settings, "SELECT * FROM {clean.products} ORDER BY product_id")
    assert products == [
        (10, "SKU-10", "Mug", "home", "A mug", Decimal("9.99"), True, T0),
        (11, "SKU-11", "Lamp", "home", None, Decimal("21.00"), False, T1),
    ]


def test_clean_tables_are_iceberg_one_file_a_partition(settings, cleaned):
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import CLEAN_TABLES

    files = {t: iceberg.data_files(iceberg.load_table(settings, spec)) for t, spec in CLEAN_TABLES.items()}
    assert {t: sorted(f.values()) for t, f in files.items()} == {
        "customers": [""], "products": [""], "reviews": [""],
        "events": ["2026-01-02", "2026-01-03"],
        "order_items": ["2026-01-01", "2026-01-02", "2026-01-03"],
        "order_status_history": ["2026-01-01", "2026-01-02", "2026-01-03"],
        "orders": ["2026-01-01", "2026-01-02", "2026-01-03"],
        "sessions": ["2026-01-02", "2026-01-03"],
    }
    clean = settings.names.bucket("clean")
    # Iceberg's layout: data/<partition>/ under the table's location in the clean bucket
    assert all(uri.startswith(f"s3://{clean}/{t}/data/") for t, f in files.items() for uri in f)
    (item_file,) = [u for u, v in files["order_items"].items() if v == "2026-01-01"]
    schema = read(settings, f"DESCRIBE SELECT * FROM read_parquet('{item_file}')")
    assert [(c, t) for c, t, *_ in schema] == [
        ("order_id", "BIGINT"), ("line_no", "INTEGER"), ("product_id", "BIGINT"),
        ("quantity", "INTEGER"), ("unit_price", "DECIMAL(10,2)"), ("order_date", "DATE")]
    (order_file,) = [u for u, v in files["orders"].items() if v == "2026-01-01"]
    schema = read(settings, f"DESCRIBE SELECT * FROM read_parquet('{order_file}')")
    assert ("order_ts", "TIMESTAMP WITH TIME ZONE") in [(c, t) for c, t, *_ in schema]


def test_customers_pii_is_masked(settings, cleaned):
    salt = aws(settings, "secretsmanager").get_secret_value(
        SecretId=settings.names.pii_salt_secret)["SecretString"]
    rows = read(settings, "SELECT * FROM {clean.customers} ORDER BY customer_id")

    def h(email: str) -> str:
        return hashlib.sha256((salt + email.lower()).encode()).hexdigest()

    assert rows == [
        (1, h("Alice@Example.com"), "A***", "*******4567", "US", T0, T0),
        (2, h("bob@example.com"), "B***", "********0958", "GB", T0, T1),
        (4, h("dave@example.com"), "D***", "12", "FR", T2, T2),
    ]
    cols = [c for c, *_ in read(settings, "DESCRIBE SELECT * FROM {clean.customers}")]
    assert not {"email", "full_name", "phone"} & set(cols)


def test_events_valid_and_quarantined(settings, cleaned):
    result, _ = cleaned
    events = result["jobs"]["clean_events"]
    assert events["rows_in"] == {"events": 21, "clean.products": 2}
    assert events["rows_out"] == {"events": 7}
    assert events["rejected"] == 14

    rows = read(settings, """SELECT event_id, event_type, event_ts, customer_id, product_id, order_id,
                                    page, quantity, event_date
                             FROM {clean.events}
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
    rows = read(settings, "SELECT * FROM {clean.reviews} ORDER BY review_id")
    assert rows == [
        (10, "r1", 1, 5, "Great mug", "Holds coffee.\nAnd tea ☕", ts("2026-01-01T09:00:00Z")),
        (11, "r2", 2, 3, None, None, ts("2026-01-01T10:30:00.25Z")),
    ]


def test_glue_catalog(settings, cleaned):
    from lifecycle.lake import catalog, iceberg

    assert {t: iceberg.partitions(settings, spec) for t, spec in catalog.CLEAN_TABLES.items()} == {
        "customers": [], "products": [], "reviews": [],
        "order_status_history": ["2026-01-01", "2026-01-02", "2026-01-03"],
        "orders": ["2026-01-01", "2026-01-02", "2026-01-03"],
        "order_items": ["2026-01-01", "2026-01-02", "2026-01-03"],
        "events": ["2026-01-02", "2026-01-03"],
        "sessions": ["2026-01-02", "2026-01-03"],
    }
    glue = aws(settings, "glue")
    t = glue.get_table(DatabaseName=settings.names.clean_database, Name="order_items")["Table"]
    assert t["Parameters"]["table_type"] == "ICEBERG"
    assert t["Parameters"]["metadata_location"].startswith(f"s3://{settings.names.bucket('clean')}/order_items/metadata/")
    # pyiceberg writes the schema as the Glue columns (Athena's and Spectrum's view of it)
    assert [(c["Name"], c["Type"]) for c in t["StorageDescriptor"]["Columns"]] == [
        ("order_id", "bigint"), ("line_no", "int"), ("product_id", "bigint"), ("quantity", "int"),
        ("unit_price", "decimal(10,2)"), ("order_date", "date")]
    table = iceberg.load_table(settings, catalog.CLEAN_TABLES["order_items"])
    assert table.format_version == 2
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [("order_date", "identity")]


def test_rerun_commits_nothing_and_a_rebuild_gives_the_same_rows(settings, cleaned):
    from lifecycle.jobs.engine.runner import run_lake_clean

    first, state = cleaned
    rows = table_rows(settings)
    # with job bookmarks (the default) a rerun finds nothing new: no row processed, no commit
    second = run_lake_clean(settings, START, END)
    assert lake_state(settings) == state
    assert {j["mode"] for j in second["jobs"].values()} == {"incremental"}
    assert set(second["rows_out"].values()) <= {0} and second["rejected"] == 0
    assert all(state["snapshots"].values())
    # without them everything is reprocessed: new snapshots of the same rows
    from lifecycle.jobs.engine.runner import run_job

    third = {job: run_job(settings, job, START, END, bookmark_option="job-bookmark-disable")
             for job in first["jobs"]}
    assert table_rows(settings) == rows
    assert objects(settings, "quarantine") == state["quarantine"]
    assert {t: n for j in third.values() for t, n in j["rows_out"].items()} == first["rows_out"]
    assert sum(j["rejected"] for j in third.values()) == first["rejected"]


def test_stale_partitions_disappear(settings, cleaned):
    """Deleting the only order of a day removes that partition from the table's snapshot."""
    from lifecycle.jobs.engine.runner import run_lake_clean
    from lifecycle.lake import catalog, iceberg

    s3 = aws(settings, "s3")
    s3.put_object(Bucket=settings.names.bucket("raw"), Key=f"sales/public/orders/{CDC3}",
                  Body=dms_parquet("orders", [("D", ts("2026-01-03T09:00:00Z"), 104, None, None, None, None)]))
    try:
        result = run_lake_clean(settings, START, END)
        assert result["rows_out"]["orders"] == 2 and result["rows_out"]["order_items"] == 3
        parts = {t: iceberg.partitions(settings, catalog.CLEAN_TABLES[t])
                 for t in ("orders", "order_items", "order_status_history")}
        assert parts["orders"] == parts["order_items"] == ["2026-01-01", "2026-01-02"]
        # the status history keeps the deleted order's closed version, in its day
        assert parts["order_status_history"] == ["2026-01-01", "2026-01-02", "2026-01-03"]
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
    run_lake_clean(settings, START, END)  # bookmarks current, whatever the tests before left
    s3.put_object(Bucket=raw, Key=f"sales/public/orders/{name}", Body=buf.getvalue())
    s3.put_object(Bucket=raw, Key=f"sales/public/customers/{name}", Body=cbuf.getvalue())
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import CLEAN_TABLES

    before = iceberg.data_files(iceberg.load_table(settings, CLEAN_TABLES["orders"]))
    try:
        result = run_lake_clean(settings, START, END)
        sales = result["jobs"]["clean_sales"]
        assert sales["mode"] == "incremental"
        assert sales["columns_added"] == {"orders": ["gift_wrap"]}
        # a schema change, no rewrite: the files of the days order 105 is not on are the same
        after = iceberg.data_files(iceberg.load_table(settings, CLEAN_TABLES["orders"]))
        untouched = {u: p for u, p in before.items() if p != "2026-01-03"}
        assert untouched and untouched.items() <= after.items()
        assert sales["columns_held_back"] == {"customers": ["date_of_birth"]}
        rows = read(settings, """SELECT order_id, gift_wrap FROM {clean.orders} ORDER BY order_id""")
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
