"""A DAG whose task logs a known line: proves that task logs reach CloudWatch Logs."""

from datetime import UTC, datetime

from airflow.sdk import dag, task

from lifecycle.dataops.callbacks import default_args


@dag(schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False,
     default_args=default_args(retries=0), tags=["lifecycle", "test"],
     doc_md="Logs a known line so the tests can read the task log back from CloudWatch Logs.")
def log_probe():
    @task
    def say_hello(**context) -> dict:
        import logging

        logging.getLogger("lifecycle.probe").info("hello from the log probe, run %s", context["run_id"])
        return {"rows_out": 7}

    say_hello()


log_probe()
