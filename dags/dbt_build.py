"""DAG dbt_build: warehouse landing → staging → intermediate → marts → serving_next (dbt via Cosmos).

Input: the ``warehouse.landing`` tables (asset ``WAREHOUSE_LANDING``, emitted by
warehouse_load) and the pre-built dbt manifest ``dbt_project/target/manifest.json``.
Output: the dbt models in schemas ``staging``, ``intermediate``, ``marts`` and
``serving_next`` of the warehouse, then the asset ``WAREHOUSE_MODELS`` (serve_publish
swaps ``serving_next`` into ``serving``). Wiring only: the Cosmos configuration lives in
``lifecycle.warehouse.dbt``.
"""

from airflow.sdk import dag, task
from cosmos import DbtTaskGroup

from lifecycle.pipeline.assets import WAREHOUSE_LANDING, WAREHOUSE_MODELS
from lifecycle.pipeline.cosmos import cosmos_configs
from lifecycle.pipeline.tasks import dag_args
from lifecycle.warehouse.dbt import SERVING_MODELS, SERVING_SCHEMA

DOC = """
### Transform: dbt models on the warehouse (Cosmos)
Runs the dbt project `dbt_project/` on the `warehouse` database: `staging` views (1:1 with
`landing`), `intermediate` (`int_order_lines`, `int_sessions`), `marts` tables (facts and
dimensions) and the serving tables `daily_sales`, `product_performance`, `funnel_daily`
with enforced contracts, built into **`serving_next`** only; `serve_publish` swaps them into
`serving` atomically, so readers never see a half-built schema.

The marts are incremental (the serving tables copy small incremental aggregates): only
what rows loaded into `landing` since their last build touch is recomputed, and only changed
rows are written (`--full-refresh` rebuilds; dbt_project/README.md, "Incremental models").

One task per model, `<model>_model_build`: `dbt build` of the model with its data tests
and unit tests. Relationship tests run as their own tasks after both of their models. A failing
test fails its task and stops everything downstream of it; `serving` keeps the last good
version. The dbt target comes from `DBT_TARGET` (`embedded`, `compose`, `redshift`) and the
credentials from the environment (see `dbt_project/profiles.yml`). The DAG is rendered from
the manifest: rebuild it with `dbt parse` after changing the dbt project.
"""


@dag(
    schedule=[WAREHOUSE_LANDING],
    **dag_args("transformation", doc=DOC, extra_tags=("dbt",)),
)
def dbt_build():
    # `dbt deps` is off through ProjectConfig.install_dbt_deps (operator_args' install_deps
    # is deprecated) and Cosmos' own datasets through RenderConfig.emit_datasets.
    models = DbtTaskGroup(group_id="dbt", **cosmos_configs())

    @task(outlets=[WAREHOUSE_MODELS])
    def models_built() -> dict:
        """Mark the models (serving_next included) as ready for serve_publish."""
        return {"serving_schema": SERVING_SCHEMA, "serving_models": list(SERVING_MODELS)}

    models >> models_built()


dbt_build()
