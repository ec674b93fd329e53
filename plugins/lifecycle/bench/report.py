"""Benchmark reports: the machine-readable JSON and the short human table.

Input: the run's parameters, the machine and version facts, the workload summary and the
``StageResult`` of every stage.
Output: ``<out>/<UTC timestamp>.json`` (everything, including per-stage details) and
``<out>/<UTC timestamp>.md`` (the table, the stages below target, the CDC lag percentiles);
``render_table`` is also what ``main`` prints.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from lifecycle.bench.measure import StageResult

PACKAGES = ("duckdb", "moto", "boto3", "pyarrow", "psycopg2-binary", "sqlframe", "dbt-core",
            "dbt-postgres", "pgserver", "apache-airflow-core")


def machine() -> dict[str, Any]:
    import psutil

    vm = psutil.virtual_memory()
    return {
        "cpu_logical": psutil.cpu_count(logical=True),
        "cpu_physical": psutil.cpu_count(logical=False),
        "memory_total_gib": round(vm.total / 2**30, 1),
        "memory_available_gib": round(vm.available / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def versions(postgres_version: str | None) -> dict[str, str | None]:
    out: dict[str, str | None] = {"postgres": postgres_version}
    for pkg in PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _fmt(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def render_table(results: list[StageResult]) -> str:
    head = ("| stage | rows | stage s | stage rows/s | baseline s | baseline rows/s | ratio | target | "
            "peak RSS MiB |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in results:
        mark = "ok" if r.meets_target else ("**FAILED**" if r.error else "**below**")
        lines.append(
            f"| {r.stage} | {r.rows:,} | {r.seconds:.2f} | {_fmt(r.rows_per_s)} | {r.baseline_seconds:.2f} | "
            f"{_fmt(r.baseline_rows_per_s)} | {_fmt(r.ratio, 3)} | ≥ {r.target:g} {mark} | "
            f"{_fmt(r.peak_rss_mb.get('total'))} |"
        )
    return "\n".join(lines)


def lag_summary(results: list[StageResult]) -> str:
    for r in results:
        if r.stage == "cdc_lag" and not r.error:
            d = r.details
            b, s = d["lag_bytes"], d["lag_seconds"]
            return (f"CDC lag under {d['write_rate_achieved_rows_per_s']} rows/s "
                    f"({d['transactions']} transactions, {d['captures']} captures, {d['samples']} samples): "
                    f"seconds p50 {s['p50']} / p95 {s['p95']} / max {s['max']}; "
                    f"bytes p50 {b['p50']} / p95 {b['p95']} / max {b['max']}")
    return ""


def incremental_summary(results: list[StageResult]) -> str:
    """One line: the whole lifecycle's incremental cost and each stage's, or ''."""
    for r in results:
        if r.stage == "lifecycle_incremental" and not r.error:
            d = r.details
            parts = ", ".join(f"{k} {v['incremental_s']:.2f}/{v['full_s']:.2f} s = {v['cost']}"
                              for k, v in d["per_stage"].items())
            return (f"Incremental after 1 % new data (incremental ÷ full): whole **{d['cost_vs_full']}** "
                    f"(target ≤ {d['target_cost']}); {parts}")
    return ""


def orchestration_summary(results: list[StageResult]) -> str:
    """The DAG runs' wall time split into work and Airflow, and every DAG file's parse time."""
    for r in results:
        if r.stage == "orchestration" and r.details.get("overhead"):
            o, parse = r.details["overhead"], r.details["parse"]
            lines = [f"Orchestration (dag.test of {len(o['runs'])} DAGs, {o['tasks']} tasks): wall {o['wall_s']:.1f} s, "
                     f"tasks {o['task_seconds']:.1f} s, Airflow **{o['airflow_s']:.1f} s = {o['airflow_share']:.0%}**",
                     "", "| DAG | tasks | wall s | task s | Airflow s | Airflow share |", "|---|---:|---:|---:|---:|---:|"]
            for dag, d in o["runs"].items():
                lines.append(f"| {dag} | {d['tasks']} | {d['wall_s']:.2f} | {d['task_seconds']:.2f} | "
                             f"{d['airflow_s']:.2f} | {_fmt(d['airflow_share'] and d['airflow_share'] * 100)} % |")
            lines += ["", f"DAG file parse times (DagBag; target < {parse['target_s']:g} s each; cold = first "
                      "in the process, with the imports):", "",
                      "| DAG file | DAGs | tasks | cold s | warm s |", "|---|---:|---:|---:|---:|"]
            cold = parse["cold"]["files"]
            for f, w in sorted(parse["warm"]["files"].items(), key=lambda kv: -kv[1]["seconds"]):
                c = cold.get(f, {}).get("seconds")
                mark = "" if w["seconds"] < parse["target_s"] else " **over**"
                lines.append(f"| {f} | {w['dags']} | {w['tasks']} | {_fmt(c, 3)} | {w['seconds']:.3f}{mark} |")
            return "\n".join(lines)
    return ""


def below_target(results: list[StageResult]) -> list[str]:
    return [r.stage for r in results if not r.meets_target]


def render_markdown(meta: dict[str, Any], results: list[StageResult]) -> str:
    m, p = meta["machine"], meta["params"]
    below = below_target(results)
    parts = [
        f"# Benchmark {meta['timestamp']}",
        "",
        f"scale {p['scale']:,} orders, {p['events']:,} events, {p['shards']} shards; "
        f"{m['cpu_logical']} cores, {m['memory_total_gib']} GiB; load average at start "
        f"{meta['load_average_start']}, at end {m['load_average']}; "
        f"duckdb {meta['versions']['duckdb']}, postgres {meta['versions']['postgres']}, "
        f"moto {meta['versions']['moto']}",
        "",
        "ratio = stage rows/s ÷ baseline rows/s on the same rows, measured in this run.",
        "",
        render_table(results),
        "",
    ]
    for line in (lag_summary(results), incremental_summary(results), orchestration_summary(results)):
        if line:
            parts += [line, ""]
    parts.append("Below target: " + (", ".join(below) if below else "none"))
    for r in results:
        if r.error:
            parts.append(f"- {r.stage} failed: {r.error[:500]}")
    parts.append("")
    parts.append("| stage | what is timed | baseline |")
    parts.append("|---|---|---|")
    for r in results:
        parts.append(f"| {r.stage} | {r.what} | {r.baseline} |")
    return "\n".join(parts) + "\n"


def write(out_dir: Path, meta: dict[str, Any], results: list[StageResult]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = meta["timestamp"]
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    doc = {**meta, "stages": {r.stage: r.as_dict() for r in results},
           "below_target": below_target(results)}
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    md_path.write_text(render_markdown(meta, results))
    return json_path, md_path
