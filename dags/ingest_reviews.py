"""DAG ingest_reviews: DynamoDB `product_reviews` → raw zone (first-load export, then its stream)."""

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag

from lifecycle.pipeline.assets import RAW_REVIEWS, SOURCE_REVIEWS
from lifecycle.pipeline.tasks import dag_args, stage_task

DOC = """
### Ingest: DynamoDB → S3 raw (export once, then DynamoDB Streams)
First run: exports `product_reviews` to `reviews/AWSDynamoDB/<exportId>/` (DynamoDB JSON
lines + `manifest-summary.json`), the layout of DynamoDB's export to S3. Every run: reads
the table's DynamoDB stream from its checkpoints (lease table, as the Kinesis consumer) and
writes one newline-delimited JSON object of stream records per shard batch under
`reviews/stream/YYYY/MM/DD/HH/`, then moves the checkpoint. Hourly, well inside the
stream's 24-hour retention; a stream that was trimmed or replaced gets a fresh export.
Emits the `raw_product_reviews` asset. See docs/reviews.md.
"""


@dag(
    # hourly, and as soon as the simulator has written to the source
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"), assets=[SOURCE_REVIEWS]),
    **dag_args("ingestion", doc=DOC, extra_tags=("source:dynamodb",)),
)
def ingest_reviews():
    stage_task("ingest_reviews", task_id="capture_reviews", outlets=[RAW_REVIEWS])()


ingest_reviews()
