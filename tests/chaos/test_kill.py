"""Case 3: a worker killed (SIGKILL) in the middle of each stage's write, then the task retried.

Each stage runs in a child process (``python -m lifecycle.pipeline.stages``) with
``LIFECYCLE_FAULT=<point>``: the process kills itself at that point (``lifecycle.faults``),
after it wrote part of its output and before it recorded its progress. Right after the
kill every object in the lake must still be whole (readable); then the same stage is run
again (the retry), the rest of the lifecycle runs, and source, lake and warehouse must
reconcile: no duplicate, no gap.

``day 1``: the kill hits the first run (full load, first export, full lake build);
``day 2``: it hits an incremental run, after a first day went through cleanly.
"""

from __future__ import annotations

from datetime import date

import pytest

from chaos.harness import assert_reconciled, child, fresh, killed, ok, reconcile, run_in_process
from lifecycle.pipeline.stages import TO_LANDING

CASES = [
    # (stage, fault point[@n-th time], day of the kill)
    ("ingest_sales", "sales_cdc.full_load@2", 1),
    ("ingest_sales", "sales_cdc.write", 2),
    ("ingest_sales", "sales_cdc.before_advance", 2),
    ("ingest_events", "user_activity.write", 1),
    ("ingest_events", "user_activity.write", 2),
    ("ingest_reviews", "review_stream.write", 2),
    ("lake", "lake.write@3", 1),
    ("lake", "lake.write@4", 2),
    ("lake", "lake.write@12", 2),
    # after a COPY to staging, before its promotion: readers keep the previous objects
    ("lake", "lake.staged@4", 2),
    ("warehouse", "warehouse.before_commit@3", 1),
    ("warehouse", "warehouse.table_done@2", 2),
]


def _whole_objects(settings) -> int:
    """Every Parquet object of raw/clean/quarantine opens and reads; returns how many."""
    from lifecycle.clients import aws, connect_duckdb

    s3, con, n = aws(settings, "s3"), connect_duckdb(settings), 0
    try:
        for zone in ("raw", "clean", "quarantine"):
            bucket = settings.names.bucket(zone)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for o in page.get("Contents", []):
                    if o["Key"].endswith(".parquet"):
                        con.execute(f"SELECT count(*) FROM read_parquet('s3://{bucket}/{o['Key']}')").fetchone()
                        n += 1
    finally:
        con.close()
    return n


@pytest.mark.chaos_slow
@pytest.mark.parametrize("stage,fault,day", CASES, ids=[f"{s}-{f}-day{d}" for s, f, d in CASES])
def test_killed_mid_write_then_retried(settings, chaos_case, stage, fault, day):
    from lifecycle.sources.simulator import simulate_day

    chaos_case.fault = f"SIGKILL in {stage} at {fault} (day {day})"
    fresh(settings, scale=15, bad_rate=0.05)
    before = TO_LANDING[:TO_LANDING.index(stage)]
    after = TO_LANDING[TO_LANDING.index(stage) + 1:]
    if day == 2:
        run_in_process(settings, *TO_LANDING)
        simulate_day(settings, date(2026, 11, 21), scale=15, bad_rate=0.05)
    run_in_process(settings, *before)
    proc = child(settings, stage, fault=fault)
    assert killed(proc), f"the fault point {fault} was not reached:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    whole = _whole_objects(settings)
    retry = child(settings, stage)
    ok(retry)
    run_in_process(settings, *after)
    report = reconcile(settings, chaos_case)
    assert_reconciled(report)
    chaos_case.outcome = f"killed, {whole} Parquet objects whole after the kill; retry reconciled"
