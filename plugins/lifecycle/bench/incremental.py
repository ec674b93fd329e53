"""The whole lifecycle's incremental cost: every stage rerun after 1 % new data, ÷ its full run.

Input: a ``BenchEnvironment`` in which the full stages have run (``full_load``, ``kinesis``,
``clean``, ``load``, ``dbt``, ``dbt_incremental``: the last leaves the dbt models built by
dbt itself) and ``clean_incremental`` has just run: it put 1 % new data in the sources (the
newest 1 % of orders moved one status forward, 1 % new events on a new day), timed their
ingestion (``details.ingest_seconds``) and the lake jobs.
Output: one ``StageResult`` ``lifecycle_incremental``: here the load runs again
(incremental against its manifest: only the changed partitions) and ``dbt build`` (the
incremental marts), both timed; ``details.per_stage`` gives, for each lifecycle stage,
``full_s`` (the full stage of this run), ``incremental_s`` and their ratio ``cost``, and
``details.cost_vs_full`` the whole: Σ incremental ÷ Σ full (issue target ≤ 0.05).

The result's rows are the full stages' rows on both sides (an incremental run keeps the
same data up to date), so its ``ratio`` is full seconds ÷ incremental seconds: the target
20 is the same statement as cost ≤ 0.05.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from lifecycle.bench.environment import BenchEnvironment
from lifecycle.bench.measure import RssSampler, StageResult, timed

TARGET_COST = 0.05
# lifecycle stage → the full stage of the benchmark it is compared with
FULL_OF = {"ingest_sales": "full_load", "ingest_events": "kinesis", "clean": "clean",
           "load": "load", "dbt": "dbt"}


def stage_lifecycle_incremental(env: BenchEnvironment, start: datetime, end: datetime,
                                clean_inc: StageResult, full: dict[str, StageResult],
                                work: Path) -> StageResult:
    from lifecycle.bench.dbt_bench import run_dbt
    from lifecycle.warehouse import load

    s = env.settings
    missing = [st for st in FULL_OF.values() if st not in full or full[st].error]
    if missing or clean_inc.error:
        raise RuntimeError(f"needs the full stages {', '.join(missing) or '-'} and clean_incremental")
    ingest = clean_inc.details["ingest_seconds"]
    details_load: dict = {}
    with RssSampler(s) as rss:
        _, load_s = timed(load.load_landing, s, start, end, details=details_load)
        started = time.perf_counter()
        built = run_dbt(env, work, "build")
        dbt_s = time.perf_counter() - started
    if built.returncode != 0:
        raise RuntimeError(f"incremental dbt build exited {built.returncode}:\n{built.stdout[-1500:]}")
    inc = {"ingest_sales": ingest["sales_cdc"], "ingest_events": ingest["user_activity"],
           "clean": clean_inc.seconds, "load": load_s, "dbt": dbt_s}
    per_stage = {}
    for name, secs in inc.items():
        f = full[FULL_OF[name]].seconds
        per_stage[name] = {"full_stage": FULL_OF[name], "full_s": round(f, 3), "incremental_s": round(secs, 3),
                           "cost": round(secs / f, 4) if f else None}
    full_s, inc_s = sum(full[st].seconds for st in FULL_OF.values()), sum(inc.values())
    rows = sum(full[st].rows for st in FULL_OF.values())
    return StageResult(
        stage="lifecycle_incremental", rows=rows, seconds=inc_s, baseline_rows=rows, baseline_seconds=full_s,
        target=1 / TARGET_COST,
        what="after 1 % new data: capture_changes + user_activity.run + lake jobs + incremental load + dbt build",
        baseline="the full stages of this run (full_load, kinesis, clean, load, dbt); ratio = full s ÷ incremental s",
        peak_rss_mb={k: max(v, clean_inc.peak_rss_mb.get(k, 0.0)) for k, v in rss.result().items()},
        details={"cost_vs_full": round(inc_s / full_s, 4) if full_s else None, "target_cost": TARGET_COST,
                 "per_stage": per_stage,
                 "load_rows_copied": sum(d["copied"] for d in details_load.values())},
    )
