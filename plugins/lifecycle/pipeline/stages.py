"""The one stage runner: each step of the lifecycle as one call, ``RUNNERS[name](settings, start, end)``.

Input: ``Settings`` (``Settings.from_env()`` in a task or a child process), the data interval
``[start, end)`` and, for a few stages, keyword options (the simulator's scale, the Airflow
context the Glue dispatch needs). Output: the stage's result as its task pushes it to XCom
(counts and run metadata; never object lists).

Every caller goes through here: each DAG task (``lifecycle.pipeline.tasks.stage_task``), the
``lifecycle stage`` command, the chaos suite (in the test process, or as ``python -m
lifecycle.pipeline.stages <stage> [<stage> ...] [--start ISO --end ISO]`` in a child process it
can SIGKILL), recovery and the benchmark. So what chaos breaks is exactly what Airflow runs.
A stage's module is imported when the stage runs, never when this module is imported (DAG
files import this at parse time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from lifecycle.settings import Settings


def simulate(settings: Settings, start: datetime, end: datetime, *, seed: int = 42, scale: int = 200,
             bad_rate: float = 0.02, late_rate: float = 0.01, **_) -> dict:
    """The sources' business day ``start.date()`` (orders, events, reviews)."""
    from lifecycle.sources.simulator import simulate_day

    summary = simulate_day(settings, start.date(), seed=int(seed), scale=int(scale),
                           bad_rate=float(bad_rate), late_rate=float(late_rate))
    return {**summary, "rows_out": summary.get("events_sent", 0)}


def ingest_sales(settings: Settings, start: datetime, end: datetime, **_) -> dict:
    """CDC from the sales database's replication slot to the raw zone."""
    from lifecycle.ingest import sales_cdc

    result = sales_cdc.run(settings)
    result.pop("files", None)  # XCom carries counts, not the object list
    return result


def ingest_events(settings: Settings, start: datetime, end: datetime, **_) -> dict:
    """The Kinesis stream, through Firehose, to the raw zone."""
    from lifecycle.ingest import user_activity

    result = user_activity.run(settings)
    result.pop("objects", None)
    return result


def ingest_reviews(settings: Settings, start: datetime, end: datetime, **_) -> dict:
    """The DynamoDB table's export (or stream) as of ``end``."""
    from lifecycle.ingest import reviews

    return reviews.run(settings, point_in_time=end)


def lake(settings: Settings, start: datetime, end: datetime, *, context: dict | None = None, **_) -> dict:
    """The lake jobs, raw → clean → curated (here on DuckDB, or on AWS Glue)."""
    from lifecycle.pipeline.lake_jobs import run_lake_jobs

    return run_lake_jobs(settings, start, end, context)


def check_quarantine(settings: Settings, start: datetime, end: datetime, **_) -> dict:
    """Quarantined records by reason to CloudWatch; an alert past the rate."""
    from lifecycle.dataops.quarantine import check

    return check(settings)


def maintain_lake(settings: Settings, start: datetime, end: datetime, **_) -> dict:
    """Iceberg maintenance of every lake table: compaction, snapshot expiry, unreferenced files."""
    from lifecycle.jobs.maintenance import maintain

    return maintain(settings)


def warehouse(settings: Settings, start: datetime, end: datetime, **_) -> dict:
    """Clean zone → the warehouse's ``landing`` schema."""
    from lifecycle.warehouse.load import run

    return run(settings, start, end)


def dbt(settings: Settings, start: datetime | None = None, end: datetime | None = None, *,
        full_refresh: bool = False, **_) -> dict:
    """``dbt build`` of the whole project (what the Cosmos task group runs model by model)."""
    from lifecycle import faults
    from lifecycle.pipeline.environment import airflow_env
    from lifecycle.warehouse.dbt import build_lock, dbt_command

    env = {**os.environ, **airflow_env(settings), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    with build_lock(settings):
        proc = subprocess.run(dbt_command("build", *(["--full-refresh"] if full_refresh else [])), env=env,
                              capture_output=True, text=True)
        faults.point("dbt.built")  # chaos: a second build must wait for this one
    if proc.returncode != 0:
        raise RuntimeError(f"dbt build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return {"dbt": "ok"}


def recommend(settings: Settings, start: datetime, end: datetime, **_) -> dict:
    """Product embeddings and recommendations into ``serving_next``."""
    from lifecycle.serve.recommend import run

    return run(settings)


def publish(settings: Settings, start: datetime, end: datetime, **_) -> dict:
    """``serving_next`` swapped in as ``serving``, the BI reader's grants; refused unless it holds
    dbt's serving models and the recommendations."""
    from lifecycle.serve import recommend
    from lifecycle.serve.publish import run
    from lifecycle.warehouse.dbt import SERVING_MODELS

    return run(settings, required=(*SERVING_MODELS, *recommend.TABLES))


def serve(settings: Settings, start: datetime, end: datetime, **_) -> dict:
    return {"recommend": recommend(settings, start, end), "publish": publish(settings, start, end)}


def observe(settings: Settings, start: datetime, end: datetime, **_) -> dict:
    """Freshness, volume and schema monitors over the interval."""
    from lifecycle.dataops.observe import run

    return run(settings, start, end)


def evaluate_alarms(settings: Settings, start: datetime, end: datetime, **_) -> dict:
    """The CloudWatch alarms an emulator does not evaluate, evaluated; SNS alerts."""
    from lifecycle.dataops.alarms import evaluate

    states = evaluate(settings, only_emulated=True)
    return {"alarms": len(states), "in_alarm": [s["alarm"] for s in states if s["state"] == "ALARM"],
            "alerted": sum(s["alerted"] for s in states)}


RUNNERS: dict[str, Callable[..., dict]] = {
    "simulate": simulate,
    "ingest_sales": ingest_sales,
    "ingest_events": ingest_events,
    "ingest_reviews": ingest_reviews,
    "lake": lake,
    "check_quarantine": check_quarantine,
    "maintain_lake": maintain_lake,
    "warehouse": warehouse,
    "dbt": dbt,
    "recommend": recommend,
    "publish": publish,
    "serve": serve,
    "observe": observe,
    "evaluate_alarms": evaluate_alarms,
}
# the lifecycle from the sources' changes to serving, in order (what chaos and recovery run)
STAGES = ("ingest_sales", "ingest_events", "ingest_reviews", "lake", "warehouse", "dbt", "serve")
# what the quick chaos cases reconcile: everything up to the warehouse landing schema
TO_LANDING = STAGES[:5]


def default_interval() -> tuple[datetime, datetime]:
    """The last whole hour: the interval a run outside Airflow covers when none is given."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=1), end


def run_stage(settings: Settings, stage: str, start: datetime | None = None,
              end: datetime | None = None, **options) -> dict:
    if stage not in RUNNERS:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(RUNNERS)}")
    if start is None or end is None:
        start, end = default_interval()
    return RUNNERS[stage](settings, start, end, **options)


def run_stages(settings: Settings, stages=STAGES, start: datetime | None = None,
               end: datetime | None = None) -> dict:
    return {s: run_stage(settings, s, start, end) for s in stages}


def run_from_context(stage: str, context: dict, **options) -> dict:
    """What a DAG task runs: the stage over the task's data interval, settings from the
    environment. ``context`` is the dict Airflow passes a ``@task`` (no Airflow import here);
    every runner gets the DAG's params (the simulator's options) and the context itself (the
    Glue dispatch runs operators in it) as keywords, and takes the ones it uses."""
    from lifecycle.pipeline.context import interval

    start, end = interval(context)
    options = {**dict(context.get("params") or {}), **options, "context": context}
    return run_stage(Settings.from_env(), stage, start, end, **options)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from lifecycle.dataops.preflight import check

    parser = argparse.ArgumentParser(prog="python -m lifecycle.pipeline.stages")
    parser.add_argument("stages", nargs="+", choices=list(RUNNERS))
    parser.add_argument("--start")
    parser.add_argument("--end")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    check(settings)  # as `lifecycle run` does: a wrong setting named before any stage starts
    start = datetime.fromisoformat(args.start) if args.start else None
    end = datetime.fromisoformat(args.end) if args.end else None
    print(json.dumps(run_stages(settings, args.stages, start, end), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
