"""DAG lake_clean: raw zone → clean zone with Glue-style jobs, registered in the Glue Catalog."""

from datetime import UTC, datetime

from airflow.sdk import dag, task

from lifecycle.dataops.callbacks import default_args, run_deadline
from lifecycle.pipeline.assets import CLEAN_LAKE, RAW_EVENTS, RAW_REVIEWS, RAW_SALES
from lifecycle.pipeline.tags import doc_footer, tags

DOC = """
### Transform: raw → clean (Glue-style jobs)
Runs the Glue-style jobs (PySpark DataFrame API, executed on DuckDB through SQLFrame
locally, on Glue/Spark unchanged): current state of the `sales` tables from the DMS files,
typed and deduplicated events with bad records sent to `quarantine/` with a reason,
reviews from the newest export; PII hashed or masked. Partitioned Parquet, every table
and partition registered in the Glue database `lake_clean`. Job bookmarks make every run
after the first incremental (only new raw objects; only the partitions they touch are
rewritten). `curate_features` then builds ML features and a training set in `lake_curated`.
Runs when any raw asset updates. Details: docs/lake-layout.md.
`check_quarantine` then publishes quarantined records by reason to CloudWatch and alerts
when a new batch has more than `LIFECYCLE_QUARANTINE_ALERT_RATE` of its records rejected.
"""


@dag(
    schedule=(RAW_SALES | RAW_EVENTS | RAW_REVIEWS),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    deadline=run_deadline(),
    tags=tags("transformation", "storage", extra=("glue",)),
    doc_md=DOC + doc_footer("transformation", "storage"),
)
def lake_clean():
    @task(outlets=[CLEAN_LAKE])
    def run_clean_jobs(**context) -> dict:
        from lifecycle.jobs.engine.dispatch import run_lake_jobs
        from lifecycle.pipeline.context import interval
        from lifecycle.settings import Settings

        start, end = interval(context)
        return run_lake_jobs(Settings.from_env(), start, end, context)

    @task
    def check_quarantine() -> dict:
        from lifecycle.dataops.quarantine import check
        from lifecycle.settings import Settings

        return check(Settings.from_env())

    run_clean_jobs() >> check_quarantine()


lake_clean()
