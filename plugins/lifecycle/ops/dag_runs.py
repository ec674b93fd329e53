"""Run the lifecycle's DAGs once, in order, with Airflow's own ``dag.test()``.

Input: ``Settings`` (with services up and Airflow's metadata database migrated) and the
logical date to run. Output: per DAG, its state and the return values of its tasks.

This is what ``make demo`` and the end-to-end test use: the real DAG files, parsed by a
real ``DagBag`` and run by Airflow's in-process executor, in the order the asset graph
would trigger them, without waiting for a scheduler.

Call ``configure_airflow(settings)`` before anything imports ``airflow``: Airflow reads its
configuration once, at first import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime

from lifecycle.pipeline.environment import airflow_env
from lifecycle.settings import REPO_ROOT, Settings

LIFECYCLE_DAGS = (
    "ingest_sales",
    "ingest_user_activity",
    "ingest_reviews",
    "lake_clean",
    "warehouse_load",
    "dbt_build",
    "serve_publish",
    "observe",
)


def configure_airflow(settings: Settings, quiet: bool = False) -> dict[str, str]:
    """Put the lifecycle's Airflow environment in this process; ``quiet`` keeps only warnings."""
    env = airflow_env(settings)
    if quiet:
        env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
        env["DBT_QUIET"] = "true"  # dbt runs in-process (dbtRunner) and prints to stdout
    os.environ.update(env)
    return env


def migrate_metadata(settings: Settings) -> None:
    """``airflow db migrate`` (idempotent) in a child process with the lifecycle's env."""
    from importlib.metadata import version

    marker = settings.home / "airflow" / f".migrated-{settings.pg.airflow_db}-{version('apache-airflow-core')}"
    if marker.exists():
        return
    env = {**os.environ, **airflow_env(settings)}
    proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def build_dbt_manifest() -> None:
    """``dbt parse`` so the Cosmos DAG renders from a manifest (fast DAG parsing)."""
    from lifecycle.warehouse.dbt import DBT_PROJECT_DIR, MANIFEST_PATH, dbt_executable

    if MANIFEST_PATH.exists() and all(
        MANIFEST_PATH.stat().st_mtime >= p.stat().st_mtime
        for p in DBT_PROJECT_DIR.rglob("*") if p.suffix in (".sql", ".yml") and "target" not in p.parts
    ):
        return
    proc = subprocess.run(
        [str(dbt_executable()), "parse", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR)],
        capture_output=True, text=True, cwd=REPO_ROOT, env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"dbt parse failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")


def load_dags(dag_ids=LIFECYCLE_DAGS) -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    missing = [d for d in dag_ids if d not in bag.dags]
    if missing:
        raise RuntimeError(f"DAGs not found: {missing}")
    return {d: bag.dags[d] for d in dag_ids}


def run_dags(dag_ids=LIFECYCLE_DAGS, run_after: datetime | None = None, on_done=None) -> dict:
    """``dag.test()`` each DAG in order; stops at the first failed run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    dags = load_dags(dag_ids)
    results = {}
    for dag_id in dag_ids:
        # Airflow 3.3.2: when a dag.test() run succeeds, DagRun.update_state looks the DAG's
        # deadline alerts up by id, but a DAG serialized in-process for dag.test() carries their
        # definitions instead, and the lookup fails. Deadlines are for the scheduler (the
        # triggerer runs their callbacks); a one-off in-process run goes without them.
        dags[dag_id].deadline = None
        dr = dags[dag_id].test(run_after=run_after)
        with create_session() as session:
            # straight from the metadata DB: tasks that pushed nothing are simply absent
            pushed = {x.task_id: XComModel.deserialize_value(x) for x in session.scalars(
                XComModel.get_many(run_id=dr.run_id, dag_ids=dag_id, key="return_value"))}
        tis = {ti.task_id: {"state": str(ti.state), "result": pushed.get(ti.task_id)}
               for ti in dr.get_task_instances()}
        results[dag_id] = {"state": str(dr.state), "run_id": dr.run_id, "tasks": tis}
        if on_done:
            on_done(dag_id, results[dag_id])
        if dr.state != DagRunState.SUCCESS:
            break
    return results


__all__ = ["configure_airflow", "migrate_metadata", "build_dbt_manifest", "load_dags", "run_dags"]
