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


def _dbt(env: BenchEnvironment, work: Path, *args: str) -> subprocess.CompletedProcess:
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
    with pg(s, s.warehouse_db, autocommit=True) as conn, conn.cursor() as cur:
        for rel in relations:
            cur.execute(f"SELECT count(*) FROM {rel}")
            out[rel] = int(cur.fetchone()[0])
    return out


def _drop_schemas(env: BenchEnvironment, schemas: set[str]) -> None:
    s = env.settings
    with pg(s, s.warehouse_db, autocommit=True) as conn, conn.cursor() as cur:
        for schema in sorted(schemas):
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _run_baseline(env: BenchEnvironment, nodes: dict[str, dict], order: list[str]) -> dict:
    s = env.settings
    failures = {}
    with pg(s, s.warehouse_db, autocommit=True) as conn, conn.cursor() as cur:
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


def stage_dbt(env: BenchEnvironment, work: Path) -> StageResult:
    work.mkdir(parents=True, exist_ok=True)
    compiled = _dbt(env, work, "compile")
    if compiled.returncode != 0:
        raise RuntimeError(f"dbt compile failed:\n{compiled.stdout[-4000:]}\n{compiled.stderr[-2000:]}")
    manifest = json.loads((work / "target" / "manifest.json").read_text())
    nodes = _compiled_nodes(manifest)
    order = _order(nodes)
    tables = [n["relation_name"] for n in nodes.values()
              if n["resource_type"] == "model" and n["config"].get("materialized") in ("table", "incremental")]
    schemas = {n["schema"] for n in nodes.values() if n["resource_type"] == "model"}

    with RssSampler(env.settings) as rss:
        started = time.perf_counter()
        built = _dbt(env, work, "build")
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
