"""DAG ingest_sales: RDS Postgres `sales` → raw zone, as AWS DMS (full load + CDC)."""

from datetime import UTC, datetime

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from lifecycle.dataops.callbacks import default_args, run_deadline
from lifecycle.pipeline.assets import RAW_SALES, SOURCE_SALES
from lifecycle.pipeline.tags import doc_footer, tags

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
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    deadline=run_deadline(),
    tags=tags("ingestion", extra=("source:rds",)),
    doc_md=DOC + doc_footer("ingestion"),
)
def ingest_sales():
    @task(outlets=[RAW_SALES])
    def replicate_sales() -> dict:
        from lifecycle.ingest import sales_cdc
        from lifecycle.settings import Settings

        result = sales_cdc.run(Settings.from_env())
        result.pop("files", None)  # XCom carries counts, not the object list
        return result

    replicate_sales()


ingest_sales()
