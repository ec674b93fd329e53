"""DMS-style replication of the `sales` database to the raw zone: full load, then CDC.

Input: ``Settings`` (the ``sales`` database with ``wal_level=logical`` and the publication
``lifecycle_cdc``; the raw bucket).
Output: Parquet objects in the AWS DMS S3-target layout (docs/lake-layout.md):
``sales/public/<table>/LOAD00000001.parquet`` then CDC files
``sales/public/<table>/<commit time>-<end lsn>.parquet`` with ``Op`` I/U/D and
``_commit_ts``. Returns counts per table and the slot's remaining lag.

How it stays exactly-once: changes are read with ``pg_logical_slot_peek_binary_changes``
(which never consumes), written to S3 under names derived from the batch's last commit,
and only then is the slot advanced to that commit's end LSN. A crash in between re-reads
the same whole transactions and overwrites the same objects. When the lake has no full
load for the tables (first run, or the emulator was reset) the slot is recreated *before*
the full load, so changes made during the load are also in the CDC stream; replaying them
over the load converges to the same state, as a DMS full-load-plus-CDC task does.

Schema changes: the columns of every table as last delivered are kept in the raw bucket
(``_lifecycle/cdc-schemas/``). A column added in the source flows through (the next CDC
file carries it). A dropped or retyped column stops the run with ``SchemaChangeError``
before anything of that batch is written, so nothing corrupt reaches the lake and the slot
keeps the changes; the task fails and its alert says what changed and what to do.

Operations: the slot's lag (bytes of WAL and seconds since the oldest unconsumed commit) is
published to CloudWatch on every run and alerts above ``LIFECYCLE_CDC_LAG_ALERT_SECONDS``;
a slot that disappeared while the lake has a full load triggers a re-snapshot and an alert.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from lifecycle import faults
from lifecycle.clients import aws, pg
from lifecycle.ingest.pgoutput import Begin, Change, Commit, Relation, Truncate, decode, lsn_to_str
from lifecycle.settings import Settings
from lifecycle.sources.sales_db import PUBLICATION, TABLES

SLOT = "lifecycle_dms"
PREFIX = "sales/public"
SCHEMA_STATE = "_lifecycle/cdc-schemas"
LOAD_FILE = "LOAD00000001.parquet"
MAX_CHANGES_PER_BATCH = 50_000


# ---- types --------------------------------------------------------------------------------

TYPE_NAMES = {16: "boolean", 20: "bigint", 21: "smallint", 23: "integer", 25: "text", 700: "real",
              701: "double precision", 1042: "char", 1043: "varchar", 1082: "date", 1114: "timestamp",
              1184: "timestamptz", 1700: "numeric"}


def type_name(type_oid: int, typmod: int) -> str:
    name = TYPE_NAMES.get(type_oid, f"type oid {type_oid}")
    if type_oid == 1700 and typmod >= 4:
        return f"numeric({(typmod - 4) >> 16},{(typmod - 4) & 0xFFFF})"
    return name


class SchemaChangeError(RuntimeError):
    """A breaking change in a source table (a column dropped or retyped)."""


def arrow_type(type_oid: int, typmod: int) -> pa.DataType:
    if type_oid == 20:
        return pa.int64()
    if type_oid in (21, 23):
        return pa.int32()
    if type_oid == 1700:
        if typmod >= 4:
            return pa.decimal128((typmod - 4) >> 16, (typmod - 4) & 0xFFFF)
        return pa.decimal128(38, 9)
    if type_oid == 1184:
        return pa.timestamp("us", tz="UTC")
    if type_oid == 1114:
        return pa.timestamp("us")
    if type_oid == 16:
        return pa.bool_()
    if type_oid == 1082:
        return pa.date32()
    if type_oid in (700, 701):
        return pa.float64()
    return pa.string()


def _from_text(values: pa.Array, type_oid: int, typmod: int) -> pa.Array:
    """Postgres' text output of a column (pgoutput sends text) as its Arrow type, cast by
    Arrow in C++ rather than value by value in Python."""
    import pyarrow.compute as pc

    target = arrow_type(type_oid, typmod)
    if target == pa.string():
        return values
    if target == pa.bool_():
        return pc.equal(values, "t")  # NULL stays NULL
    return values.cast(target)


def _schema(columns: list[tuple[str, int, int]]) -> pa.Schema:
    return pa.schema(
        [("Op", pa.string()), ("_commit_ts", pa.timestamp("us", tz="UTC"))]
        + [(name, arrow_type(oid, typmod)) for name, oid, typmod in columns]
    )


def _put_parquet(s3, bucket: str, key: str, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy")
    s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


# ---- slot ---------------------------------------------------------------------------------

def _table_columns(cur, table: str) -> list[tuple[str, int, int]]:
    cur.execute(
        """SELECT a.attname, a.atttypid::int, a.atttypmod FROM pg_attribute a
           WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""",
        (f"public.{table}",),
    )
    return [(n, int(o), int(m)) for n, o, m in cur.fetchall()]


def slot_lag(settings: Settings) -> dict:
    """How far the slot is behind: WAL bytes, and seconds since the oldest unconsumed commit."""
    with pg(settings, settings.pg.sales_db, autocommit=True, role="cdc") as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, active "
            "FROM pg_replication_slots WHERE slot_name = %s", (SLOT,),
        )
        row = cur.fetchone()
        if row is None:
            return {"slot": SLOT, "exists": False, "lag_bytes": None, "lag_seconds": None}
        lag_bytes, active = int(row[0] or 0), bool(row[1])
        lag_seconds = 0.0
        if lag_bytes > 0 and not active:
            # the first pending transaction's commit time (peek consumes nothing)
            cur.execute(
                "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, 1, "
                "'proto_version', '1', 'publication_names', %s) LIMIT 1", (SLOT, PUBLICATION),
            )
            first = cur.fetchone()
            if first is not None:
                msg = decode(first[0])
                if isinstance(msg, Begin):
                    lag_seconds = max((datetime.now(UTC) - msg.commit_ts).total_seconds(), 0.0)
    return {"slot": SLOT, "exists": True, "lag_bytes": lag_bytes, "lag_seconds": round(lag_seconds, 3)}


def publish_lag(settings: Settings, lag: dict, phase: str) -> None:
    """CloudWatch metrics of the slot's lag; an alert when it is above the threshold."""
    from lifecycle.dataops import alerts

    if not lag.get("exists"):
        return
    dims = [{"Name": "Slot", "Value": SLOT}, {"Name": "Phase", "Value": phase},
            {"Name": "Target", "Value": settings.target}]
    aws(settings, "cloudwatch").put_metric_data(Namespace=settings.names.metrics_namespace, MetricData=[
        {"MetricName": "CdcLagBytes", "Dimensions": dims, "Value": float(lag["lag_bytes"]), "Unit": "Bytes"},
        {"MetricName": "CdcLagSeconds", "Dimensions": dims, "Value": float(lag["lag_seconds"]),
         "Unit": "Seconds"},
    ])
    if phase == "before" and lag["lag_seconds"] > settings.thresholds.cdc_lag_alert_seconds:
        alerts.publish(settings, alerts.build_notice(
            kind="cdc_lag", source=f"replication slot {SLOT}",
            message=(f"CDC is {lag['lag_seconds']:.0f} s ({lag['lag_bytes']} bytes of WAL) behind the source, "
                     f"above the {settings.thresholds.cdc_lag_alert_seconds} s threshold"),
            runbook="Check that ingest_sales runs (paused? failing?); `lifecycle cdc status` shows the slot.",
            target=settings.target))


def _has_full_load(s3, bucket: str) -> bool:
    for table in TABLES:
        resp = s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/{table}/{LOAD_FILE}", MaxKeys=1)
        if not resp.get("KeyCount"):
            return False
    return True


def _schema_key(table: str) -> str:
    return f"{SCHEMA_STATE}/public.{table}.json"


def known_columns(s3, bucket: str, table: str) -> list[tuple[str, int, int]] | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=_schema_key(table))["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return [tuple(c) for c in json.loads(body)["columns"]]


def _save_columns(s3, bucket: str, table: str, columns: list[tuple[str, int, int]]) -> None:
    s3.put_object(Bucket=bucket, Key=_schema_key(table),
                  Body=json.dumps({"table": f"public.{table}", "columns": [list(c) for c in columns]}).encode())


def check_schema(table: str, known: list[tuple[str, int, int]] | None,
                 now: list[tuple[str, int, int]]) -> list[str]:
    """New column names (an additive change); raises ``SchemaChangeError`` on a breaking one."""
    if known is None:
        return []
    current = {name: (oid, mod) for name, oid, mod in now}
    problems = []
    for name, oid, mod in known:
        if name not in current:
            problems.append(f"column {name!r} was dropped")
        elif current[name] != (oid, mod):
            problems.append(f"column {name!r} changed type {type_name(oid, mod)} → {type_name(*current[name])}")
    if problems:
        raise SchemaChangeError(
            f"breaking schema change in sales.public.{table}: {'; '.join(problems)}. CDC stopped before "
            "writing this batch (the slot keeps the changes, nothing corrupt reached the lake). To go on: "
            "update the table's contract in lifecycle/jobs/clean_sales.py and lifecycle/lake/catalog.py, then "
            "run `lifecycle cdc resnapshot` (a new full load in the new shape)."
        )
    known_names = {c[0] for c in known}
    return [name for name, _, _ in now if name not in known_names]


def full_load(settings: Settings) -> dict[str, int]:
    """(Re)create the slot, then snapshot every table to its LOAD file. Returns rows per table."""
    s3, bucket = aws(settings, "s3"), settings.names.bucket("raw")
    counts: dict[str, int] = {}
    with pg(settings, settings.pg.sales_db, autocommit=True, role="cdc") as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s", (SLOT,))
        cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (SLOT,))
    with pg(settings, settings.pg.sales_db, role="cdc") as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'")
            loaded_at = datetime.now(UTC)
            for table in TABLES:
                cols = _table_columns(cur, table)
                schema = _schema(cols)
                # previous objects of this table belong to an older replication run
                old = s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/{table}/").get("Contents", [])
                if old:
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": o["Key"]} for o in old]})
                sink = io.BytesIO()
                n = _snapshot_table(conn, table, cols, schema, loaded_at, sink)
                s3.put_object(Bucket=bucket, Key=f"{PREFIX}/{table}/{LOAD_FILE}", Body=sink.getvalue())
                faults.point("sales_cdc.full_load")
                _save_columns(s3, bucket, table, cols)
                counts[table] = n
    return counts


def _snapshot_table(conn, table: str, cols: list[tuple[str, int, int]], schema: pa.Schema,
                    loaded_at: datetime, sink) -> int:
    """Stream ``table`` (in the connection's snapshot) into a Parquet ``sink``; returns rows.

    ``COPY ... TO STDOUT (FORMAT csv)`` piped into Arrow's C++ CSV reader, typed by the
    table's Arrow schema: 4-5× faster here than fetching Python tuples and converting them
    (measured at 1M orders: 3.6M rows), and memory stays bounded (one block at a time).
    CSV keeps NULL (unquoted empty) apart from '' (quoted), and quotes embedded newlines.
    """
    import os
    import threading

    import pyarrow.csv as pacsv

    data_schema = pa.schema([schema.field(name) for name, _, _ in cols])
    names = ", ".join(f'"{name}"' for name, _, _ in cols)
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb") as out, conn.cursor() as cur:
                cur.copy_expert(f"COPY (SELECT {names} FROM public.{table} ORDER BY 1) TO STDOUT (FORMAT csv)", out)
        except BaseException as exc:  # surfaced by the reader below
            failure.append(exc)

    producer = threading.Thread(target=produce, name=f"snapshot-{table}", daemon=True)
    producer.start()
    n = 0
    writer = pq.ParquetWriter(sink, schema, compression="snappy")
    try:
        with os.fdopen(read_fd, "rb") as source:
            if not source.peek(1):  # an empty table: Arrow refuses an empty CSV
                reader = []
            else:
                reader = pacsv.open_csv(
                    source,
                    read_options=pacsv.ReadOptions(column_names=data_schema.names, block_size=8 << 20),
                    parse_options=pacsv.ParseOptions(newlines_in_values=True),
                    convert_options=pacsv.ConvertOptions(
                        column_types=data_schema, null_values=[""], strings_can_be_null=True,
                        quoted_strings_can_be_null=False, true_values=["t"], false_values=["f"]))
            for batch in reader:
                rows = batch.num_rows
                ops = pa.array(["I"] * rows, pa.string())
                ts = pa.array([loaded_at] * rows, pa.timestamp("us", tz="UTC"))
                writer.write_batch(pa.RecordBatch.from_arrays([ops, ts, *batch.columns], schema=schema))
                n += rows
    except pa.ArrowInvalid:
        producer.join()
        if failure:  # the reader only saw a cut stream: the COPY's error is the cause
            raise failure[0] from None
        raise
    finally:
        writer.close()
    producer.join()
    if failure:
        raise failure[0]
    return n


# ---- CDC ----------------------------------------------------------------------------------

class _Batch:
    """Decoded changes of whole transactions, grouped per table in commit order."""

    def __init__(self):
        self.relations: dict[int, Relation] = {}
        self.rows: dict[str, list[tuple[str, datetime, list]]] = defaultdict(list)
        self.last_commit: Commit | None = None
        self.truncated: set[str] = set()

    def add(self, change, commit_ts: datetime | None) -> None:
        if isinstance(change, Relation):
            self.relations[change.oid] = change
        elif isinstance(change, Change):
            rel = self.relations[change.relation_oid]
            if change.op == "I":
                self.rows[rel.name].append(("I", commit_ts, change.new))
            elif change.op == "U":
                if change.old_kind == "K" and change.old is not None:
                    # primary-key update: the old key disappears, the new row appears
                    self.rows[rel.name].append(("D", commit_ts, change.old))
                    self.rows[rel.name].append(("I", commit_ts, change.new))
                else:
                    self.rows[rel.name].append(("U", commit_ts, change.new))
            else:
                self.rows[rel.name].append(("D", commit_ts, change.old))
        elif isinstance(change, Truncate):
            self.truncated.update(self.relations[o].name for o in change.relation_oids if o in self.relations)

    def tables(self) -> dict[str, pa.Table]:
        rel_by_name = {r.name: r for r in self.relations.values()}
        out = {}
        for name, rows in self.rows.items():
            rel = rel_by_name[name]
            cols = [(c.name, c.type_oid, c.typmod) for c in rel.columns]
            schema = _schema(cols)
            arrays = [pa.array([r[0] for r in rows], pa.string()),
                      pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC"))]
            for i, (_, oid, typmod) in enumerate(cols):
                arrays.append(_from_text(pa.array([r[2][i] for r in rows], pa.string()), oid, typmod))
            out[name] = pa.Table.from_arrays(arrays, schema=schema)
        return out


def capture_changes(settings: Settings, max_changes: int = MAX_CHANGES_PER_BATCH) -> dict:
    """Drain the slot batch by batch: write each batch's CDC files, then advance."""
    s3, bucket = aws(settings, "s3"), settings.names.bucket("raw")
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    files: list[str] = []
    columns_added: dict[str, list[str]] = {}
    batches = 0
    with pg(settings, settings.pg.sales_db, autocommit=True, role="cdc") as conn, conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        # Decode up to the WAL position of "now". Other databases of the cluster (Airflow's
        # metadata, the warehouse) write WAL too; once everything up to `upto` is decoded
        # the slot may move there even if nothing was published, or it would pin that WAL.
        cur.execute("SELECT pg_current_wal_lsn()::text")
        (upto,) = cur.fetchone()
        while True:
            cur.execute(
                "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, %s, "
                "'proto_version', '1', 'publication_names', %s)",
                (SLOT, upto, max_changes, PUBLICATION),
            )
            messages = cur.fetchall()
            if not messages:
                cur.execute(
                    "SELECT pg_replication_slot_advance(%s, %s::pg_lsn) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND confirmed_flush_lsn < %s::pg_lsn",
                    (SLOT, upto, SLOT, upto),
                )
                break
            batch, commit_ts = _Batch(), None
            for (data,) in messages:
                msg = decode(data)
                if isinstance(msg, Begin):
                    commit_ts = msg.commit_ts
                elif isinstance(msg, Commit):
                    batch.last_commit = msg
                elif msg is not None:
                    batch.add(msg, commit_ts)
            if batch.truncated:
                raise RuntimeError(
                    f"TRUNCATE of {sorted(batch.truncated)} in the source: reload those tables "
                    "(lifecycle ingest reload) instead of replaying CDC over them"
                )
            last = batch.last_commit
            if last is None:  # peek always returns whole transactions; guard anyway
                break
            evolved: dict[str, list[tuple[str, int, int]]] = {}
            for rel in batch.relations.values():
                cols = [(c.name, c.type_oid, c.typmod) for c in rel.columns]
                known = known_columns(s3, bucket, rel.name)
                added = check_schema(rel.name, known, cols)  # raises before anything is written
                if added or known is None:
                    evolved[rel.name] = cols
                    if added:
                        columns_added[rel.name] = added
            name = f"{last.commit_ts:%Y%m%d-%H%M%S%f}-{last.end_lsn:016X}.parquet"
            for table, arrow in batch.tables().items():
                key = f"{PREFIX}/{table}/{name}"
                _put_parquet(s3, bucket, key, arrow)
                faults.point("sales_cdc.write")
                files.append(key)
                for op in arrow.column("Op").to_pylist():
                    totals[table][op] += 1
            for table, cols in evolved.items():
                _save_columns(s3, bucket, table, cols)
            faults.point("sales_cdc.before_advance")
            # only now, with the objects durably written, consume the batch
            cur.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (SLOT, lsn_to_str(last.end_lsn)))
            batches += 1
    return {"batches": batches, "files": files, "changes": {t: dict(v) for t, v in totals.items()},
            "columns_added": columns_added}


def run(settings: Settings) -> dict:
    """One ingestion run: full load if the lake has none (or the slot is missing), then CDC.

    Runs one at a time: a second run started meanwhile (a manual run beside the scheduled
    one) waits on a session advisory lock, then finds only what is left; without it the two
    would read the same batch and the slower one would fail to advance the slot."""
    settings = settings.for_stage("ingest-sales")  # its IAM role when stage roles are on
    with pg(settings, settings.pg.sales_db, autocommit=True, role="cdc") as lock, lock.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"lifecycle:{SLOT}",))
        return _run(settings)  # the lock goes with the connection


def _run(settings: Settings) -> dict:
    from lifecycle.dataops import alerts

    s3 = aws(settings, "s3")
    with pg(settings, settings.pg.sales_db, role="cdc") as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (SLOT,))
        slot_exists = cur.fetchone() is not None
    has_load = _has_full_load(s3, settings.names.bucket("raw"))
    loaded: dict[str, int] = {}
    if not slot_exists or not has_load:
        if has_load:  # the slot vanished (dropped, failover): changes may be gone, so reload
            alerts.publish(settings, alerts.build_notice(
                kind="cdc_resnapshot", source=f"replication slot {SLOT}",
                message="the replication slot was missing; the tables are being re-snapshotted "
                        "(a new full load replaces their raw files, so no change is silently lost)",
                runbook="Find out why the slot was dropped (manual drop, failover, max_slot_wal_keep_size).",
                target=settings.target))
        loaded = full_load(settings)
    before = slot_lag(settings)
    publish_lag(settings, before, "before")
    cdc = capture_changes(settings)
    after = slot_lag(settings)
    publish_lag(settings, after, "after")
    rows_out = sum(loaded.values()) + sum(sum(v.values()) for v in cdc["changes"].values())
    return {"full_load": loaded, "resnapshot": bool(loaded) and has_load, **cdc,
            "lag_before": before, "lag_after": after, "lag_bytes": after["lag_bytes"],
            "rows_out": rows_out, "files_written": len(cdc["files"]) + len(loaded)}
