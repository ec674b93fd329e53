"""DAG ingest_sales: RDS Postgres `sales` → raw zone, as AWS DMS (full load + CDC)."""

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag

from lifecycle.pipeline.assets import RAW_SALES, SOURCE_SALES
from lifecycle.pipeline.tasks import dag_args, stage_task

DOC = """
### Ingest: RDS → S3 raw (DMS layout)
Reads the `sales` database through a logical replication slot (`pgoutput`): a full load
the first time, then every committed change, written as Parquet in the AWS DMS S3-target
layout (`sales/public/<table>/LOAD*.parquet`, CDC files with `Op` I/U/D). The slot only
advances after the objects are written, so a retry never loses or doubles a change.
Emits the `raw_sales` asset. See README › *Ingestion* and `docs/lake-layout.md`.
"""


@dag(
    # hourly, and as soon as the simulator has written to the source
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"), assets=[SOURCE_SALES]),
    **dag_args("ingestion", doc=DOC, extra_tags=("source:rds",)),
)
def ingest_sales():
    stage_task("ingest_sales", task_id="replicate_sales", outlets=[RAW_SALES])()


ingest_sales()
