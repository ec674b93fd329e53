"""Rebuild the lake or the warehouse after it was damaged by hand (docs/recovery.md).

Input: ``Settings``. Output:
- ``rebuild_lake``: every clean and curated table rewritten from the raw zone (the job
  bookmarks are dropped first, so each job runs in full over every raw object); a table
  whose snapshot cannot be read whole (metadata or data files deleted by hand:
  ``lifecycle.lake.iceberg.damage``) is dropped first and created anew. Returns the lake
  run's metadata and the tables dropped, with why.
- ``rollback_table``: one lake table made current at an earlier snapshot of its history (an
  id, or the newest snapshot at or before a time): Iceberg's rollback, a metadata commit,
  no data file rewritten. What the later commits wrote is undone; the raw objects they read
  stay read (the job's bookmark is not touched: ``lifecycle jobs reset-bookmark`` and a run
  replay them). Readers downstream see the change as files gone and back (the warehouse
  load reloads those partitions). Returns the snapshots before and after, and the rows.
- ``rebuild_warehouse``: every ``landing`` table reloaded in full from the clean zone (the
  load manifest no longer trusted), then ``dbt build --full-refresh`` and the serving
  publish (recommendations, then ``serving_next`` swapped in as ``serving``); returns rows
  per landing table.

Why these are needed: the lake jobs' bookmarks remember the *inputs* they processed and
the warehouse load's manifest remembers the *objects* it copied; neither looks at what is
left of its outputs. Objects or rows deleted by hand downstream are therefore never
noticed by the incremental runs; a full rebuild from the layer below replays them. The
raw zone is the replayable source of the lake (and a new full load of ``sales``,
``lifecycle cdc resnapshot``, rebuilds raw ``sales/`` itself).
"""

from __future__ import annotations

from lifecycle.settings import Settings


def rebuild_lake(settings: Settings) -> dict:
    from lifecycle.jobs.engine import bookmarks
    from lifecycle.jobs.engine.contract import JOBS
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import CLEAN_TABLES, CURATED_TABLES
    from lifecycle.pipeline import stages

    dropped = {}
    for spec in (*CLEAN_TABLES.values(), *CURATED_TABLES.values()):
        why = iceberg.damage(settings, spec)
        if why:
            iceberg.drop_table(settings, spec)
            dropped[spec.name] = why
    bookmarks.reset(settings, list(JOBS))
    result = stages.run_stage(settings, "lake")  # the lake stage as its DAG task runs it
    jobs = result.get("jobs") or {}  # per job locally; a list of Glue job runs on the glue engine
    return {"rows_out": result.get("rows_out"), "rejected": result.get("rejected"), "dropped": dropped,
            "modes": {j: r.get("mode") for j, r in jobs.items()} if isinstance(jobs, dict) else {}}


def rollback_table(settings: Settings, table: str, snapshot: str) -> dict:
    """Make ``snapshot`` (``iceberg.parse_as_of``: a snapshot id, or the newest snapshot at or
    before a time) the current snapshot of the lake table ``table``; ``ValueError`` when it
    is not in the table's history."""
    from lifecycle.jobs.engine.runner import lake_lock
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import lake_table

    spec = lake_table(table)
    settings = settings.for_stage("transform")
    with lake_lock(settings):
        tbl = iceberg.load_table(settings, spec)
        if tbl is None or tbl.current_snapshot() is None:
            raise ValueError(f"lake table {table!r} has no snapshot to roll back")
        before = tbl.current_snapshot().snapshot_id
        point = iceberg.parse_as_of(snapshot)
        if isinstance(point, int):
            tbl.manage_snapshots().rollback_to_snapshot(point).commit()
        else:
            # "at or before": pyiceberg's rollback_to_timestamp takes the newest strictly before
            tbl.manage_snapshots().rollback_to_timestamp(int(point.timestamp() * 1000) + 1).commit()
        after = tbl.current_snapshot()
    return {"table": table, "from_snapshot": before, "to_snapshot": after.snapshot_id,
            "rows": int((after.summary or {}).get("total-records", 0))}


def rebuild_warehouse(settings: Settings, dbt: bool = True) -> dict:
    from lifecycle.pipeline import stages
    from lifecycle.warehouse.load import load_landing

    start, end = stages.default_interval()
    rows = load_landing(settings, start, end, mode="full")  # the full reload: not the DAG's task
    if dbt:
        stages.dbt(settings, start, end, full_refresh=True)
        # dbt builds serving_next; serve_publish's two tasks swap it in as `serving`
        stages.serve(settings, start, end)
    return {"landing_rows": rows, "dbt_full_refresh": dbt}
