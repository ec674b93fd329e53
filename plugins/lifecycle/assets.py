"""The lifecycle's Airflow assets: the edges of the asset graph in the UI.

Input: nothing (pure declarations, cheap to import at DAG parse time).
Output: ``Asset`` objects that ingestion DAGs emit and downstream DAGs are scheduled on.
Names, not URIs, identify them, so no bucket or host is baked into the graph.
"""

from airflow.sdk import Asset

RAW_SALES = Asset(name="raw_sales", uri="lifecycle://raw/sales")
RAW_EVENTS = Asset(name="raw_user_activity", uri="lifecycle://raw/events")
RAW_REVIEWS = Asset(name="raw_product_reviews", uri="lifecycle://raw/reviews")
CLEAN_LAKE = Asset(name="lake_clean", uri="lifecycle://clean")
WAREHOUSE_LANDING = Asset(name="warehouse_landing", uri="lifecycle://warehouse/landing")
WAREHOUSE_MODELS = Asset(name="warehouse_models", uri="lifecycle://warehouse/models")
SERVING = Asset(name="serving", uri="lifecycle://warehouse/serving")
