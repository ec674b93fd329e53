"""DAG serve_publish: product embeddings and recommendations into serving_next, then swap the
serving tables in atomically and publish the dashboard."""

from datetime import UTC, datetime

from airflow.sdk import dag, task

from lifecycle.dataops.callbacks import default_args, run_deadline
from lifecycle.pipeline.assets import SERVING, WAREHOUSE_MODELS
from lifecycle.pipeline.tags import doc_footer, tags

DOC = """
### Serve: publish
`dbt_build` builds the serving tables into `serving_next`. This DAG first adds the
product embeddings (co-purchase and co-view behaviour, PPMI + SVD, stored in pgvector with
an HNSW index) and the top-k `product_recommendations` to `serving_next`, then renames it
to `serving` in one transaction (readers never see a half-built table), grants `bi_reader`,
and writes the static HTML dashboard with its charts (local file and the serving bucket).
"""


@dag(
    schedule=[WAREHOUSE_MODELS],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    deadline=run_deadline(),
    tags=tags("serving"),
    doc_md=DOC + doc_footer("serving"),
)
def serve_publish():
    @task
    def build_recommendations() -> dict:
        from lifecycle.serve.recommend import run
        from lifecycle.settings import Settings

        return run(Settings.from_env())

    @task(outlets=[SERVING])
    def swap_and_publish() -> dict:
        from lifecycle.serve.publish import run
        from lifecycle.settings import Settings

        return run(Settings.from_env())

    build_recommendations() >> swap_and_publish()


serve_publish()
