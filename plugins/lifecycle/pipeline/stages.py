"""Each stage of the lifecycle as one call, without Airflow: what each DAG's task calls.

Input: ``Settings`` (``Settings.from_env()`` in a child process), a stage name and the data
interval. Output: the stage's own return value (as its task would push to XCom).

The chaos suite runs stages here, in the test process or as ``python -m
lifecycle.pipeline.stages <stage> [<stage> ...] [--start ISO --end ISO]`` in a child process
it can SIGKILL (``lifecycle.faults``): a stage is the unit a worker runs, so a child per stage
is what a killed worker looks like. Every stage runs ``preflight.check`` first, as the
``lifecycle run`` command does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from lifecycle.settings import Settings

STAGES = ("ingest_sales", "ingest_events", "ingest_reviews", "lake", "warehouse", "dbt", "serve")
# what the quick chaos cases reconcile: everything up to the warehouse landing schema
TO_LANDING = STAGES[:5]


def default_interval() -> tuple[datetime, datetime]:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=1), end


def run_stage(settings: Settings, stage: str, start: datetime | None = None,
              end: datetime | None = None) -> dict:
    if start is None or end is None:
        start, end = default_interval()
    if stage == "ingest_sales":
        from lifecycle.ingest import sales_cdc

        out = sales_cdc.run(settings)
        out.pop("files", None)
        return out
    if stage == "ingest_events":
        from lifecycle.ingest import user_activity

        out = user_activity.run(settings)
        out.pop("objects", None)
        return out
    if stage == "ingest_reviews":
        from lifecycle.ingest import reviews

        return reviews.run(settings, point_in_time=end)
    if stage == "lake":
        from lifecycle.jobs.engine.dispatch import run_lake_jobs

        return run_lake_jobs(settings, start, end)
    if stage == "warehouse":
        from lifecycle.warehouse.load import run

        return run(settings, start, end)
    if stage == "dbt":
        return run_dbt(settings)
    if stage == "serve":
        from lifecycle.serve import publish, recommend

        return {"recommend": recommend.run(settings), "publish": publish.run(settings)}
    raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")


def run_dbt(settings: Settings, *extra: str) -> dict:
    """``dbt build`` of the whole project (what the Cosmos task group runs model by model)."""
    import os

    from lifecycle.pipeline.environment import airflow_env
    from lifecycle.warehouse.dbt import dbt_command

    env = {**os.environ, **airflow_env(settings), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.run(dbt_command("build", *extra), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dbt build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return {"dbt": "ok"}


def run_stages(settings: Settings, stages=STAGES, start: datetime | None = None,
               end: datetime | None = None) -> dict:
    return {s: run_stage(settings, s, start, end) for s in stages}


def main(argv: list[str] | None = None) -> int:
    import argparse

    from lifecycle.dataops.preflight import check

    parser = argparse.ArgumentParser(prog="python -m lifecycle.pipeline.stages")
    parser.add_argument("stages", nargs="+", choices=STAGES)
    parser.add_argument("--start")
    parser.add_argument("--end")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    check(settings)
    start = datetime.fromisoformat(args.start) if args.start else None
    end = datetime.fromisoformat(args.end) if args.end else None
    print(json.dumps(run_stages(settings, args.stages, start, end), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
