"""Clean zone → ``warehouse.landing`` with COPY: counts and checksums reconcile, reruns replace.

Input: a generated raw zone (DMS LOAD + one CDC file per sales table, Firehose event objects,
a DynamoDB export) turned into the clean zone by the real jobs.
Asserts: per landing table the row count and a checksum over every column equal the same
over the clean Parquet (read by DuckDB); ``load_manifest`` lists every object with its rows;
a rerun (with any transfer method) leaves the same rows, not twice as many; the binary method
(DuckDB's postgres extension) loads the same rows as the CSV pipe, in one Postgres transaction
with the lock, the deletes and the manifest rows, and a failure before its commit leaves the
previous state whole.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime

import pytest
from conftest import reset_lake

from lifecycle.clients import aws, pg

START = datetime(2026, 1, 5, tzinfo=UTC)
END = datetime(2026, 1, 6, tzinfo=UTC)

SCALE = {"customers": 2_000, "products": 500, "orders": 20_000, "events": 60_000, "reviews": 2_000}





# DuckDB SELECTs that produce DMS rows: Op, _commit_ts, then the source columns
_T0 = "TIMESTAMPTZ '2026-01-01 00:00:00+00'"
SALES_LOAD = {
    "customers": f"""SELECT 'I' AS Op, {_T0} AS _commit_ts, i::BIGINT AS customer_id,
        'User' || i || '@Example.com' AS email, 'Name ' || i AS full_name,
        CASE WHEN i % 7 = 0 THEN NULL ELSE '+1 555 ' || lpad((i * 37 % 10000000)::VARCHAR, 7, '0') END AS phone,
        ['US', 'GB', 'DE', 'FR'][i % 4 + 1] AS country,
        {_T0} - to_days(i % 300) AS created_at, {_T0} AS updated_at
        FROM range(1, {{customers}} + 1) t(i)""",
    "products": f"""SELECT 'I' AS Op, {_T0} AS _commit_ts, i::BIGINT AS product_id, 'SKU-' || i AS sku,
        'Product ' || i AS name, ['home', 'office', 'garden'][i % 3 + 1] AS category,
        CASE WHEN i % 5 = 0 THEN NULL ELSE 'Desc, "quoted"' || chr(10) || 'line ' || i END AS description,
        ((i * 137 % 10000) / 100.0 + 1)::DECIMAL(10,2) AS unit_price, i % 11 <> 0 AS active,
        {_T0} AS updated_at
        FROM range(1, {{products}} + 1) t(i)""",
    "orders": f"""SELECT 'I' AS Op, {_T0} AS _commit_ts, i::BIGINT AS order_id,
        (i % {{customers}} + 1)::BIGINT AS customer_id,
        ['placed', 'paid', 'shipped', 'delivered', 'cancelled'][i % 5 + 1] AS status,
        TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i * 97 % (5 * 86400)) AS order_ts,
        {_T0} AS updated_at
        FROM range(1, {{orders}} + 1) t(i)""",
    "order_items": f"""SELECT 'I' AS Op, {_T0} AS _commit_ts, o::BIGINT AS order_id, l::INTEGER AS line_no,
        ((o * 31 + l) % {{products}} + 1)::BIGINT AS product_id, (1 + (o + l) % 4)::INTEGER AS quantity,
        ((((o * 31 + l) % {{products}} + 1) * 137 % 10000) / 100.0 + 1)::DECIMAL(10,2) AS unit_price
        FROM range(1, {{orders}} + 1) a(o), range(1, 4) b(l) WHERE l <= 1 + o % 3""",
}
# one CDC file: updates of some rows, deletes of others
SALES_CDC = {
    "orders": f"""SELECT CASE WHEN order_id % 50 = 0 THEN 'D' ELSE 'U' END AS Op, {_T0} + INTERVAL 1 DAY AS _commit_ts,
        order_id, customer_id, 'shipped' AS status, order_ts, {_T0} + INTERVAL 1 DAY AS updated_at
        FROM ({SALES_LOAD['orders']}) WHERE order_id % 10 = 0""",
    "products": f"""SELECT 'U' AS Op, {_T0} + INTERVAL 1 DAY AS _commit_ts, product_id, sku, name, category,
        description, unit_price + 1 AS unit_price, active, {_T0} + INTERVAL 1 DAY AS updated_at
        FROM ({SALES_LOAD['products']}) WHERE product_id % 10 = 0""",
}
CDC_NAME = "20260102-000000000000-0000000000ABCDEF.parquet"


def write_raw(settings, scale: dict[str, int]) -> None:
    """A generated raw zone in the documented layouts (DuckDB writes it straight to S3)."""
    from lifecycle.clients import connect_duckdb

    raw = f"s3://{settings.names.bucket('raw')}"
    with connect_duckdb(settings) as con:
        for table, sql in SALES_LOAD.items():
            con.execute(f"COPY ({sql.format(**scale)}) TO '{raw}/sales/public/{table}/LOAD00000001.parquet' "
                        "(FORMAT parquet)")
        for table, sql in SALES_CDC.items():
            con.execute(f"COPY ({sql.format(**scale)}) TO '{raw}/sales/public/{table}/{CDC_NAME}' "
                        "(FORMAT parquet)")
        # four Firehose objects, one per hour; every 500th record is bad in some way
        per = scale["events"] // 4
        for h in range(4):
            events = f"""
                SELECT CASE WHEN i % 500 = 1 THEN '{{"event_id": "broken' ELSE json_object(
                    'event_id', 'ev-' || CASE WHEN i % 500 = 2 THEN i - 1 ELSE i END,
                    'event_type', ['page_view', 'page_view', 'add_to_cart', 'checkout', 'purchase'][i % 5 + 1],
                    'event_ts', strftime(TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i * 7 % (5 * 86400)),
                                         '%Y-%m-%dT%H:%M:%S.%fZ'),
                    'customer_id', CASE WHEN i % 3 = 0 THEN NULL ELSE i % {scale['customers']} + 1 END,
                    'product_id', CASE WHEN i % 5 = 3 THEN NULL ELSE i % {scale['products']} + 1 END,
                    'order_id', CASE WHEN i % 5 = 4 THEN i % {scale['orders']} + 1 END,
                    'page', '/p/' || i % 100,
                    'quantity', CASE WHEN i % 5 = 2 THEN 1 + i % 3 END)::VARCHAR END AS line
                FROM range({h * per}, {(h + 1) * per}) t(i)"""
            key = f"events/2026/01/05/{h:02d}/user-activity-1-2026-01-05-{h:02d}-00-00-shardId-000000000000-{h}"
            body = "\n".join(r[0] for r in con.execute(events).fetchall()) + "\n"
            aws(settings, "s3").put_object(Bucket=settings.names.bucket("raw"), Key=key, Body=body.encode())
    lines = [json.dumps({"Item": {
        "product_id": {"N": str(i % scale["products"] + 1)}, "review_id": {"S": f"rev-{i}"},
        "customer_id": {"N": str(i % scale["customers"] + 1)}, "rating": {"N": str(1 + i % 5)},
        "title": {"S": f"Title {i}"}, "body": {"S": f"Body, \"{i}\"\nsecond line"},
        "created_at": {"S": f"2026-01-0{1 + i % 4}T0{i % 10}:00:00Z"}}}) for i in range(scale["reviews"])]
    s3 = aws(settings, "s3")
    prefix = "reviews/AWSDynamoDB/20260105T000000Z"
    s3.put_object(Bucket=settings.names.bucket("raw"), Key=f"{prefix}/data/part-00000.json",
                  Body=("\n".join(lines) + "\n").encode())
    s3.put_object(Bucket=settings.names.bucket("raw"), Key=f"{prefix}/manifest-summary.json",
                  Body=json.dumps({"itemCount": len(lines)}).encode())


def checksum_sql(spec, source: str) -> str:
    """One row: count and a sum per column (lengths for text, seconds and micros for times);
    the same SQL runs on DuckDB and Postgres."""
    parts = ["count(*)"]
    for c, t in spec.all_columns:
        q = f'"{c}"'
        if t in ("bigint", "int", "decimal(10,2)"):
            parts.append(f"sum({q})")
        elif t == "string":
            parts.append(f"sum(length({q}))")
        elif t == "timestamptz":
            parts.append(f"sum(floor(extract(epoch from {q}))::bigint)")
            parts.append(f"sum(extract(microseconds from {q}))")
        elif t == "boolean":
            parts.append(f"sum(CASE WHEN {q} THEN 1 ELSE 0 END)")
        elif t == "date":
            parts.append(f"sum({q} - DATE '1970-01-01')")
        parts.append(f"count({q})")
    return f"SELECT {', '.join(parts)} FROM {source}"


def clean_checksums(settings) -> dict[str, tuple]:
    from lifecycle.clients import connect_duckdb
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import CLEAN_TABLES

    with connect_duckdb(settings) as con:
        return {name: tuple(_norm(v) for v in con.execute(checksum_sql(spec, iceberg.scan_sql(settings, spec))).fetchone())
                for name, spec in CLEAN_TABLES.items()}


def landing_checksums(settings) -> dict[str, tuple]:
    from lifecycle.lake.catalog import CLEAN_TABLES

    out = {}
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        for name, spec in CLEAN_TABLES.items():
            cur.execute(checksum_sql(spec, f"landing.{name}"))
            out[name] = tuple(_norm(v) for v in cur.fetchone())
    return out


def _norm(v):
    return None if v is None else round(float(v), 3)


def manifest(settings) -> list[tuple]:
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name, s3_key, rows, interval_start, interval_end "
                    "FROM landing.load_manifest ORDER BY 1, 2")
        return cur.fetchall()


@pytest.fixture(scope="module")
def lake(settings):
    from lifecycle.jobs.engine.runner import run_lake_clean

    reset_lake(settings)
    write_raw(settings, SCALE)
    started = time.perf_counter()
    result = run_lake_clean(settings, START, END)
    print(f"\nclean jobs: {time.perf_counter() - started:.2f} s, rows out {result['rows_out']}, "
          f"rejected {result['rejected']}, per job "
          f"{ {j: m['duration_s'] for j, m in result['jobs'].items()} }")
    return result


def test_landing_reconciles_with_clean_zone(settings, lake):
    from lifecycle.warehouse.load import load_landing

    started = time.perf_counter()
    rows = load_landing(settings, START, END)
    seconds = time.perf_counter() - started
    total = sum(rows.values())
    print(f"\nload ({settings.engines.load_method}): {total} rows in {seconds:.2f} s = {total / seconds:,.0f} rows/s")
    from lifecycle.lake.catalog import CLEAN_TABLES

    assert rows == {t: n for t, n in lake["rows_out"].items() if t in CLEAN_TABLES}
    assert rows["order_items"] > rows["orders"] > 0 and rows["events"] > 0 and rows["reviews"] > 0
    assert landing_checksums(settings) == clean_checksums(settings)


def test_manifest_lists_every_object(settings, lake):
    from lifecycle.lake.catalog import CLEAN_TABLES
    from lifecycle.warehouse.load import clean_objects, load_landing

    rows = load_landing(settings, START, END)
    m = manifest(settings)
    expected_keys = sorted((n, k) for n, spec in CLEAN_TABLES.items() for k in clean_objects(settings, spec))
    assert [(t, k) for t, k, *_ in m] == expected_keys
    for name, n in rows.items():
        assert sum(r for t, _, r, *_ in m if t == name) == n
    assert {(s, e) for *_, s, e in m} == {(START, END)}


@pytest.mark.parametrize("method", ["binary", "file", "pipe"])
def test_rerun_replaces_not_appends(settings, lake, method):
    from lifecycle.warehouse.load import load_landing

    load_landing(settings, START, END)
    before, manifest_before = landing_checksums(settings), manifest(settings)
    started = time.perf_counter()
    rows = load_landing(settings, START, END, method=method, mode="full")
    seconds = time.perf_counter() - started
    print(f"\nload ({method}): {sum(rows.values())} rows in {seconds:.2f} s = "
          f"{sum(rows.values()) / seconds:,.0f} rows/s")
    assert landing_checksums(settings) == before
    assert manifest(settings) == manifest_before


def _events_table(settings):
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import CLEAN_TABLES

    return iceberg.load_table(settings, CLEAN_TABLES["events"])


def test_empty_table_loads_as_empty(settings, lake):
    """A clean table whose snapshot has no rows (every row deleted) truncates its landing table."""
    from lifecycle.warehouse.load import load_landing

    table = _events_table(settings)
    saved = table.scan().to_arrow()
    table.delete()  # a commit of no rows
    try:
        assert load_landing(settings, START, END, tables=["events"]) == {"events": 0}
        with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM landing.events")
            assert cur.fetchone() == (0,)
            cur.execute("SELECT count(*) FROM landing.load_manifest WHERE table_name = 'events'")
            assert cur.fetchone() == (0,)
    finally:
        _events_table(settings).append(saved)
        load_landing(settings, START, END, tables=["events"])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("when", ["at_once", "mid_stream"])
def test_pipe_failure_in_postgres_does_not_hang(settings, when):
    """If Postgres rejects the COPY, the DuckDB producer is stopped and the error surfaces."""
    import psycopg2

    from lifecycle.clients import connect_duckdb
    from lifecycle.warehouse.load import copy_via_pipe

    duck = connect_duckdb(settings)
    try:
        with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE pipe_check (i bigint CHECK (i < 500000))")
            target = "no_such_table" if when == "at_once" else "pipe_check"
            with pytest.raises(psycopg2.Error):
                copy_via_pipe(duck, cur, "SELECT i FROM range(2000000) t(i)",
                               f"COPY {target} (i) FROM STDIN WITH (FORMAT csv)")
            conn.rollback()
        assert duck.execute("SELECT 42").fetchone() == (42,)  # the connection is usable again
    finally:
        duck.close()


def test_incremental_load_replaces_only_changed_partitions(settings, lake):
    """A rerun copies nothing; a vanished and a returning partition are replaced alone."""
    from lifecycle.lake.catalog import CLEAN_TABLES
    from lifecycle.warehouse.load import clean_objects, load_landing

    load_landing(settings, START, END, mode="full")
    details: dict = {}
    load_landing(settings, START, END, details=details)
    assert {d["mode"] for d in details.values()} == {"unchanged"}
    assert sum(d["copied"] for d in details.values()) == 0

    def xmins_by_date():
        with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
            cur.execute("SELECT event_date, array_agg(xmin::text ORDER BY event_id) FROM landing.events "
                        "GROUP BY 1")
            return dict(cur.fetchall())

    from pyiceberg.expressions import EqualTo

    before = xmins_by_date()
    keys = clean_objects(settings, CLEAN_TABLES["events"])
    dates = sorted({k.split("event_date=")[1].split("/")[0] for k in keys})
    assert len(dates) > 1
    gone = [k for k in keys if f"event_date={dates[0]}/" in k]
    # a commit that deletes the first day's rows (its data files leave the snapshot)
    day = EqualTo("event_date", dates[0])
    saved = _events_table(settings).scan(row_filter=day).to_arrow()
    _events_table(settings).delete(day)
    try:
        details = {}
        load_landing(settings, START, END, tables=["events"], details=details)
        assert (details["events"]["mode"], details["events"]["partitions"], details["events"]["copied"]) == (
            "incremental", 1, 0)
        assert landing_checksums(settings)["events"] == clean_checksums(settings)["events"]
        assert not {k for _, k, *_ in manifest(settings)} & set(gone)
    finally:  # the day's rows come back, in a new data file
        _events_table(settings).append(saved)
    details = {}
    load_landing(settings, START, END, tables=["events"], details=details)
    back = details["events"]
    assert (back["mode"], back["partitions"], back["files"]) == ("incremental", 1, len(gone))
    assert back["copied"] > 0 and back["skipped_files"] == len(keys) - len(gone)
    assert landing_checksums(settings) == clean_checksums(settings)
    after = xmins_by_date()
    assert after.keys() == before.keys()
    assert all(after[d] == before[d] for d in before if str(d) != dates[0])  # untouched partitions
    assert after[date.fromisoformat(dates[0])] != before[date.fromisoformat(dates[0])]


def _contract_rows_copy(settings, suffix: str) -> None:
    """A copy of every landing table's contract columns in schema ``landing_<suffix>``."""
    from lifecycle.lake.catalog import CLEAN_TABLES

    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS landing_{suffix} CASCADE; CREATE SCHEMA landing_{suffix}")
        for name, spec in CLEAN_TABLES.items():
            cols = ", ".join(f'"{c}"' for c in spec.column_names)
            cur.execute(f"CREATE TABLE landing_{suffix}.{name} AS SELECT {cols} FROM landing.{name}")


def test_binary_and_csv_methods_load_identical_rows(settings, lake):
    """Row for row (EXCEPT both ways): types, NULLs, quotes and newlines, decimals, times."""
    from lifecycle.lake.catalog import CLEAN_TABLES
    from lifecycle.warehouse.load import load_landing

    load_landing(settings, START, END, method="pipe", mode="full")
    _contract_rows_copy(settings, "pipe")
    load_landing(settings, START, END, method="binary", mode="full")
    _contract_rows_copy(settings, "binary")
    try:
        with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
            for name in CLEAN_TABLES:
                cur.execute(f"SELECT (SELECT count(*) FROM landing_binary.{name}), "
                            f"(SELECT count(*) FROM (SELECT * FROM landing_pipe.{name} EXCEPT ALL "
                            f"SELECT * FROM landing_binary.{name}) a), "
                            f"(SELECT count(*) FROM (SELECT * FROM landing_binary.{name} EXCEPT ALL "
                            f"SELECT * FROM landing_pipe.{name}) b)")
                n, only_pipe, only_binary = cur.fetchone()
                assert (only_pipe, only_binary) == (0, 0), name
                assert n == lake["rows_out"][name], name
            cur.execute("SELECT count(*) FROM landing.orders WHERE _loaded_at IS NULL")
            assert cur.fetchone() == (0,)  # the column default applies to the binary COPY too
    finally:
        with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
            cur.execute("DROP SCHEMA landing_pipe CASCADE; DROP SCHEMA landing_binary CASCADE")


def test_binary_load_is_one_transaction_and_rolls_back_whole(settings, lake, monkeypatch):
    """Just before the commit (a changed partition deleted, its rows inserted, the manifest
    rewritten), one loader backend holds the advisory lock and the locks of the DELETE, the
    binary COPY and the manifest rows; nothing is visible outside; a failure there leaves the
    previous state whole, and the next load reconciles."""
    from lifecycle.lake.catalog import CLEAN_TABLES
    from lifecycle.warehouse import load

    load.load_landing(settings, START, END, method="binary", mode="full")
    keys = load.clean_objects(settings, CLEAN_TABLES["events"])
    first = sorted({k.split("event_date=")[1].split("/")[0] for k in keys})[0]
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:  # a changed partition
        cur.execute("DELETE FROM landing.load_manifest WHERE table_name = 'events' AND s3_key = %s",
                    ([k for k in keys if f"event_date={first}/" in k][0],))
        cur.execute("DELETE FROM landing.events WHERE event_date = %s AND event_id IN "
                    "(SELECT event_id FROM landing.events WHERE event_date = %s LIMIT 5)", (first, first))
    before, manifest_before = landing_checksums(settings), manifest(settings)
    seen: dict = {}

    def point(name: str) -> None:
        if name != "warehouse.before_commit":
            return
        with pg(settings, settings.pg.warehouse_db, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted")
            seen["advisory"] = {p for (p,) in cur.fetchall()}
            cur.execute("SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                        "WHERE c.relname IN ('events', 'load_manifest') AND c.relnamespace = 'landing'::regnamespace "
                        "AND l.mode = 'RowExclusiveLock' AND l.pid <> pg_backend_pid()")
            seen["writers"] = {p for (p,) in cur.fetchall()}
            cur.execute("SELECT usename, state FROM pg_stat_activity WHERE pid = ANY(%s)",
                        (list(seen["advisory"]),))
            seen["backend"] = cur.fetchall()
            seen["outside"] = landing_checksums(settings)["events"], manifest(settings)
        raise RuntimeError("injected before the commit")

    monkeypatch.setattr(load.faults, "point", point)
    with pytest.raises(RuntimeError, match="injected"):
        load.load_landing(settings, START, END, method="binary", tables=["events"])
    assert len(seen["advisory"]) == 1 and seen["writers"] == seen["advisory"]
    assert seen["backend"] == [(settings.pg_login("loader")[0], "idle in transaction")]
    assert seen["outside"] == (before["events"], manifest_before)
    assert landing_checksums(settings) == before and manifest(settings) == manifest_before
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
        assert cur.fetchone() == (0,)
    monkeypatch.undo()
    details: dict = {}
    load.load_landing(settings, START, END, method="binary", tables=["events"], details=details)
    assert (details["events"]["mode"], details["events"]["partitions"]) == ("incremental", 1)
    assert landing_checksums(settings) == clean_checksums(settings)


def test_binary_login_error_does_not_show_the_password(settings):
    """A refused login names the loader's user, never its password (the login is a DuckDB
    secret, not a DSN, and the original exception is not chained)."""
    import dataclasses

    import duckdb

    from lifecycle.warehouse.load import attach_warehouse

    wrong = dataclasses.replace(settings, pg=dataclasses.replace(settings.pg, loader_user="no_such_loader", loader_password="pw-d41d8cd98f00"))
    duck = duckdb.connect()
    try:
        with pytest.raises(RuntimeError) as err:
            attach_warehouse(wrong, duck)
        assert "no_such_loader" in str(err.value) and "pw-d41d8cd98f00" not in str(err.value)
        assert err.value.__cause__ is None and err.value.__suppress_context__  # no chained original
    finally:
        duck.close()
