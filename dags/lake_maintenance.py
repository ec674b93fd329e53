"""DAG lake_maintenance: the lake's Iceberg tables compacted, old snapshots expired, unreferenced files deleted."""

from airflow.sdk import dag

from lifecycle.pipeline.tasks import dag_args, stage_task

DOC = """
### Storage: Iceberg table maintenance
Daily, and never during a `lake_clean` run (both take the lake's lock). For every table of
`lake_clean` and `lake_curated`: a partition with more data files than
`LIFECYCLE_LAKE_MAX_FILES_PER_PARTITION` (8) is rewritten as one file (a commit marked
`lifecycle.maintenance=compaction`, same rows); snapshots older than
`LIFECYCLE_LAKE_SNAPSHOT_MAX_AGE_HOURS` (120) past the newest `LIFECYCLE_LAKE_SNAPSHOTS_KEPT`
(20) are expired; files no kept snapshot names (expired ones, a killed writer's) are deleted
once older than `LIFECYCLE_LAKE_ORPHAN_MIN_AGE_HOURS` (72). Publishes
`LakeFilesPerPartitionMax`, `LakeSnapshots` and `LakeFilesDeleted` per table to CloudWatch.
By hand: `lifecycle lake maintain`. Details: docs/lake-layout.md, "Table maintenance".
"""


@dag(
    schedule="@daily",
    **dag_args("storage", doc=DOC, extra_tags=("iceberg",)),
)
def lake_maintenance():
    stage_task("maintain_lake")()


lake_maintenance()
