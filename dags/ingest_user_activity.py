"""DAG ingest_user_activity: Kinesis `user-activity` → raw zone, as Firehose writes it."""

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag

from lifecycle.pipeline.assets import RAW_EVENTS, SOURCE_EVENTS
from lifecycle.pipeline.tasks import dag_args, stage_task

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
    **dag_args("ingestion", doc=DOC, extra_tags=("source:kinesis",)),
)
def ingest_user_activity():
    stage_task("ingest_events", task_id="consume_stream", outlets=[RAW_EVENTS])()


ingest_user_activity()
