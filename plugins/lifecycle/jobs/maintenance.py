"""Table maintenance of the lake's Iceberg tables: compaction, snapshot expiry, orphan files.

Input: ``Settings`` (``settings.maintenance``: the file count per partition past which a
partition is compacted, how many snapshots are kept and for how long, how old an unreferenced
file must be before it is deleted) and ``now`` (when the run happens: snapshot and object ages
are wall-clock facts of the store, not simulated time).
Output: ``maintain`` returns, per clean and curated table, the partitions compacted, the
snapshots expired, the files deleted and the file count of its fullest partition, and
publishes ``LakeFilesPerPartitionMax``, ``LakeSnapshots`` and ``LakeFilesDeleted`` per table to
CloudWatch. DAG ``lake_maintenance`` runs it daily; ``lifecycle lake maintain`` by hand.

Per table, in this order, under the lake's lock (``runner.lake_lock``: a lake run merges
against the files compaction rewrites, so the two never overlap):

1. **Compaction**: a partition with more data files than ``max_files_per_partition`` is read
   and written back as one overwrite of that partition (pyiceberg's ``overwrite`` with the
   partition filter: one commit for all the table's compacted partitions, marked
   ``lifecycle.maintenance=compaction`` in the snapshot summary). The rows are the same, so
   downstream readers that compare file sets (bookmarks, the warehouse load) reread those
   partitions once and find nothing changed.
2. **Snapshot expiry**: snapshots older than ``snapshot_max_age_hours``, past the newest
   ``snapshots_kept`` (pyiceberg's ``expire_snapshots``, a metadata commit).
3. **Files no snapshot names any more**: pyiceberg's expiry removes snapshots from the
   metadata but deletes no file, and a killed writer leaves the files it wrote before its
   commit. Every object under the table's location that no kept snapshot, manifest list,
   manifest or metadata file names is deleted when it is older than ``orphan_min_age_hours``
   (what Spark's ``expire_snapshots`` and ``remove_orphan_files`` procedures do; pyiceberg
   0.12 has neither file cleanup, so this part is by hand).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

from lifecycle.clients import aws
from lifecycle.lake import iceberg
from lifecycle.lake.catalog import CLEAN_TABLES, CURATED_TABLES, TableSpec
from lifecycle.settings import Settings

COMPACTION = {"lifecycle.maintenance": "compaction"}


def files_per_partition(table) -> Counter:
    """``{partition value: data files}`` of the current snapshot (``""`` when unpartitioned)."""
    return Counter(f.partition for f in iceberg.data_file_entries(table))


def compact(table, spec: TableSpec, counts: Counter, max_files: int) -> list[str]:
    """Rewrite each partition holding more than ``max_files`` data files (``counts``:
    ``files_per_partition`` of the current snapshot) as few files, in one commit for the
    table; returns the partitions rewritten."""
    crowded = sorted(p for p, n in counts.items() if n > max_files)
    if not crowded:
        return []
    column = spec.partition[0] if spec.partition else None
    where = iceberg.partition_filter(column, crowded) if column else None
    rows = (table.scan(row_filter=where) if where is not None else table.scan()).to_arrow()
    iceberg.overwrite_partitions(table, rows, column, crowded, COMPACTION)
    return crowded


def expire(table, kept: int, max_age: timedelta, now: datetime) -> list[int]:
    """Expire the snapshots older than ``max_age`` that are not among the newest ``kept`` of
    the current snapshot's history (nor any branch or tag head); returns their ids."""
    from itertools import islice

    from pyiceberg.table.snapshots import ancestors_of

    current = table.current_snapshot()
    if current is None:
        return []
    newest = islice(ancestors_of(current, table.metadata), kept)
    protected = {s.snapshot_id for s in newest} | {ref.snapshot_id for ref in table.metadata.refs.values()}
    cutoff = (now - max_age).timestamp() * 1000
    old = [s.snapshot_id for s in table.metadata.snapshots
           if s.timestamp_ms < cutoff and s.snapshot_id not in protected]
    if old:
        table.maintenance.expire_snapshots().by_ids(old).commit()
    return old


def referenced(table) -> set[str]:
    """Every file the table's metadata names: its metadata file and the ones in its log, each
    snapshot's manifest list, manifests and live data files, statistics files."""
    metadata, io = table.metadata, table.io
    out = {table.metadata_location, *(e.metadata_file for e in metadata.metadata_log)}
    out.update(s.statistics_path for s in metadata.statistics)
    seen: set[str] = set()
    for snapshot in metadata.snapshots:
        out.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            out.add(manifest.manifest_path)
            if manifest.manifest_path in seen:  # a manifest is shared by the snapshots after it
                continue
            seen.add(manifest.manifest_path)
            out.update(e.data_file.file_path for e in manifest.fetch_manifest_entry(io, discard_deleted=True))
    return out


def delete_unreferenced(settings: Settings, table, min_age: timedelta, now: datetime) -> int:
    """Delete the objects under the table's location that ``referenced`` does not name and
    that are older than ``min_age``; returns how many."""
    where = urlparse(table.location())
    bucket, prefix = where.netloc, where.path.strip("/") + "/"
    keep, cutoff = referenced(table), now - min_age
    s3, gone = aws(settings, "s3"), []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        gone += [o["Key"] for o in page.get("Contents", [])
                 if f"s3://{bucket}/{o['Key']}" not in keep and o["LastModified"] < cutoff]
    for i in range(0, len(gone), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in gone[i:i + 1000]], "Quiet": True})
    return len(gone)


def maintain_table(settings: Settings, spec: TableSpec, now: datetime) -> dict | None:
    """Compaction, expiry and clean-up of one table; None when it has no snapshot yet."""
    table = iceberg.load_table(settings, spec)
    if table is None or table.current_snapshot() is None:
        return None
    cfg = settings.maintenance
    counts = files_per_partition(table)
    compacted = compact(table, spec, counts, cfg.max_files_per_partition)
    if compacted:
        counts = files_per_partition(table)
    expired = expire(table, cfg.snapshots_kept, timedelta(hours=cfg.snapshot_max_age_hours), now)
    deleted = delete_unreferenced(settings, table, timedelta(hours=cfg.orphan_min_age_hours), now)
    return {"compacted": compacted, "snapshots_expired": len(expired), "files_deleted": deleted,
            "snapshots": len(table.metadata.snapshots), "files": sum(counts.values()),
            "files_per_partition_max": max(counts.values(), default=0)}


def publish(settings: Settings, tables: dict[str, dict], now: datetime) -> None:
    from lifecycle.dataops.metrics import put

    data = []
    for name, t in tables.items():
        dims = [{"Name": "Table", "Value": name}, {"Name": "Target", "Value": settings.target}]
        for metric, key in (("LakeFilesPerPartitionMax", "files_per_partition_max"),
                            ("LakeSnapshots", "snapshots"), ("LakeFilesDeleted", "files_deleted")):
            data.append({"MetricName": metric, "Dimensions": dims, "Timestamp": now,
                         "Value": float(t[key]), "Unit": "Count"})
    if data:
        put(settings, data)


def maintain(settings: Settings, now: datetime | None = None) -> dict:
    """Maintain every clean and curated table (module docstring); returns what was done."""
    from lifecycle.jobs.engine.runner import lake_lock

    settings = settings.for_stage("transform")  # the role that commits to the lake
    now = now or datetime.now(UTC)
    with lake_lock(settings):
        tables = {spec.name: out for spec in [*CLEAN_TABLES.values(), *CURATED_TABLES.values()]
                  if (out := maintain_table(settings, spec, now)) is not None}
    publish(settings, tables, now)
    return {"tables": tables,
            "compacted": sum(len(t["compacted"]) for t in tables.values()),
            "snapshots_expired": sum(t["snapshots_expired"] for t in tables.values()),
            "files_deleted": sum(t["files_deleted"] for t in tables.values()),
            "files_per_partition_max": max((t["files_per_partition_max"] for t in tables.values()), default=0)}
