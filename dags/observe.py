"""DAG observe: data-observability monitors on the lake and the warehouse, then the CloudWatch alarms."""

from airflow.sdk import dag

from lifecycle.pipeline.assets import SERVING
from lifecycle.pipeline.tasks import dag_args, stage_task

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
    **dag_args("dataops", doc=DOC, extra_tags=("observability",)),
)
def observe():
    stage_task("observe", task_id="monitor_datasets")() >> stage_task("evaluate_alarms")()


observe()
