"""Case 6: Postgres restarted during CDC, the lake jobs, the warehouse load, dbt and serve.

In a dedicated environment (its own Postgres and moto: restarting the session's Postgres
would break the other tests). The stage runs in a child process and pauses at a fault point
in the middle of its write; Postgres is then restarted (``pg_ctl restart -m immediate``: a
crash, no shutdown checkpoint; the replication slot comes back at its last persisted
position); the stage goes on, fails on its broken connection (or, where it holds none at that
moment, goes on), and is retried. Nothing lost, nothing doubled; dbt's and serve's cases (day 2
over a published day 1) reconcile through serving.
"""

from __future__ import annotations

import subprocess

import pytest

from chaos.harness import (
    assert_reconciled,
    child,
    child_popen,
    ok,
    reconcile,
    run_in_process,
    up_to_day_two,
    wait_for,
)
from lifecycle.pipeline.stages import STAGES, TO_LANDING


@pytest.fixture(scope="module")
def pg_env():
    from lifecycle.ops.services import isolated_environment

    with isolated_environment(prefix="lifecycle-chaos-pg-") as (s, _env):
        yield s


def _crash_restart(settings) -> None:
    from lifecycle.ops.services import as_pg_user, pg_bin, start_postgres

    subprocess.run(as_pg_user([str(pg_bin(settings, "pg_ctl")), "-D", str(settings.pg_data_dir), "-w", "-t", "60",
                                "-m", "immediate", "stop"]), check=True, capture_output=True)
    start_postgres(settings)


CASES = [("ingest_sales", "sales_cdc.write"), ("lake", "lake.staged"), ("warehouse", "warehouse.before_commit@2"),
         ("dbt", "dbt.built"), ("serve", "serve.before_commit")]


@pytest.mark.chaos_slow
@pytest.mark.parametrize("stage,point", CASES, ids=[c[0] for c in CASES])
def test_postgres_restarted_mid_stage(pg_env, chaos_case, tmp_path, stage, point):
    chaos_case.fault = f"Postgres crash-restarted while {stage} writes ({point})"
    settings = pg_env
    serving = stage in ("dbt", "serve")
    through = STAGES if serving else TO_LANDING
    up_to_day_two(settings, stage, through)
    proc = child_popen(settings, stage, fault=f"{point}:pause", env={"LIFECYCLE_FAULT_DIR": str(tmp_path)})
    marker = tmp_path / f"{point.split('@')[0]}.paused"
    wait_for(marker, proc)
    _crash_restart(settings)
    marker.unlink()
    out, err = proc.communicate(timeout=600)
    first = "failed (connection lost), retried" if proc.returncode else "went on after the restart"
    ok(child(settings, stage))  # the retry (or a rerun: it must change nothing)
    run_in_process(settings, *through[through.index(stage) + 1:])
    report = reconcile(settings, chaos_case, serving=serving)
    assert_reconciled(report)
    chaos_case.outcome = f"the stage {first}; reconciled"
