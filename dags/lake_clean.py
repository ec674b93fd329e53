"""DAG lake_clean: raw zone → clean zone with Glue-style jobs, registered in the Glue Catalog."""

from airflow.sdk import dag

from lifecycle.pipeline.assets import CLEAN_LAKE, RAW_EVENTS, RAW_REVIEWS, RAW_SALES
from lifecycle.pipeline.tasks import dag_args, stage_task

DOC = """
### Transform: raw → clean (Glue-style jobs)
Runs the Glue-style jobs (PySpark DataFrame API, executed on DuckDB through SQLFrame
locally, on Glue/Spark unchanged): current state of the `sales` tables from the DMS files,
typed and deduplicated events with bad records sent to `quarantine/` with a reason,
reviews from the newest export; PII hashed or masked. Partitioned Parquet, every table
and partition registered in the Glue database `lake_clean`. Job bookmarks make every run
after the first incremental (only new raw objects; only the partitions they touch are
rewritten). `curate_features` then builds ML features and a training set in `lake_curated`.
Runs when any raw asset updates. Details: docs/lake-layout.md.
`check_quarantine` then publishes quarantined records by reason to CloudWatch and alerts
when a new batch has more than `LIFECYCLE_QUARANTINE_ALERT_RATE` of its records rejected.
"""


@dag(
    schedule=(RAW_SALES | RAW_EVENTS | RAW_REVIEWS),
    **dag_args("transformation", "storage", doc=DOC, extra_tags=("glue",)),
)
def lake_clean():
    jobs = stage_task("lake", task_id="run_clean_jobs", outlets=[CLEAN_LAKE])
    jobs() >> stage_task("check_quarantine")()


lake_clean()
