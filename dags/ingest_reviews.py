"""DAG ingest_reviews: DynamoDB `product_reviews` → raw zone (first-load export, then its stream)."""

from datetime import UTC, datetime

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from lifecycle.dataops.callbacks import default_args, run_deadline
from lifecycle.pipeline.assets import RAW_REVIEWS, SOURCE_REVIEWS
from lifecycle.pipeline.tags import doc_footer, tags

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
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    deadline=run_deadline(),
    tags=tags("ingestion", extra=("source:dynamodb",)),
    doc_md=DOC + doc_footer("ingestion"),
)
def ingest_reviews():
    @task(outlets=[RAW_REVIEWS])
    def capture_reviews(**context) -> dict:
        from lifecycle.ingest import reviews
        from lifecycle.pipeline.context import interval
        from lifecycle.settings import Settings

        _, end = interval(context)
        return reviews.run(Settings.from_env(), point_in_time=end)

    capture_reviews()


ingest_reviews()
