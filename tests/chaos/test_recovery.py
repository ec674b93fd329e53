"""Case 9: the lake or the warehouse partially deleted by hand, then rebuilt by the documented
replay (docs/recovery.md: ``lifecycle recover lake`` from raw/, ``lifecycle recover warehouse``
from the clean zone): the rebuilt layer equals what it was, row for row."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import lifecycle_env

from chaos.harness import REPO, assert_reconciled, fresh, reconcile, run_in_process
from lifecycle.clients import aws, pg
from lifecycle.pipeline.stages import STAGES


def _lake_fingerprint(settings) -> dict:
    from lifecycle.clients import connect_duckdb
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import CLEAN_TABLES

    con, out = connect_duckdb(settings), {}
    try:
        for name, spec in CLEAN_TABLES.items():
            try:
                out[name] = con.execute(
                    f"SELECT count(*), md5(coalesce(string_agg(t::VARCHAR, '|' ORDER BY t::VARCHAR), '')) "
                    f"FROM {iceberg.scan_sql(settings, spec)} t").fetchone()
            except Exception as exc:  # noqa: BLE001 - a table damaged past reading
                out[name] = f"unreadable: {type(exc).__name__}"
        quarantine = settings.names.bucket("quarantine")
        try:
            out["quarantine/events"] = con.execute(
                f"SELECT count(*), md5(string_agg(t::VARCHAR, '|' ORDER BY t::VARCHAR)) "
                f"FROM read_parquet('s3://{quarantine}/events/data_0.parquet') t").fetchone()
        except Exception as exc:  # noqa: BLE001 - deleted
            out["quarantine/events"] = f"unreadable: {type(exc).__name__}"
    finally:
        con.close()
    return out


def _warehouse_fingerprint(settings) -> dict:
    out = {}
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN "
                    "('landing', 'serving') AND table_type = 'BASE TABLE' AND table_name <> 'load_manifest' "
                    "ORDER BY 1, 2")
        for schema, table in cur.fetchall():
            # _loaded_at is when a row was loaded: a reload changes it, not the data
            cur.execute(f"SELECT count(*), coalesce(sum(hashtextextended((to_jsonb(t) - '_loaded_at')::text, 0)), 0) "
                        f"FROM {schema}.{table} t")
            out[f"{schema}.{table}"] = cur.fetchone()
    return out


def _recover(settings, layer: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "lifecycle.cli", "recover", layer], env=lifecycle_env(settings),
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, f"lifecycle recover {layer}:\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}"


def _diff(before: dict, after: dict) -> list[str]:
    return [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]


@pytest.mark.chaos_slow
def test_partially_deleted_lake_and_warehouse_are_rebuilt_exactly(settings, chaos_case):
    chaos_case.fault = ("deleted by hand: every other object of the clean events table (data and "
                        "metadata files), all of the clean orders table, the quarantine; then landing "
                        "rows and serving rows")
    fresh(settings, scale=15, bad_rate=0.05)
    run_in_process(settings, *STAGES)
    lake_before, wh_before = _lake_fingerprint(settings), _warehouse_fingerprint(settings)

    # ---- the lake, damaged by hand
    s3, clean = aws(settings, "s3"), settings.names.bucket("clean")
    keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=clean)
            for o in p.get("Contents", [])]
    doomed = [k for k in keys if k.startswith("events/")][::2] + [k for k in keys if k.startswith("orders/")]
    s3.delete_objects(Bucket=clean, Delete={"Objects": [{"Key": k} for k in doomed]})
    s3.delete_object(Bucket=settings.names.bucket("quarantine"), Key="events/data_0.parquet")
    # the normal incremental run does not repair it: nothing new came in, and a snapshot naming
    # files that are gone stops the job that reads it, loudly
    try:
        run_in_process(settings, "lake")
    except Exception as exc:  # noqa: BLE001
        print(f"incremental lake run on the damaged lake: {type(exc).__name__}")
    assert _diff(lake_before, _lake_fingerprint(settings)), "an incremental run repaired the lake by itself?"
    _recover(settings, "lake")
    lake_after = _lake_fingerprint(settings)
    assert _diff(lake_before, lake_after) == []

    # ---- the warehouse, damaged by hand
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM landing.orders WHERE order_id % 2 = 0")
        cur.execute("DELETE FROM landing.events WHERE event_type = 'page_view'")
        cur.execute("DELETE FROM serving.daily_sales WHERE order_date = (SELECT min(order_date) FROM serving.daily_sales)")
    _recover(settings, "warehouse")
    wh_after = _warehouse_fingerprint(settings)
    assert _diff(wh_before, wh_after) == []
    report = reconcile(settings, chaos_case, serving=True)
    assert_reconciled(report)
    chaos_case.outcome = (f"{len(doomed)} clean objects + quarantine deleted: `lifecycle recover lake` rebuilt "
                          f"{len(lake_after)} tables identically; landing/serving rows deleted: `lifecycle recover "
                          f"warehouse` rebuilt {len(wh_after)} tables identically")
