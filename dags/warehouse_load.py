"""DAG warehouse_load: clean zone → `warehouse.landing` with COPY (as Redshift COPY from S3)."""

from airflow.sdk import dag

from lifecycle.pipeline.assets import CLEAN_LAKE, WAREHOUSE_LANDING
from lifecycle.pipeline.tasks import dag_args, stage_task

DOC = """
### Load: clean zone → warehouse landing
Loads every clean table into the `landing` schema of the `warehouse` database (the
Redshift stand-in) with Postgres `COPY`, one transaction per table, and records the files
loaded in `landing.load_manifest`. A rerun replaces, never appends.
"""


@dag(
    schedule=[CLEAN_LAKE],
    **dag_args("storage", doc=DOC, extra_tags=("warehouse", "load")),
)
def warehouse_load():
    stage_task("warehouse", task_id="copy_into_landing", outlets=[WAREHOUSE_LANDING])()


warehouse_load()
