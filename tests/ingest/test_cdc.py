"""DMS-grade CDC: schema changes, lag and its alert, a dropped slot, row-for-row state.

Real Postgres logical decoding (pgoutput) and moto; the environment is reset for the module.
"""

from __future__ import annotations

import io
import re
from dataclasses import replace

import pyarrow.parquet as pq
import pytest
from conftest import reset_environment

from lifecycle.clients import aws, pg


@pytest.fixture()
def env(settings):
    from lifecycle.ingest import sales_cdc
    from lifecycle.sources.sales_db import ensure_schema

    reset_environment(settings)
    ensure_schema(settings)
    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO customers VALUES (1,'a@x.org','Ann','+100','US',now(),now())")
        cur.execute("INSERT INTO products VALUES (10,'SKU-10','Mug','kitchen',NULL,9.99,true,now())")
        cur.execute("INSERT INTO orders VALUES (100,1,'placed',now(),now())")
        cur.execute("INSERT INTO order_items VALUES (100,1,10,2,9.99)")
    sales_cdc.run(settings)  # slot + full load
    yield settings
    with pg(settings, settings.pg.sales_db, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_drop_replication_slot(%s) FROM pg_replication_slots WHERE slot_name = %s",
                    (sales_cdc.SLOT, sales_cdc.SLOT))


def _cdc_files(settings, table):
    resp = aws(settings, "s3").list_objects_v2(Bucket=settings.names.bucket("raw"), Prefix=f"sales/public/{table}/")
    return sorted(o["Key"] for o in resp.get("Contents", []) if "LOAD" not in o["Key"])


def _read(settings, key):
    body = aws(settings, "s3").get_object(Bucket=settings.names.bucket("raw"), Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def test_a_new_nullable_column_flows_through(env):
    from lifecycle.ingest import sales_cdc

    with pg(env, env.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE orders ADD COLUMN gift_note text")
        cur.execute("UPDATE orders SET status='paid', gift_note='happy birthday' WHERE order_id=100")
    out = sales_cdc.run(env)
    assert out["columns_added"] == {"orders": ["gift_note"]}
    (key,) = _cdc_files(env, "orders")
    table = _read(env, key)
    assert table.column_names[-1] == "gift_note"
    assert table.to_pylist()[0]["gift_note"] == "happy birthday"
    known = sales_cdc.known_columns(aws(env, "s3"), env.names.bucket("raw"), "orders")
    assert known[-1][0] == "gift_note"
    # the next change is not reported as new again
    with pg(env, env.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("UPDATE orders SET status='shipped' WHERE order_id=100")
    assert sales_cdc.run(env)["columns_added"] == {}


@pytest.mark.parametrize("ddl, expected", [
    ("ALTER TABLE orders DROP COLUMN updated_at", "column 'updated_at' was dropped"),
    ("ALTER TABLE orders ALTER COLUMN status TYPE varchar(20)", "column 'status' changed type text → varchar"),
    ("ALTER TABLE order_items ALTER COLUMN unit_price TYPE numeric(12,3)",
     "column 'unit_price' changed type numeric(10,2) → numeric(12,3)"),
])
def test_a_breaking_change_stops_before_writing_and_keeps_the_changes(env, ddl, expected):
    from lifecycle.ingest import sales_cdc

    with pg(env, env.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute(ddl)
        table = "order_items" if "order_items" in ddl else "orders"
        if table == "orders":
            cur.execute("UPDATE orders SET status='paid' WHERE order_id=100")
        else:
            cur.execute("UPDATE order_items SET quantity=3 WHERE order_id=100")
    lag_before = sales_cdc.slot_lag(env)["lag_bytes"]
    with pytest.raises(sales_cdc.SchemaChangeError, match=re.escape(expected)) as err:
        sales_cdc.run(env)
    assert "lifecycle cdc resnapshot" in str(err.value)
    assert _cdc_files(env, table) == []                      # nothing corrupt reached the lake
    assert sales_cdc.slot_lag(env)["lag_bytes"] >= lag_before > 0   # the changes are still in the slot
    with pytest.raises(sales_cdc.SchemaChangeError):
        sales_cdc.run(env)                                    # and it keeps refusing


def test_lag_is_measured_published_and_alerted(env):
    from lifecycle.dataops.alerts import read_alerts
    from lifecycle.ingest import sales_cdc

    read_alerts(env)
    with pg(env, env.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("UPDATE orders SET status='paid' WHERE order_id=100")
    lag = sales_cdc.slot_lag(env)
    assert lag["exists"] and lag["lag_bytes"] > 0 and lag["lag_seconds"] >= 0
    strict = replace(env, thresholds=replace(env.thresholds, cdc_lag_alert_seconds=-1))  # every lag is too much
    out = sales_cdc.run(strict)
    assert out["lag_before"]["lag_bytes"] > 0 and out["lag_after"]["lag_bytes"] == 0
    alerts = [a for a in read_alerts(env) if a["kind"] == "cdc_lag"]
    assert len(alerts) == 1 and "behind the source" in alerts[0]["error"] and alerts[0]["runbook"]
    names = {m["MetricName"] for m in aws(env, "cloudwatch").list_metrics(
        Namespace=env.names.metrics_namespace)["Metrics"]}
    assert {"CdcLagBytes", "CdcLagSeconds"} <= names


def test_a_dropped_slot_triggers_a_resnapshot_not_a_silent_gap(env):
    from lifecycle.dataops.alerts import read_alerts
    from lifecycle.ingest import sales_cdc

    read_alerts(env)
    with pg(env, env.pg.sales_db, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_drop_replication_slot(%s)", (sales_cdc.SLOT,))
        # changes made while no slot exists: no CDC can ever deliver them
        cur.execute("UPDATE orders SET status='cancelled' WHERE order_id=100")
        cur.execute("INSERT INTO orders VALUES (101,1,'placed',now(),now())")
    out = sales_cdc.run(env)
    assert out["resnapshot"] is True and out["full_load"]["orders"] == 2
    load = _read(env, "sales/public/orders/LOAD00000001.parquet").to_pylist()
    assert {(r["order_id"], r["status"]) for r in load} == {(100, "cancelled"), (101, "placed")}
    assert [a["kind"] for a in read_alerts(env)] == ["cdc_resnapshot"]


def test_cdc_status_and_resnapshot_commands(env):
    from typer.testing import CliRunner

    from lifecycle.cli import app

    res = CliRunner().invoke(app, ["cdc", "status"])
    assert res.exit_code == 0, res.output
    assert "lag:" in res.output and "orders" in res.output and "full load: yes" in res.output
    res = CliRunner().invoke(app, ["cdc", "resnapshot", "--yes"])
    assert res.exit_code == 0 and '"orders": 1' in res.output


def test_the_full_load_reproduces_every_value_exactly(env):
    """NULL vs '', quotes, commas, newlines, padded char, numeric scale, false, microseconds:
    the LOAD file holds what the source holds (it is streamed as CSV into Arrow)."""
    from lifecycle.ingest import sales_cdc

    awkward = 'say "hi",\nthen\r\nleave \\N'
    with pg(env, env.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO customers VALUES (2,'b@x.org','','', 'GB', "
                    "'2025-03-01 10:00:00.000123+00', '2025-03-01 10:00:00+00')")
        cur.execute("INSERT INTO products VALUES (11,'SKU-11','Bowl','kitchen',%s,0.10,false,now())", (awkward,))
        cur.execute("INSERT INTO products VALUES (12,'SKU-12','Cup','kitchen','',1234.5,true,now())")
    with pg(env, env.pg.sales_db, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_drop_replication_slot(%s)", (sales_cdc.SLOT,))
    sales_cdc.run(env)  # the slot is gone: a new full load
    for table, key in (("customers", "customer_id"), ("products", "product_id")):
        load = _read(env, f"sales/public/{table}/LOAD00000001.parquet")
        assert set(load.column("Op").to_pylist()) == {"I"}
        with pg(env, env.pg.sales_db) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table} ORDER BY {key}")
            names = [d[0] for d in cur.description]
            want = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        got = [{k: v for k, v in row.items() if k not in ("Op", "_commit_ts")} for row in load.to_pylist()]
        assert got == want, table
    products = {r["product_id"]: r for r in _read(env, "sales/public/products/LOAD00000001.parquet").to_pylist()}
    assert products[10]["description"] is None and products[12]["description"] == ""
    assert products[11]["description"] == awkward and products[11]["active"] is False
