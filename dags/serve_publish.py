"""DAG serve_publish: swap the freshly built serving tables in atomically; publish the dashboard."""

from datetime import UTC, datetime

from airflow.sdk import dag, task

from lifecycle.assets import SERVING, WAREHOUSE_MODELS
from lifecycle.dataops.callbacks import default_args, run_deadline

DOC = """
### Serve: publish
`dbt_build` builds the serving tables into `serving_next`; this DAG renames it to
`serving` in one transaction (readers never see a half-built table), grants `bi_reader`,
and writes the static HTML dashboard (local file and the serving bucket).
"""


@dag(
    schedule=[WAREHOUSE_MODELS],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    deadline=run_deadline(),
    tags=["lifecycle", "serve"],
    doc_md=DOC,
)
def serve_publish():
    @task(outlets=[SERVING])
    def swap_and_publish() -> dict:
        from lifecycle.serve.publish import run
        from lifecycle.settings import Settings

        return run(Settings.from_env())

    swap_and_publish()


serve_publish()
