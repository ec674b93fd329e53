"""The dbt stage: ``dbt build`` of the project against the same SQL run without dbt.

Input: a ``BenchEnvironment`` whose ``warehouse.landing`` is loaded, and a work folder.
Output: a ``StageResult``. Stage: ``dbt build`` (models, data tests, unit tests) as a
subprocess with the venv's dbt, ``DBT_TARGET=embedded`` and the environment's
``LIFECYCLE_PG_*`` (``lifecycle.warehouse.dbt.dbt_command``). Baseline: the compiled SQL
of the same models and data tests, taken from the manifest of a ``dbt compile`` (not
timed) and run with psycopg2 on one connection in dependency order: ``CREATE VIEW`` /
``CREATE TABLE ... AS`` per model as materialized, ``SELECT count(*) FROM (<test>)`` per
data test. Unit tests run on fixed fixture rows, not on the data, and have no counterpart
in the baseline. Rows (both sides) = rows of the table-materialized models after the run,
so equal counts also say both produced the same tables.

dbt builds with the profile's 4 threads; the baseline is sequential. The models' schemas
are dropped between the two runs (not timed).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from lifecycle.bench.environment import BenchEnvironment
from lifecycle.bench.measure import RssSampler, StageResult
from lifecycle.clients import pg
from lifecycle.settings import REPO_ROOT

TARGET = 0.5


def run_dbt(env: BenchEnvironment, work: Path, *args: str) -> subprocess.CompletedProcess:
    from lifecycle.warehouse.dbt import dbt_command

    cmd = dbt_command(*args, target="embedded", target_path=work / "target")
    run_env = env.subprocess_env(DBT_TARGET="embedded", DBT_SEND_ANONYMOUS_USAGE_STATS="False",
                                 DBT_LOG_PATH=str(work / "logs"), DO_NOT_TRACK="1")
    return subprocess.run(cmd, env=run_env, capture_output=True, text=True, cwd=REPO_ROOT)


def _order(nodes: dict[str, dict]) -> list[str]:
    """Models and data tests in dependency order (Kahn; ties by kind then id)."""
    deps = {uid: [d for d in n.get("depends_on", {}).get("nodes", []) if d in nodes]
            for uid, n in nodes.items()}
    done: list[str] = []
    placed: set[str] = set()
    while len(done) < len(nodes):
        ready = sorted((uid for uid in nodes if uid not in placed and all(d in placed for d in deps[uid])),
                       key=lambda u: (nodes[u]["resource_type"] != "model", u))
        if not ready:
            raise RuntimeError("cycle in the dbt manifest")
        done.extend(ready)
        placed.update(ready)
    return done


def _compiled_nodes(manifest: dict) -> dict[str, dict]:
    return {uid: n for uid, n in manifest["nodes"].items()
            if n["resource_type"] in ("model", "test") and n.get("compiled_code") is not None
            and n.get("config", {}).get("enabled", True)}


def _table_rows(env: BenchEnvironment, relations: list[str]) -> dict[str, int]:
    s = env.settings
    out = {}
    with pg(s, s.pg.warehouse_db, autocommit=True) as conn, conn.cursor() as cur:
        for rel in relations:
            cur.execute(f"SELECT count(*) FROM {rel}")
            out[rel] = int(cur.fetchone()[0])
    return out


def _drop_schemas(env: BenchEnvironment, schemas: set[str]) -> None:
    s = env.settings
    with pg(s, s.pg.warehouse_db, autocommit=True) as conn, conn.cursor() as cur:
        for schema in sorted(schemas):
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _run_baseline(env: BenchEnvironment, nodes: dict[str, dict], order: list[str]) -> dict:
    s = env.settings
    failures = {}
    with pg(s, s.pg.warehouse_db, autocommit=True) as conn, conn.cursor() as cur:
        for schema in sorted({n["schema"] for n in nodes.values() if n["resource_type"] == "model"}):
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for uid in order:
            n = nodes[uid]
            sql = n["compiled_code"].strip().rstrip(";")
            if n["resource_type"] == "model":
                kind = "VIEW" if n["config"].get("materialized") == "view" else "TABLE"
                cur.execute(f"CREATE {kind} {n['relation_name']} AS {sql}")
            else:
                cur.execute(f"SELECT count(*) FROM ({sql}) AS dbt_internal_test")
                bad = int(cur.fetchone()[0])
                if bad:
                    failures[n["name"]] = bad
    return failures


def _compile(env: BenchEnvironment, work: Path) -> tuple[dict, dict, list[str]]:
    """``dbt compile`` into ``work``: the manifest, its compiled nodes and the relations of
    the table-like models."""
    work.mkdir(parents=True, exist_ok=True)
    compiled = run_dbt(env, work, "compile")
    if compiled.returncode != 0:
        raise RuntimeError(f"dbt compile failed:\n{compiled.stdout[-4000:]}\n{compiled.stderr[-2000:]}")
    manifest = json.loads((work / "target" / "manifest.json").read_text())
    nodes = _compiled_nodes(manifest)
    tables = [n["relation_name"] for n in nodes.values()
              if n["resource_type"] == "model" and n["config"].get("materialized") in ("table", "incremental")]
    return manifest, nodes, tables


def stage_dbt(env: BenchEnvironment, work: Path) -> StageResult:
    manifest, nodes, tables = _compile(env, work)
    order = _order(nodes)
    schemas = {n["schema"] for n in nodes.values() if n["resource_type"] == "model"}

    with RssSampler(env.settings) as rss:
        started = time.perf_counter()
        built = run_dbt(env, work, "build")
        secs = time.perf_counter() - started
    error = None
    if built.returncode != 0:
        error = f"dbt build exited {built.returncode}: " + built.stdout[-1500:]
    results = {}
    run_results = work / "target" / "run_results.json"
    if run_results.exists():
        for r in json.loads(run_results.read_text()).get("results", []):
            kind = r["unique_id"].split(".")[0]
            results.setdefault(kind, {}).setdefault(r["status"], 0)
            results[kind][r["status"]] += 1
    rows = _table_rows(env, tables)

    _drop_schemas(env, schemas)
    started = time.perf_counter()
    failures = _run_baseline(env, nodes, order)
    base_s = time.perf_counter() - started
    base_rows = _table_rows(env, tables)
    return StageResult(
        stage="dbt", rows=sum(rows.values()), seconds=secs,
        baseline_rows=sum(base_rows.values()), baseline_seconds=base_s, target=TARGET, error=error,
        what="dbt build (subprocess: parse, models, data tests, unit tests; 4 threads)",
        baseline="the compiled SQL of the same models + data tests via psycopg2, sequential, no dbt",
        peak_rss_mb=rss.result(),
        details={"models": sum(1 for n in nodes.values() if n["resource_type"] == "model"),
                 "data_tests": sum(1 for n in nodes.values() if n["resource_type"] == "test"),
                 "unit_tests": len(manifest.get("unit_tests", {})),
                 "dbt_results": results, "rows_per_table": rows, "baseline_rows_per_table": base_rows,
                 "baseline_failing_tests": failures},
    )


# ---- incremental rerun after new data ------------------------------------------------------------

INCREMENTAL_TARGET = 1.0  # an incremental build must at least not be slower than a full refresh
NEW_DATA_SQL = """
-- {pct} % new orders (copies of every {every}-th order under new ids, with their lines) and
-- {pct} % new events (copies of every {every}-th event under new ids, same customer and time,
-- so they fall inside the lake's sessions): what a later load of new data brings
INSERT INTO landing.orders (order_id, customer_id, status, order_ts, updated_at, order_date)
SELECT order_id + {offset}, customer_id, status, order_ts, updated_at, order_date
FROM landing.orders WHERE order_id % {every} = 0;
INSERT INTO landing.order_items (order_id, line_no, product_id, quantity, unit_price, order_date)
SELECT i.order_id + {offset}, i.line_no, i.product_id, i.quantity, i.unit_price, i.order_date
FROM landing.order_items i WHERE i.order_id % {every} = 0
  AND EXISTS (SELECT 1 FROM landing.orders o WHERE o.order_id = i.order_id);
INSERT INTO landing.events (event_id, event_type, event_ts, customer_id, product_id, order_id, page,
                            quantity, event_date)
SELECT event_id || '-new', event_type, event_ts, customer_id, product_id,
       CASE WHEN order_id IS NOT NULL THEN order_id + {offset} END, page, quantity, event_date
FROM landing.events WHERE abs(hashtext(event_id)) % {every} = 0 AND customer_id IS NOT NULL;
"""


def _serving_fingerprint(env: BenchEnvironment) -> dict[str, str]:
    s = env.settings
    out = {}
    with pg(s, s.pg.warehouse_db, autocommit=True) as conn, conn.cursor() as cur:
        for table in ("daily_sales", "funnel_daily", "product_performance"):
            cur.execute(f"SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM serving_next.{table} t")
            out[table] = cur.fetchone()[0]
    return out


def fresh_build(env: BenchEnvironment, work: Path) -> tuple[list[str], float]:
    """The models' schemas dropped and one full ``dbt build`` (so every model is dbt's own);
    returns the table-like relations and the build's seconds."""
    _, nodes, tables = _compile(env, work)
    _drop_schemas(env, {n["schema"] for n in nodes.values() if n["resource_type"] == "model"})
    started = time.perf_counter()
    first = run_dbt(env, work, "build")
    first_s = time.perf_counter() - started
    if first.returncode != 0:
        raise RuntimeError(f"dbt build failed:\n{first.stdout[-4000:]}")
    return tables, first_s


def stage_dbt_incremental(env: BenchEnvironment, work: Path, fraction: float = 0.01) -> StageResult:
    """``dbt build`` after ``fraction`` new data, with the incremental marts, against a
    ``dbt build --full-refresh`` of the same data (the baseline).

    Untimed before: the models' schemas dropped, one full ``dbt build`` (its time is in the
    details), then ``NEW_DATA_SQL`` in landing. Rows (both sides) = rows of the table-like
    models after the build; the serving tables of both builds must be identical.
    """
    tables, first_s = fresh_build(env, work)
    s = env.settings
    every = max(round(1 / fraction), 1)
    with pg(s, s.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(order_id), 0) FROM landing.orders")
        offset = int(cur.fetchone()[0]) + 1
        cur.execute("SELECT (SELECT count(*) FROM landing.orders), (SELECT count(*) FROM landing.events)")
        orders_before, events_before = cur.fetchone()
        cur.execute(NEW_DATA_SQL.format(pct=round(fraction * 100, 3), every=every, offset=offset))
        cur.execute("SELECT (SELECT count(*) FROM landing.orders), (SELECT count(*) FROM landing.events)")
        orders_after, events_after = cur.fetchone()

    with RssSampler(s) as rss:
        started = time.perf_counter()
        inc = run_dbt(env, work, "build")
        secs = time.perf_counter() - started
    error = None if inc.returncode == 0 else f"incremental dbt build exited {inc.returncode}: " + inc.stdout[-1500:]
    rows = _table_rows(env, tables)
    incremental_serving = _serving_fingerprint(env)
    started = time.perf_counter()
    full = run_dbt(env, work, "build", "--full-refresh")
    base_s = time.perf_counter() - started
    if full.returncode != 0 and error is None:
        error = f"dbt build --full-refresh exited {full.returncode}: " + full.stdout[-1500:]
    base_rows = _table_rows(env, tables)
    if error is None and _serving_fingerprint(env) != incremental_serving:
        error = "the incremental build's serving tables differ from the full refresh's"
    return StageResult(
        stage="dbt_incremental", rows=sum(rows.values()), seconds=secs,
        baseline_rows=sum(base_rows.values()), baseline_seconds=base_s, target=INCREMENTAL_TARGET, error=error,
        what=f"dbt build after {fraction:.0%} new orders and events (incremental marts)",
        baseline="dbt build --full-refresh of the same data (every model rebuilt)",
        peak_rss_mb=rss.result(),
        details={"full_build_seconds_before_untimed": round(first_s, 2),
                 "new_orders": orders_after - orders_before, "new_events": events_after - events_before,
                 "orders_before": orders_before, "events_before": events_before,
                 "rows_per_table": rows, "baseline_rows_per_table": base_rows},
    )
