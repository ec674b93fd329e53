"""What the DAG files are made of: the arguments every lifecycle DAG shares, and stage tasks.

Input: the stage(s) a DAG belongs to, its docs and technology tags; a stage name of
``lifecycle.pipeline.stages.RUNNERS``. Output: ``dag_args(...)`` the keyword arguments of
``@dag`` (start date, no catchup, one active run, retries and callbacks, the run deadline,
tags and docs with the stage's footer); ``stage_task(stage, ...)`` an Airflow ``@task`` whose
body is ``stages.run_from_context`` — the same call chaos, recovery and the CLI make.

Cheap at parse time: building a task imports Airflow's task decorator only; the stage's
own modules are imported when the task runs.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lifecycle.dataops.callbacks import default_args, run_deadline
from lifecycle.pipeline.tags import doc_footer, tags

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)


def dag_args(*stages: str, doc: str, extra_tags: tuple[str, ...] = (), **default_arg_overrides) -> dict:
    return {
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "default_args": default_args(**default_arg_overrides),
        "deadline": run_deadline(),
        "tags": tags(*stages, extra=extra_tags),
        "doc_md": doc + doc_footer(*stages),
    }


def stage_task(stage: str, task_id: str | None = None, outlets=(), doc: str | None = None, **options):
    """An ``@task`` named ``task_id`` (default: the stage) that runs ``stage`` over its interval."""
    from airflow.sdk import task

    from lifecycle.pipeline.stages import RUNNERS

    if stage not in RUNNERS:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(RUNNERS)}")

    def run(**context) -> dict:
        from lifecycle.pipeline.stages import run_from_context

        return run_from_context(stage, context, **options)

    run.__name__ = run.__qualname__ = task_id or stage
    run.__doc__ = doc or RUNNERS[stage].__doc__
    return task(task_id=task_id or stage, outlets=list(outlets))(run)
