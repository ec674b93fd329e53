"""Case 7: two runs of the same stage for the same interval at once, the overlap forced.

Airflow prevents it where it must: every lifecycle DAG has ``max_active_runs=1`` (asserted
by tests/pipeline/test_dags.py). It still happens around the scheduler: a manual ``airflow tasks
test``/``lifecycle run`` while the scheduled run works, a zombie task whose retry already
started, a second Airflow pointed at the same target.

Nothing is left to timing: the first run is held at a pause point inside its critical section
(``LIFECYCLE_FAULT=<point>:pause``, ``lifecycle.faults``) and only then is the second started.

- Where the stage takes a lock (CDC's slot lock, the lake lock, the warehouse's table locks,
  the dbt build lock, the publish lock) the second must wait: its lock request is seen
  ungranted in ``pg_locks`` while the first is held, and it is still running when the first
  is released.
- Where the stage is optimistic (the Kinesis and DynamoDB stream consumers: conditional
  checkpoints, objects named by their first record) the second runs to its end while the
  first is held; whichever loses the checkpoint must fail cleanly or find nothing left.
- Across stages: the lake held after staging its files, the warehouse load runs meanwhile: it
  loads what the lake has committed, never the staged files (clean = landing, value for value,
  while the lake is held), and the next load takes the rest.

Either way the data reconcile at values afterwards: nothing lost, nothing twice.
"""

from __future__ import annotations

import time

import pytest

from chaos.harness import (
    assert_reconciled,
    child,
    child_popen,
    fault_dir,
    ok,
    reconcile,
    run_in_process,
    up_to_day_two,
    wait_for,
)
from lifecycle.clients import pg
from lifecycle.pipeline.stages import STAGES, TO_LANDING

WINDOW = ["--start", "2026-11-21T00:00:00+00:00", "--end", "2026-11-22T00:00:00+00:00"]
# stage -> (pause point inside its critical section, the second run must wait on a lock)
CASES = {
    "ingest_sales": ("sales_cdc.write", True),
    "ingest_events": ("user_activity.write", False),
    "ingest_reviews": ("review_stream.write", False),
    "lake": ("lake.staged", True),
    "warehouse": ("warehouse.before_commit", True),
    "dbt": ("dbt.built", True),
    "serve": ("serve.before_commit", True),
}


def _waiting_for_a_lock(settings, proc, timeout: float = 180) -> bool:
    """True once a lock request is seen ungranted (pg_locks is cluster-wide; only the two runs
    work on the databases now) while ``proc`` runs; False if it ended first or the time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cur.fetchone()[0]:
                return True
        time.sleep(0.2)
    return False


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1][:140] if lines else ""


def _day_two(settings, stage: str) -> tuple[tuple[str, ...], bool]:
    """Day 2 up to ``stage``, over day 1 run through the stages the case reconciles."""
    serving = stage in ("dbt", "serve")
    through = STAGES if serving else TO_LANDING
    up_to_day_two(settings, stage, through, bad_rate=0.05)
    return through, serving


@pytest.mark.chaos_slow
@pytest.mark.parametrize("stage", list(CASES))
def test_a_second_run_while_the_first_is_held_in_its_critical_section(settings, chaos_case, stage, tmp_path):
    point, locked = CASES[stage]
    chaos_case.fault = f"{stage}: a second run started while the first is held at {point}"
    through, serving = _day_two(settings, stage)
    env = fault_dir(tmp_path)
    first = child_popen(settings, stage, *WINDOW, fault=f"{point}:pause", env=env)
    marker = tmp_path / f"{point}.paused"
    wait_for(marker, first)
    second = child_popen(settings, stage, *WINDOW)
    try:
        if locked:
            assert _waiting_for_a_lock(settings, second), (
                f"the second {stage} run did not wait for the first's lock: "
                f"{second.communicate()[1][-2000:] if second.poll() is not None else 'no ungranted lock seen'}")
            time.sleep(1)
            assert second.poll() is None and marker.exists(), "the second run ended while the first held the lock"
            waited = "the second waited on the lock while the first was held"
        else:
            second.wait(timeout=600)
            waited = f"the second ran while the first was held (exit {second.returncode})"
    finally:
        marker.unlink(missing_ok=True)
    results = {name: p.communicate(timeout=900) + (p.returncode,) for name, p in (("first", first), ("second", second))}
    failed = {name: r for name, r in results.items() if r[2] != 0}
    for _out, err, code in failed.values():  # an error exit, not a crash nor a hang
        assert code > 0, f"exit {code}:\n{err[-3000:]}"
    for _ in failed:  # the task's retry
        ok(child(settings, stage, *WINDOW))
    run_in_process(settings, *through[through.index(stage) + 1:])
    report = reconcile(settings, chaos_case, serving=serving)
    assert_reconciled(report)
    if locked:  # waiting, the second found the first's work done: nothing for it to redo wrongly
        assert not failed, {n: _last_line(r[1]) for n, r in failed.items()}
    chaos_case.outcome = (f"{waited}; " + (", ".join(f"the {n} failed cleanly ({_last_line(r[1])}) and its retry "
                                                      "succeeded" for n, r in failed.items()) or "both succeeded")
                          + "; reconciled at values")


@pytest.mark.chaos_slow
def test_the_load_reads_only_what_the_lake_committed_while_the_lake_is_held(settings, chaos_case, tmp_path):
    from lifecycle.clients import connect_duckdb
    from lifecycle.dataops.values import value_checks

    chaos_case.fault = "lake held after staging its files (lake.staged) while the warehouse load runs"
    _day_two(settings, "lake")
    env = fault_dir(tmp_path)
    lake = child_popen(settings, "lake", *WINDOW, fault="lake.staged:pause", env=env)
    marker = tmp_path / "lake.staged.paused"
    wait_for(marker, lake)
    try:
        ok(child(settings, "warehouse", *WINDOW))
        with connect_duckdb(settings) as con:
            held = [c for c in value_checks(settings, con) if "landing" in c["name"]]
        assert lake.poll() is None and marker.exists()
    finally:
        marker.unlink(missing_ok=True)
    out, err = lake.communicate(timeout=900)
    assert lake.returncode == 0, err[-3000:]
    assert held and all(c["ok"] for c in held), [c for c in held if not c["ok"]]
    run_in_process(settings, "warehouse")
    report = reconcile(settings, chaos_case)
    assert_reconciled(report)
    chaos_case.outcome = (f"the load ran while the lake was held and matched the committed snapshots "
                          f"({len(held)} landing checks); after the lake's commit the next load "
                          "took the rest; reconciled at values")
