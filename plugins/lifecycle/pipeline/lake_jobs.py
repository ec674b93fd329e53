"""Where the lake jobs of one ``lake_clean`` run execute: here (DuckDB) or on AWS Glue.

Input: ``Settings`` (``engines.jobs``: ``local`` by default, ``glue`` on the aws target only),
the data interval and, for Glue, the Airflow task context. Output: the run metadata of
``runner.run_lake_clean`` (local) or ``{"engine": "glue", "jobs": [...], "catalog": ...}``.

On Glue each job is one ``GlueJobOperator`` run (the Amazon provider's operator, executed
inside this task so the DAG's shape is the same on every target), in ``runner.JOBS`` order:
``clean_events`` reads the products ``clean_sales`` wrote. docs/glue-jobs.md has the details.
"""

from __future__ import annotations

from datetime import datetime

from lifecycle.settings import Settings


def run_lake_jobs(settings: Settings, start: datetime, end: datetime, context: dict | None = None) -> dict:
    settings = settings.for_stage("transform")  # its IAM role when stage roles are on
    if settings.engines.jobs != "glue":
        from lifecycle.jobs.engine.runner import run_lake_clean

        return run_lake_clean(settings, start, end)
    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator

    from lifecycle.jobs.engine.contract import JOBS
    from lifecycle.jobs.glue.deploy import glue_job_operator_kwargs
    from lifecycle.lake.catalog import CLEAN_TABLES, CURATED_TABLES
    from lifecycle.lake.iceberg import describe_tables

    runs = []
    for job in JOBS:
        op = GlueJobOperator(task_id=f"glue_{job}", **glue_job_operator_kwargs(settings, job, (start, end)))
        runs.append({"job": job, "run_id": op.execute(context or {})})
    return {"engine": "glue", "jobs": runs,
            "catalog": describe_tables(settings, [*CLEAN_TABLES.values(), *CURATED_TABLES.values()])}
