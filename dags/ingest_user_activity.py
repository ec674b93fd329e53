"""DAG ingest_user_activity: Kinesis `user-activity` → raw zone, as Firehose writes it."""

from datetime import UTC, datetime

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from lifecycle.dataops.callbacks import default_args, run_deadline
from lifecycle.pipeline.assets import RAW_EVENTS, SOURCE_EVENTS
from lifecycle.pipeline.tags import doc_footer, tags

DOC = """
### Ingest: Kinesis → S3 raw (Firehose layout)
Reads every shard of the `user-activity` stream from its checkpoint (kept in a DynamoDB
lease table, as the Kinesis Client Library does) and writes one newline-delimited JSON
object per shard batch under `events/YYYY/MM/DD/HH/`, then moves the checkpoint.
Emits the `raw_user_activity` asset. See README › *Ingestion*.
"""


@dag(
    # hourly, and as soon as the simulator has written to the source
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"), assets=[SOURCE_EVENTS]),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    deadline=run_deadline(),
    tags=tags("ingestion", extra=("source:kinesis",)),
    doc_md=DOC + doc_footer("ingestion"),
)
def ingest_user_activity():
    @task(outlets=[RAW_EVENTS])
    def consume_stream() -> dict:
        from lifecycle.ingest import user_activity
        from lifecycle.settings import Settings

        result = user_activity.run(Settings.from_env())
        result.pop("objects", None)
        return result

    consume_stream()


ingest_user_activity()
