"""DAG ingest_reviews: DynamoDB `product_reviews` → raw zone, as a DynamoDB export."""

from datetime import UTC, datetime

from airflow.sdk import dag, task

from lifecycle.assets import RAW_REVIEWS
from lifecycle.dataops.callbacks import default_args

DOC = """
### Ingest: DynamoDB → S3 raw (export layout)
Exports the `product_reviews` table as of the end of the data interval to
`reviews/AWSDynamoDB/<exportId>/` (DynamoDB JSON lines + `manifest-summary.json`), the
layout of DynamoDB's export to S3. Emits the `raw_product_reviews` asset.
"""


@dag(
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["lifecycle", "ingest", "source:dynamodb"],
    doc_md=DOC,
)
def ingest_reviews():
    @task(outlets=[RAW_REVIEWS])
    def export_reviews(**context) -> dict:
        from lifecycle.airflow_context import interval
        from lifecycle.ingest import reviews
        from lifecycle.settings import Settings

        _, end = interval(context)
        return reviews.run(Settings.from_env(), point_in_time=end)

    export_reviews()


ingest_reviews()
