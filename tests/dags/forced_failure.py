"""A DAG that fails on purpose, with the lifecycle's callbacks: proves the alert path.

The task has two retries (no delay): three tries fail, and exactly one alert must arrive.
"""

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task

from lifecycle.dataops.callbacks import default_args


@dag(schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False,
     default_args=default_args(retries=2, retry_delay=timedelta(0), retry_exponential_backoff=False), tags=["lifecycle", "test"],
     doc_md="Fails on purpose so the tests can read the SNS alert from the SQS subscription.")
def forced_failure():
    @task
    def explode():
        raise ValueError("forced failure for the alert test")

    explode()


forced_failure()
