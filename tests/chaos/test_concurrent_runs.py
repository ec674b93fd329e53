"""Case 7: two runs of the same DAG for the same interval at once.

Airflow prevents it where it must: every lifecycle DAG has ``max_active_runs=1`` (asserted
by tests/pipeline/test_dags.py). It still happens around the scheduler: a manual ``airflow tasks
test``/``lifecycle run`` while the scheduled run works, a zombie task whose retry already
started, a second Airflow pointed at the same target. So here the same stages run twice at
the same moment, in two processes, for the same interval. Each run must either succeed or
fail cleanly (then its retry succeeds); the data must reconcile, nothing doubled.
"""

from __future__ import annotations

from datetime import date

import pytest

from chaos.harness import assert_reconciled, child, child_popen, fresh, ok, reconcile, run_in_process
from lifecycle.pipeline.stages import TO_LANDING

CASES = {
    "ingest": ("ingest_sales", "ingest_events", "ingest_reviews"),
    "lake": ("lake",),
    "warehouse": ("warehouse",),
}


@pytest.mark.chaos_slow
@pytest.mark.parametrize("which", list(CASES))
def test_two_runs_of_the_same_interval_at_once(settings, chaos_case, which):
    from lifecycle.sources.simulator import simulate_day

    stages = CASES[which]
    chaos_case.fault = f"{' + '.join(stages)}: two runs at once, same interval"
    fresh(settings, scale=15, bad_rate=0.05)
    run_in_process(settings, *TO_LANDING)
    simulate_day(settings, date(2026, 11, 21), scale=15, bad_rate=0.05)
    run_in_process(settings, *TO_LANDING[:TO_LANDING.index(stages[0])])
    window = ["--start", "2026-11-21T00:00:00+00:00", "--end", "2026-11-22T00:00:00+00:00"]
    procs = [child_popen(settings, *stages, *window) for _ in range(2)]
    results = [p.communicate(timeout=900) + (p.returncode,) for p in procs]
    failed = [r for r in results if r[2] != 0]
    for _ in failed:  # the task's retry
        ok(child(settings, *stages, *window))
    run_in_process(settings, *TO_LANDING[TO_LANDING.index(stages[-1]) + 1:])
    report = reconcile(settings, chaos_case)
    assert_reconciled(report)
    errors = "; ".join(r[1].strip().splitlines()[-1][:120] for r in failed if r[1].strip())
    chaos_case.outcome = (f"{2 - len(failed)} of 2 succeeded" + (f", the other failed cleanly ({errors}) "
                          "and its retry succeeded" if failed else "") + "; reconciled")
