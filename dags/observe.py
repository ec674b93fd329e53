"""DAG observe: data-observability monitors on the lake and the warehouse, then the CloudWatch alarms."""

from datetime import UTC, datetime

from airflow.sdk import dag, task

from lifecycle.dataops.callbacks import default_args, run_deadline
from lifecycle.pipeline.assets import SERVING
from lifecycle.pipeline.tags import doc_footer, tags

DOC = """
### DataOps: observe
Runs after every publication of `serving`. `monitor_datasets` profiles the clean-zone
tables (DuckDB over S3) and the warehouse tables for the data interval and compares each
with its own history: volume (robust z-score on the median and MAD of the last runs),
schema drift, null rate, distribution shift (PSI), freshness, completeness. Profiles and
results go to the `observability` schema, metrics to CloudWatch, one SNS alert lists what
failed, and the page `observability.html` sits next to the dashboard. `evaluate_alarms`
then applies the CloudWatch alarms of `infra/` (the emulators do not evaluate alarms;
on AWS CloudWatch does and this step is skipped).
"""


@dag(
    schedule=[SERVING],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    deadline=run_deadline(),
    tags=tags("dataops", extra=("observability",)),
    doc_md=DOC + doc_footer("dataops"),
)
def observe():
    @task
    def monitor_datasets(**context) -> dict:
        from lifecycle.dataops.observe import run
        from lifecycle.pipeline.context import interval
        from lifecycle.settings import Settings

        start, end = interval(context)
        return run(Settings.from_env(), start, end)

    @task
    def evaluate_alarms() -> dict:
        from lifecycle.dataops.alarms import evaluate
        from lifecycle.settings import Settings

        states = evaluate(Settings.from_env(), only_emulated=True)
        return {"alarms": len(states), "in_alarm": [s["alarm"] for s in states if s["state"] == "ALARM"],
                "alerted": sum(s["alerted"] for s in states)}

    monitor_datasets() >> evaluate_alarms()


observe()
