"""DAG serve_publish: product embeddings and recommendations into serving_next, then swap the
serving tables in atomically and publish the dashboard."""

from airflow.sdk import dag

from lifecycle.pipeline.assets import SERVING, WAREHOUSE_MODELS
from lifecycle.pipeline.tasks import dag_args, stage_task

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
    **dag_args("serving", doc=DOC),
)
def serve_publish():
    recommendations = stage_task("recommend", task_id="build_recommendations")
    recommendations() >> stage_task("publish", task_id="swap_and_publish", outlets=[SERVING])()


serve_publish()
