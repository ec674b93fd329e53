"""Orchestration overhead: Airflow's own share of the lifecycle's wall time, and DAG parse times.

Input: a running embedded environment selected by the process environment
(``LIFECYCLE_HOME``, ``LIFECYCLE_PG_PORT``, ``LIFECYCLE_MOTO_PORT``...), holding data.
Output (``python -m lifecycle.bench.orchestration --out FILE``): a JSON document with

- ``parse``: per DAG file, the seconds ``DagBag`` took to parse it (Airflow's own
  ``dagbag_stats``, as ``airflow dags report`` prints them), DAG and task counts; a cold
  pass (first in the process: it also imports Airflow's, Cosmos' and the lifecycle's modules)
  and a warm pass (a second ``DagBag``: what the dag-processor pays per file, since it
  imports the modules a DAG file needs once, before parsing); target < 1 s per file;
- ``runs``: per lifecycle DAG run once with ``dag.test()`` (``orchestrate.run_dags``, the
  in-process executor ``make demo`` uses): the run's wall time (from the DAG run's start to
  its end, in Airflow's metadata DB), the sum of its task instances' durations (the work),
  the rest (Airflow: scheduling decisions, task start, state updates, XComs); and the same
  summed over every DAG, plus the wall time of ``run_dags`` as seen from outside.

Why a child process: Airflow reads its configuration once, at first import, and the
benchmark's environment is only known at run time (``stage_orchestration`` starts this
module with it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lifecycle.settings import REPO_ROOT

PARSE_TARGET_S = 1.0


def parse_times() -> dict:
    from airflow.dag_processing.dagbag import DagBag

    passes = {}
    for label in ("cold", "warm"):
        started = time.perf_counter()
        bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
        total = time.perf_counter() - started
        passes[label] = {
            "total_s": round(total, 3),
            "import_errors": {str(k): str(v)[:500] for k, v in bag.import_errors.items()},
            "files": {Path(st.file).name: {"seconds": round(st.duration.total_seconds(), 3),
                                           "dags": st.dag_num, "tasks": st.task_num}
                      for st in bag.dagbag_stats},
        }
    warm = passes["warm"]["files"]
    return {**passes, "target_s": PARSE_TARGET_S,
            "over_target_warm": sorted(f for f, v in warm.items() if v["seconds"] >= PARSE_TARGET_S)}


def _seconds(a, b) -> float | None:
    return round((b - a).total_seconds(), 3) if a and b else None


def run_overhead(dag_ids) -> dict:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from lifecycle.ops import dag_runs as orchestrate

    started = time.perf_counter()
    results = orchestrate.run_dags(dag_ids)
    outside = time.perf_counter() - started
    runs = {}
    with create_session() as session:
        for dag_id, res in results.items():
            dr = session.query(DagRun).filter_by(dag_id=dag_id, run_id=res["run_id"]).one()
            tis = dr.get_task_instances(session=session)
            work = sum((ti.end_date - ti.start_date).total_seconds() for ti in tis
                       if ti.start_date and ti.end_date)
            wall = _seconds(dr.start_date, dr.end_date) or 0.0
            runs[dag_id] = {"state": res["state"], "tasks": len(tis), "wall_s": round(wall, 3),
                            "task_seconds": round(work, 3), "airflow_s": round(max(wall - work, 0.0), 3),
                            "airflow_share": round(max(wall - work, 0.0) / wall, 4) if wall else None}
    wall = sum(r["wall_s"] for r in runs.values())
    work = sum(r["task_seconds"] for r in runs.values())
    return {"runs": runs, "tasks": sum(r["tasks"] for r in runs.values()),
            "wall_s": round(wall, 3), "task_seconds": round(work, 3),
            "airflow_s": round(wall - work, 3), "airflow_share": round((wall - work) / wall, 4) if wall else None,
            "run_dags_seconds_outside": round(outside, 3),
            "all_succeeded": all(r["state"] == "success" for r in runs.values())}


def stage_orchestration(env, work: Path, dags: str = ""):
    """Run this module in a child process against the benchmark's environment; the result's
    ratio is the work's share of the DAG runs' wall time (task seconds ÷ wall seconds)."""
    import subprocess

    from lifecycle.bench.measure import RssSampler, StageResult

    work.mkdir(parents=True, exist_ok=True)
    out = work / "orchestration.json"
    with RssSampler(env.settings) as rss:
        proc = subprocess.run([sys.executable, "-m", "lifecycle.bench.orchestration", "--out", str(out),
                               "--dags", dags],
                              env=env.subprocess_env(), capture_output=True, text=True, cwd=REPO_ROOT)
    if not out.exists():
        raise RuntimeError(f"orchestration run exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    doc = json.loads(out.read_text())
    o = doc["overhead"]
    failed = [d for d, r in o["runs"].items() if r["state"] != "success"]
    return StageResult(
        stage="orchestration", rows=o["tasks"], seconds=o["wall_s"], baseline_rows=o["tasks"],
        baseline_seconds=o["task_seconds"], target=0.5,
        error=f"DAG runs not successful: {', '.join(failed)}" if failed else None,
        what="the lifecycle DAGs once with dag.test(): wall time of the DAG runs (Airflow's metadata DB)",
        baseline="the sum of their task instances' durations (the work); ratio = work share, 1 - ratio = Airflow's",
        peak_rss_mb=rss.result(), details=doc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lifecycle.bench.orchestration")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dags", default="", help="comma list (default: the lifecycle DAGs)")
    args = p.parse_args(argv)

    from lifecycle.ops import dag_runs as orchestrate
    from lifecycle.settings import Settings

    settings = Settings.from_env()
    orchestrate.configure_airflow(settings, quiet=True)
    started = time.perf_counter()
    orchestrate.migrate_metadata(settings)
    orchestrate.build_dbt_manifest()
    doc: dict = {"setup_seconds": round(time.perf_counter() - started, 3)}
    doc["parse"] = parse_times()
    ids = tuple(d for d in args.dags.split(",") if d) or orchestrate.LIFECYCLE_DAGS
    doc["overhead"] = run_overhead(ids)
    args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 0 if doc["overhead"]["all_succeeded"] else 1


if __name__ == "__main__":
    sys.exit(main())
