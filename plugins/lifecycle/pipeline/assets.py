"""The lifecycle's Airflow assets: the edges of the asset graph in the UI.

Input: nothing (pure declarations, cheap to import at DAG parse time).
Output: ``Asset`` objects that DAGs emit and downstream DAGs are scheduled on, so the asset
graph reads sources → raw → clean → warehouse → serving. The three sources are emitted by the
simulator (``simulate_sales_platform``) and wake their ingestion DAG besides its hourly run.
Names, not URIs, identify them, so no bucket or host is baked into the graph.
"""

from airflow.sdk import Asset

SOURCE_SALES = Asset(name="source_sales_rds", uri="lifecycle://source/sales")
SOURCE_EVENTS = Asset(name="source_user_activity_kinesis", uri="lifecycle://source/events")
SOURCE_REVIEWS = Asset(name="source_product_reviews_dynamodb", uri="lifecycle://source/reviews")
RAW_SALES = Asset(name="raw_sales", uri="lifecycle://raw/sales")
RAW_EVENTS = Asset(name="raw_user_activity", uri="lifecycle://raw/events")
RAW_REVIEWS = Asset(name="raw_product_reviews", uri="lifecycle://raw/reviews")
CLEAN_LAKE = Asset(name="lake_clean", uri="lifecycle://clean")
WAREHOUSE_LANDING = Asset(name="warehouse_landing", uri="lifecycle://warehouse/landing")
WAREHOUSE_MODELS = Asset(name="warehouse_models", uri="lifecycle://warehouse/models")
SERVING = Asset(name="serving", uri="lifecycle://warehouse/serving")
