"""Lineage: which task reads and writes which dataset, reported to OpenLineage through Airflow.

Input: ``Settings`` and a task's (DAG id, task id).
Output: ``datasets(settings, dag_id, task_id)`` → ``(inputs, outputs)`` as AIP-60 URIs
(``s3://<bucket>/<prefix>``, ``postgres://host:port/db/schema/table``), and ``report(...)`` adds
them to Airflow's hook-lineage collector. The OpenLineage provider's listener turns what is
collected into the task's COMPLETE event (namespace ``s3://<bucket>`` or
``postgres://host:port``, name the prefix or ``db.schema.table``), sent with the transport
``airflow_env`` configures (a JSON-lines file locally, Marquez with ``LIFECYCLE_LINEAGE_URL``).
dbt models report their own lineage through Cosmos' OpenLineage integration.
``read_events(settings)`` reads the local file back (tests, ``lifecycle lineage``).

The map is declared here, per task, because our tasks talk to S3 and Postgres through
boto3/psycopg rather than Airflow hooks (which would report it themselves).
"""

from __future__ import annotations

import json
import logging

from lifecycle.settings import Settings

log = logging.getLogger(__name__)

SALES_TABLES = ("customers", "products", "orders", "order_items")
SERVING_TABLES = ("daily_sales", "funnel_daily", "product_performance")


def _s3(settings: Settings, zone: str, prefix: str) -> str:
    return f"s3://{settings.names.bucket(zone)}/{prefix}"


def _pg(settings: Settings, db: str, schema: str, table: str) -> str:
    host, port = settings.pg.server(db)[:2]
    return f"postgres://{host}:{port}/{db}/{schema}/{table}"


def datasets(settings: Settings, dag_id: str, task_id: str) -> tuple[list[str], list[str]]:
    """(inputs, outputs) of a lifecycle task; ([], []) for a task not in the map."""
    from lifecycle.lake.catalog import CLEAN_TABLES

    clean = [_s3(settings, "clean", t) for t in CLEAN_TABLES]
    wh = settings.pg.warehouse_db
    raw_sales = [_s3(settings, "raw", f"sales/{t}") for t in SALES_TABLES]
    m = {
        ("ingest_sales", "replicate_sales"): (
            [_pg(settings, settings.pg.sales_db, "public", t) for t in SALES_TABLES], raw_sales),
        ("ingest_user_activity", "consume_stream"): ([], [_s3(settings, "raw", "events")]),
        ("ingest_reviews", "capture_reviews"): ([], [_s3(settings, "raw", "reviews")]),
        ("lake_clean", "run_clean_jobs"): (
            [*raw_sales, _s3(settings, "raw", "events"), _s3(settings, "raw", "reviews")],
            [*clean, _s3(settings, "quarantine", "events")]),
        ("lake_clean", "check_quarantine"): ([_s3(settings, "quarantine", "events")], []),
        ("warehouse_load", "copy_into_landing"): (
            clean, [_pg(settings, wh, "landing", t) for t in CLEAN_TABLES]),
        ("serve_publish", "swap_and_publish"): (
            [_pg(settings, wh, "serving_next", t) for t in SERVING_TABLES],
            [*(_pg(settings, wh, "serving", t) for t in SERVING_TABLES), _s3(settings, "serving", "dashboard")]),
        ("observe", "monitor_datasets"): (
            [*clean, *(_pg(settings, wh, "landing", t) for t in CLEAN_TABLES),
             *(_pg(settings, wh, "serving", t) for t in SERVING_TABLES)],
            [_pg(settings, wh, settings.names.observability_schema, t) for t in ("profiles", "results")]),
    }
    return m.get((dag_id, task_id), ([], []))


class _Task:
    """The lineage context the collector keys entries by (one per reporting task)."""

    def __init__(self, dag_id: str, task_id: str):
        self.dag_id, self.task_id = dag_id, task_id


def reset() -> None:
    """A fresh hook-lineage collector for the task about to run.

    The collector is process-wide. Under the scheduler every task runs in its own process,
    but ``dag.test()`` runs every task of every DAG in one, where each task's event would
    otherwise also name everything the tasks before it reported."""
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector
    except ImportError:
        return
    get_hook_lineage_collector.cache_clear()


def report(settings: Settings, dag_id: str, task_id: str) -> int:
    """Add the task's datasets to Airflow's hook-lineage collector; returns how many."""
    inputs, outputs = datasets(settings, dag_id, task_id)
    if not inputs and not outputs:
        return 0
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector
    except ImportError:  # outside Airflow
        return 0
    collector, ctx = get_hook_lineage_collector(), _Task(dag_id, task_id)
    for uri in inputs:
        collector.add_input_asset(context=ctx, uri=uri)
    for uri in outputs:
        collector.add_output_asset(context=ctx, uri=uri)
    return len(inputs) + len(outputs)


def output_bytes(settings: Settings, dag_id: str, task_id: str) -> dict[str, int]:
    """Bytes now stored in each output of a task: S3 objects under the prefix, Postgres table
    size. Keys: the table (last part of the prefix), ``quarantine/<source>``, or the table name."""
    from lifecycle.clients import aws, pg

    out: dict[str, int] = {}
    _, outputs = datasets(settings, dag_id, task_id)
    s3 = aws(settings, "s3")
    tables = []
    for uri in outputs:
        if uri.startswith("s3://"):
            bucket, _, prefix = uri[len("s3://"):].partition("/")
            size = sum(o["Size"] for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix.rstrip("/") + "/") for o in page.get("Contents", []))
            name = prefix.rsplit("/", 1)[-1]
            out[f"quarantine/{name}" if bucket == settings.names.bucket("quarantine") else name] = size
        elif uri.startswith("postgres://"):
            db, schema, table = uri.split("/")[-3:]
            tables.append((db, schema, table))
    for db in {t[0] for t in tables}:
        with pg(settings, db) as conn, conn.cursor() as cur:
            for _, schema, table in (t for t in tables if t[0] == db):
                cur.execute("SELECT pg_total_relation_size(to_regclass(%s))", (f'"{schema}"."{table}"',))
                size = cur.fetchone()[0]
                if size is not None:
                    out[table] = int(size)
    return out


def read_events(settings: Settings) -> list[dict]:
    """OpenLineage events written to the local file transport, oldest first."""
    path = settings.lineage_file
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def producers(settings: Settings) -> dict[str, list[str]]:
    """Dataset (``namespace/name``) → the jobs whose COMPLETE events name it as an output."""
    out: dict[str, set[str]] = {}
    for e in read_events(settings):
        if e.get("eventType") != "COMPLETE":
            continue
        job = f"{e['job']['namespace']}/{e['job']['name']}"
        for d in e.get("outputs") or []:
            out.setdefault(f"{d['namespace']}/{d['name']}", set()).add(job)
    return {k: sorted(v) for k, v in sorted(out.items())}
