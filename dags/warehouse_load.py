"""DAG warehouse_load: clean zone → `warehouse.landing` with COPY (as Redshift COPY from S3)."""

from datetime import UTC, datetime

from airflow.sdk import dag, task

from lifecycle.dataops.callbacks import default_args, run_deadline
from lifecycle.pipeline.assets import CLEAN_LAKE, WAREHOUSE_LANDING
from lifecycle.pipeline.tags import doc_footer, tags

DOC = """
### Load: clean zone → warehouse landing
Loads every clean table into the `landing` schema of the `warehouse` database (the
Redshift stand-in) with Postgres `COPY`, one transaction per table, and records the files
loaded in `landing.load_manifest`. A rerun replaces, never appends.
"""


@dag(
    schedule=[CLEAN_LAKE],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    deadline=run_deadline(),
    tags=tags("storage", extra=("warehouse", "load")),
    doc_md=DOC + doc_footer("storage"),
)
def warehouse_load():
    @task(outlets=[WAREHOUSE_LANDING])
    def copy_into_landing(**context) -> dict:
        from lifecycle.pipeline.context import interval
        from lifecycle.settings import Settings
        from lifecycle.warehouse.load import run

        start, end = interval(context)
        return run(Settings.from_env(), start, end)

    copy_into_landing()


warehouse_load()
