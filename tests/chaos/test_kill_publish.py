"""Case 3, continued: a worker killed (SIGKILL) in the middle of dbt's build and of the serving
swap, then the task retried.

dbt builds model by model in its own process (what a Cosmos task runs); the whole process
group of the stage is killed once dbt has built some models, as when a worker's container
dies. The serving swap is one transaction: the stage kills itself at the fault point
``serve.before_commit`` (``lifecycle.faults``), with ``serving_next`` renamed in but not
committed. After each kill the serving tables readers see must still be the previous
publication, whole; after the retry, source, lake, warehouse and serving reconcile.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date

import pytest
from conftest import lifecycle_env

from chaos.harness import REPO, assert_reconciled, child, fresh, killed, ok, reconcile, run_in_process
from lifecycle.clients import pg
from lifecycle.pipeline.stages import TO_LANDING

# schemas that are not dbt's models
NOT_DBT = ("landing", "serving", "public", "information_schema", "pg_catalog", "pg_toast")


def _dbt_relations(settings) -> dict[str, int]:
    """Every dbt relation and its oid: dbt-postgres builds a table or view under a temporary
    name and renames it in, so a model built again has a new oid."""
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT n.nspname || '.' || c.relname, c.oid::bigint FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind IN ('r', 'v', 'm', 'p') AND NOT n.nspname = ANY(%s)", (list(NOT_DBT),))
        return dict(cur.fetchall())


def _serving(settings) -> dict[str, int]:
    from lifecycle.serve.publish import serving_counts

    return serving_counts(settings)


@pytest.mark.chaos_slow
def test_killed_mid_dbt_build_then_retried(settings, chaos_case):
    """Day 2, over a published day 1 and its incremental marts: dbt killed with some models
    rebuilt and others not. Readers keep day 1's publication whole; the retry's incremental
    build must give the marts and serving exactly what the sources say (reconciled at values)."""
    from datetime import date

    from lifecycle.sources.simulator import simulate_day

    chaos_case.fault = ("SIGKILL of the dbt stage's process group on day 2, after its first models were rebuilt "
                        "(a publication and incremental marts of day 1 in place)")
    fresh(settings, scale=15, bad_rate=0.05)
    run_in_process(settings, *TO_LANDING, "dbt", "serve")
    published = _serving(settings)
    assert published, "day 1 was published"
    simulate_day(settings, date(2026, 11, 21), scale=15, bad_rate=0.05)
    run_in_process(settings, *TO_LANDING)
    before = _dbt_relations(settings)
    proc = subprocess.Popen([sys.executable, "-m", "lifecycle.pipeline.stages", "dbt"], env=lifecycle_env(settings),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                            start_new_session=True)
    deadline = time.monotonic() + 600
    rebuilt = 0
    while proc.poll() is None and time.monotonic() < deadline:
        now = _dbt_relations(settings)
        rebuilt = sum(1 for name, oid in now.items() if before.get(name) != oid)
        if rebuilt >= 3:  # some models rebuilt, more to come
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"dbt ended ({proc.returncode}) before it could be killed"
    assert _serving(settings) == published, "readers must still see day 1's publication, whole"
    ok(child(settings, "dbt"))
    run_in_process(settings, "serve")
    assert _serving(settings) != published, "day 2 was published by the retry"
    assert_reconciled(reconcile(settings, chaos_case, serving=True))
    chaos_case.outcome = (f"killed on day 2 with {rebuilt} dbt relations rebuilt; day 1's publication stayed whole; "
                          "the retry built the rest and serving reconciled at values")


@pytest.mark.chaos_slow
def test_killed_mid_serving_swap_then_retried(settings, chaos_case):
    from lifecycle.sources.simulator import simulate_day

    chaos_case.fault = "SIGKILL in serve at serve.before_commit (the swap renamed in, not committed)"
    fresh(settings, scale=15, bad_rate=0.05)
    run_in_process(settings, *TO_LANDING, "dbt", "serve")
    simulate_day(settings, date(2026, 11, 21), scale=15, bad_rate=0.05)
    run_in_process(settings, *TO_LANDING, "dbt")
    published = _serving(settings)
    assert published, "the first day was published"
    proc = child(settings, "serve", fault="serve.before_commit")
    assert killed(proc), f"the fault point was not reached:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert _serving(settings) == published, "readers must still see the previous publication, whole"
    ok(child(settings, "serve"))
    after = _serving(settings)
    assert after != published
    assert_reconciled(reconcile(settings, chaos_case, serving=True))
    chaos_case.outcome = (f"killed before the swap committed: serving unchanged ({sum(published.values())} rows); "
                          f"the retry published {sum(after.values())} rows and serving reconciled")
