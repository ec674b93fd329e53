"""Load the lake's clean zone into the warehouse's ``landing`` schema (as Redshift COPY would).

Input: ``Settings``, the data interval (recorded in the manifest with every file loaded) and
the data files of each clean Iceberg table's current snapshot, with the columns the Glue
Catalog describes
(``lifecycle.lake.catalog.effective_spec``: the contract of ``CLEAN_TABLES`` plus any column the
source gained since, which is added to the landing table).
Output: ``warehouse.landing.<table>`` for every clean table (its columns plus the partition
column, Postgres types from the contract, plus ``_loaded_at``: when the row was loaded, the
watermark of dbt's incremental models) and ``landing.load_manifest`` with one row per
object currently loaded (``table_name, s3_key, etag, rows, interval_start, interval_end,
loaded_at``: the interval of the run that loaded it). Returns ``{table: rows in landing}``.

Incremental by partition, idempotent, one transaction per table. The manifest is compared
with the data files of the snapshot (from its manifests: ``lifecycle.lake.iceberg.data_files``;
immutable, uniquely named files, so the key is the identity): a partition (``order_date=...``)
whose set of files changed, appeared or vanished is replaced (DELETE of the partition + COPY
of its files, as a Redshift COPY with a manifest would), an unchanged partition is not
touched, and the manifest rows of the replaced partitions are rewritten in the same
transaction. A table without partitions is replaced whole when its files changed. A rerun
on the same clean zone copies nothing; ``mode="full"`` (or a column added to the landing table)
reloads the whole table. Readers see the old or the new state, never a mix.

DuckDB reads the listed objects (so data and manifest agree) and writes them into Postgres,
by ``Settings.engines.load_method`` (``LIFECYCLE_LOAD_METHOD``) or the ``method`` argument:
``"binary"`` (default): DuckDB's ``postgres`` extension (the ``duckdb-extension-postgres``
wheel, loaded from its file) attaches the warehouse as the loader role (login in a DuckDB
secret) and ``INSERT INTO <attached>.landing.<table> SELECT ... FROM read_parquet(...)``
becomes a binary ``COPY ... FROM STDIN``: no CSV written or parsed. The transaction is
DuckDB's ``BEGIN ... COMMIT`` on the attached database, which is one Postgres transaction
(READ COMMITTED) on one connection: the lock, the deletes and the manifest rows go through
``postgres_execute``/``postgres_query`` on that same connection, beside the inserts.
``"pipe"``: CSV streamed through a FIFO into psycopg2's ``COPY ... FROM STDIN (FORMAT csv)``
while DuckDB and Postgres work concurrently (bounded memory, no spool file); ``"file"``: the
same CSV spooled to a temporary file first. Measured against Postgres' ``COPY`` of a ready
local CSV of the same rows (docs/bench.md, "Warehouse load: binary COPY"): on 5.6M rows
(1M orders) on a busy shared machine, the binary load ran at 0.66–1.29× that COPY's speed
and the pipe at 0.35–0.64×, the binary load taking 0.50–0.82× the pipe's time in the same
run; on 2.5M rows of one local Parquet file, 1.5× against ~1.0×.

With ``LIFECYCLE_WAREHOUSE_ENGINE=redshift`` (aws target) the same step is a Redshift ``COPY
... FROM 's3://<clean>/_lifecycle/redshift-manifests/...' IAM_ROLE ... FORMAT AS PARQUET
MANIFEST`` per changed partition (``lifecycle.warehouse.redshift``); the manifest logic above
decides which objects those are, and the transaction, deletes and manifest rows are the same.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from contextlib import nullcontext
from datetime import UTC, datetime

from lifecycle import faults
from lifecycle.clients import pg
from lifecycle.lake import iceberg
from lifecycle.lake.catalog import CLEAN_TABLES, TableSpec, effective_spec, postgres_type
from lifecycle.settings import Settings
from lifecycle.sql import ident, literal

SCHEMA = "landing"
MANIFEST = "load_manifest"
METHODS = ("binary", "pipe", "file")
PG_ALIAS = "lifecycle_warehouse"  # the warehouse attached to the DuckDB connection (binary)
MODES = ("incremental", "full")
HIVE_NULL = iceberg.NULL_PARTITION
LOADED_AT = "_loaded_at"  # landing metadata column: the load transaction's time




def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def ensure_landing(settings: Settings, specs: dict[str, TableSpec] | None = None) -> set[str]:
    """Create the landing schema, its tables and the manifest if missing; add new columns.
    Returns the tables that gained a column (they are reloaded whole). ``specs``: the tables'
    effective specs when the caller already has them (each one is a Glue ``GetTable``)."""
    altered: set[str] = set()
    with pg(settings, settings.pg.warehouse_db, role="loader") as conn, conn.cursor() as cur:
        # the loader may not CREATE on the database (lifecycle.security.pg_roles creates the
        # schema for it), and IF NOT EXISTS checks that privilege first: ask before creating
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,))
        if not cur.fetchone():
            cur.execute(f"CREATE SCHEMA {SCHEMA}")
        cur.execute("SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = %s", (SCHEMA,))
        existing = set(cur.fetchall())
        if settings.engines.warehouse == "redshift":
            from lifecycle.warehouse.redshift import redshift_type as column_type
        else:
            column_type = postgres_type
        for spec in (specs[name] if specs else effective_spec(settings, name) for name in CLEAN_TABLES):
            cols = ", ".join(f"{ident(c)} {column_type(t)}" for c, t in spec.all_columns)
            cur.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{ident(spec.name)} ({cols})")
            # a column added to the contract after the table was created (ALTER only then:
            # it takes an exclusive lock even when there is nothing to do)
            for c, t in spec.all_columns:
                if any(tn == spec.name for tn, _ in existing) and (spec.name, c) not in existing:
                    cur.execute(f"ALTER TABLE {SCHEMA}.{ident(spec.name)} ADD COLUMN {ident(c)} {column_type(t)}")
                    altered.add(spec.name)
            # when each row was loaded (COPY leaves it to the default): the watermark of the
            # incremental dbt models (only rows loaded since their last build are recomputed)
            if (spec.name, LOADED_AT) not in existing:
                now = "GETDATE()" if settings.engines.warehouse == "redshift" else "now()"
                cur.execute(f"ALTER TABLE {SCHEMA}.{ident(spec.name)} ADD COLUMN {LOADED_AT} "
                            f"timestamptz NOT NULL DEFAULT {now}")
        cur.execute(f"""
            CREATE TABLE IF NOT EXISTS {SCHEMA}.{MANIFEST} (
                table_name     text        NOT NULL,
                s3_key         text        NOT NULL,
                rows           bigint      NOT NULL,
                interval_start timestamptz,
                interval_end   timestamptz,
                loaded_at      timestamptz NOT NULL,
                PRIMARY KEY (table_name, s3_key)
            )""")
        cur.execute(f"ALTER TABLE {SCHEMA}.{MANIFEST} ADD COLUMN IF NOT EXISTS etag text")
    return altered


def clean_objects(settings: Settings, spec: TableSpec) -> list[str]:
    """Keys (in the clean bucket) of the data files of the table's current Iceberg snapshot."""
    return sorted(clean_files(settings, spec))


def clean_files(settings: Settings, spec: TableSpec) -> dict[str, str]:
    """``{key: ""}`` of the data files of the clean table's current Iceberg snapshot (from its
    manifests: ``lifecycle.lake.iceberg.data_files``), keys relative to the clean bucket. The
    manifest's ``etag`` of such a file is empty: an Iceberg data file is immutable and
    uniquely named, its key is its identity (a rewrite is a new file, a deletion a file gone)."""
    prefix = f"s3://{settings.names.bucket('clean')}/"
    files = iceberg.data_files(iceberg.load_table(settings, spec))
    return {uri[len(prefix):] if uri.startswith(prefix) else uri: "" for uri in files}


def _partition_of(spec: TableSpec, key: str) -> str:
    """The partition value of a data file's key ('' for a table without partitions): the
    ``<column>=<value>`` folder Iceberg's default layout (and Hive's) puts it in; Iceberg's
    ``null`` (and Hive's default partition) is ``HIVE_NULL``."""
    if not spec.partition:
        return ""
    from urllib.parse import unquote

    marker = f"{spec.partition[0]}="
    segment = next(p for p in key.split("/") if p.startswith(marker))
    value = unquote(segment[len(marker):])
    return HIVE_NULL if value in ("null", HIVE_NULL) else value


def _export_sql(duck, bucket: str, spec: TableSpec, keys: list[str]) -> str:
    return iceberg.files_sql(duck, [f"s3://{bucket}/{k}" for k in keys], list(spec.all_columns))


def _copy_via_file(duck, cur, select_sql: str, copy_sql: str) -> int:
    with tempfile.TemporaryDirectory(prefix="lifecycle-load-") as tmp:
        path = os.path.join(tmp, "data.csv")
        duck.execute(f"COPY ({select_sql}) TO {literal(path)} (FORMAT csv, HEADER false)")
        with open(path, "rb") as fh:
            cur.copy_expert(copy_sql, fh, size=1 << 20)
    return cur.rowcount


def copy_via_pipe(duck, cur, select_sql: str, copy_sql: str) -> int:
    """DuckDB writes CSV into a FIFO in a thread while Postgres COPY reads the other end."""
    with tempfile.TemporaryDirectory(prefix="lifecycle-load-") as tmp:
        path = os.path.join(tmp, "data.csv")
        os.mkfifo(path, 0o600)
        # Our own write end keeps the reader from seeing EOF before DuckDB has opened the
        # FIFO, and lets us end the stream even if DuckDB fails before opening it.
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        keeper = os.open(path, os.O_WRONLY)
        os.set_blocking(reader, True)
        error: list[BaseException] = []

        def produce() -> None:
            try:
                duck.execute(f"COPY ({select_sql}) TO {literal(path)} (FORMAT csv, HEADER false)")
            except BaseException as exc:  # re-raised in the caller after the stream ends
                error.append(exc)
            finally:
                os.close(keeper)

        thread = threading.Thread(target=produce, name="duckdb-csv-producer", daemon=True)
        thread.start()
        try:
            with os.fdopen(reader, "rb", buffering=0) as fh:
                cur.copy_expert(copy_sql, fh, size=1 << 20)
        except BaseException:
            _stop_producer(duck, path, thread)
            raise
        thread.join()
        if error:
            raise error[0]
    return cur.rowcount


def _stop_producer(duck, path: str, thread: threading.Thread) -> None:
    """Postgres failed mid-stream: end DuckDB's COPY, which may be blocked opening the FIFO
    (no reader any more) or writing into it."""
    duck.interrupt()
    while thread.is_alive():
        try:  # unblocks an open() for writing; closing it at once makes writes fail (EPIPE)
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        except OSError:
            pass
        thread.join(timeout=0.1)


def pg_literal(value) -> str:
    """A Postgres literal (the statements also run through ``postgres_execute``, which takes
    no parameters), written as psycopg2 would: text, int, timestamptz, or an array."""
    if isinstance(value, datetime):
        return literal(_utc(value).isoformat()) + "::timestamptz"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):  # as psycopg2 adapts a list
        return "ARRAY[" + ", ".join(pg_literal(v) for v in value) + "]" if value else "'{}'"
    return literal(str(value))


class _PsycopgSession:
    """The load's statements on a psycopg2 cursor (methods ``pipe``/``file``, Redshift)."""

    def __init__(self, cur):
        self.cur = cur

    def execute(self, sql: str) -> None:
        self.cur.execute(sql)

    def query(self, sql: str) -> list[tuple]:
        self.cur.execute(sql)
        return self.cur.fetchall()


class _DuckSession:
    """The load's statements in the Postgres transaction of DuckDB's attached warehouse:
    ``postgres_execute``/``postgres_query`` run on the connection that also carries the
    transaction's INSERTs (one Postgres transaction: tests/warehouse/test_warehouse_load.py)."""

    def __init__(self, duck):
        self.duck = duck

    def execute(self, sql: str) -> None:
        self.duck.execute("SELECT * FROM postgres_execute(?, ?)", [PG_ALIAS, sql]).fetchall()

    def query(self, sql: str) -> list[tuple]:
        return self.duck.execute("SELECT * FROM postgres_query(?, ?)", [PG_ALIAS, sql]).fetchall()


def attach_warehouse(settings: Settings, duck) -> None:
    """Attach the warehouse database to ``duck`` as ``PG_ALIAS``, logged in as the loader."""
    from lifecycle.clients import attach_postgres

    # READ COMMITTED as psycopg2's transactions: the statement after the advisory lock sees
    # what the load that held it committed (the extension's default, REPEATABLE READ, would
    # keep the snapshot taken before the wait)
    attach_postgres(duck, settings, settings.pg.warehouse_db, PG_ALIAS, role="loader",
                    isolation="READ COMMITTED")
    duck.execute("SET pg_use_binary_copy = true")


def _rollback(duck) -> None:
    """Roll back DuckDB's transaction; a failed COMMIT has already ended it, and on a lost
    connection Postgres has aborted it (the load's own error is the one to raise)."""
    import duckdb

    try:
        duck.execute("ROLLBACK")
    except duckdb.Error:
        pass


def _insert_binary(duck, spec: TableSpec, select_sql: str) -> int:
    """DuckDB reads the objects and writes them into the landing table with a binary COPY."""
    target = f"{PG_ALIAS}.{SCHEMA}.{ident(spec.name)}"
    cols = ", ".join(ident(c) for c in spec.column_names)
    (rows,) = duck.execute(f"INSERT INTO {target} ({cols}) {select_sql}").fetchone()
    return int(rows)


def load_table(settings: Settings, duck, spec: TableSpec, interval_start: datetime,
               interval_end: datetime, method: str = "binary", mode: str = "incremental",
               conn=None) -> dict:
    """Bring ``landing.<table>`` to the table's clean objects, in one transaction: only the
    partitions whose objects changed (``mode="incremental"``), or everything (``"full"``).

    Returns ``{"rows": rows in the landing table, "copied": rows copied now, "files": objects
    copied, "skipped_files": unchanged objects, "partitions": partitions replaced, "mode":
    "full" | "incremental" | "unchanged", "seconds"}``. ``method="binary"`` (Postgres only):
    the transaction is DuckDB's on the warehouse it attaches (``attach_warehouse``); else
    ``conn``: a psycopg2 warehouse connection to use (committed at the end of the table), or
    one of its own.
    """
    if method == "binary" and settings.engines.warehouse != "redshift":
        attach_warehouse(settings, duck)
        duck.execute("BEGIN")  # one Postgres transaction on the attached warehouse
        try:
            result = _load_table(settings, duck, spec, interval_start, interval_end, method, mode,
                                 _DuckSession(duck))
            duck.execute("COMMIT")
        except BaseException:
            _rollback(duck)
            raise
        return result
    if conn is None:
        with pg(settings, settings.pg.warehouse_db, role="loader") as own:
            return load_table(settings, duck, spec, interval_start, interval_end, method, mode, conn=own)
    try:
        with conn.cursor() as cur:
            result = _load_table(settings, duck, spec, interval_start, interval_end, method, mode,
                                 _PsycopgSession(cur))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return result


def _load_table(settings: Settings, duck, spec: TableSpec, interval_start: datetime,
                interval_end: datetime, method: str, mode: str, db) -> dict:
    bucket = settings.names.bucket("clean")
    current = clean_files(settings, spec)
    target = f"{SCHEMA}.{ident(spec.name)}"
    started = time.perf_counter()
    if settings.engines.warehouse != "redshift":
        # the commit does not wait for the WAL flush (~50 ms an fsync on a busy disk): a
        # crash may lose the last load, data and manifest rows together (one transaction),
        # and the next run reloads those partitions; it can never leave a half-loaded table
        db.execute("SET LOCAL synchronous_commit = off")
    # two loads of one table at once (a manual run beside the scheduled one): the second
    # waits for the first and then finds its objects in the manifest, instead of failing
    # on the manifest's key (or, for a table without one, copying the rows twice)
    db.execute(f"SELECT pg_advisory_xact_lock(hashtext({pg_literal(f'{SCHEMA}.{spec.name}')}))")
    loaded = dict(db.query(f"SELECT s3_key, etag FROM {SCHEMA}.{MANIFEST} WHERE table_name = {pg_literal(spec.name)}"))
    groups_now: dict[str, dict[str, str]] = {}
    for k, etag in current.items():
        groups_now.setdefault(_partition_of(spec, k), {})[k] = etag
    groups_before: dict[str, dict[str, str]] = {}
    for k, etag in loaded.items():
        groups_before.setdefault(_partition_of(spec, k), {})[k] = etag
    changed = sorted(g for g in set(groups_now) | set(groups_before)
                     if groups_now.get(g) != groups_before.get(g))
    full = mode == "full" or not spec.partition or set(changed) >= set(groups_before)
    if full and mode != "full" and not changed:
        full = False
    if full:
        changed = sorted(set(groups_now) | set(groups_before))
    keys = sorted(k for g in changed for k in groups_now.get(g, {}))
    per_file: dict[str, int] = {}
    if keys:
        files = "[" + ", ".join(literal(f"s3://{bucket}/{k}") for k in keys) + "]"
        for name, rows in duck.execute(
            f"SELECT file_name, num_rows FROM parquet_file_metadata({files})"
        ).fetchall():
            per_file[name[len(f"s3://{bucket}/"):]] = int(rows)
    expected = sum(per_file.values())
    copy_sql = (f"COPY {target} ({', '.join(ident(c) for c in spec.column_names)}) "
                "FROM STDIN WITH (FORMAT csv)")
    if full:
        db.execute(f"TRUNCATE {target}")
        db.execute(f"DELETE FROM {SCHEMA}.{MANIFEST} WHERE table_name = {pg_literal(spec.name)}")
    elif changed:
        col, typ = spec.partition
        values = [g for g in changed if g != HIVE_NULL]
        db.execute(f"DELETE FROM {target} WHERE {ident(col)} = ANY({pg_literal(values)}::{postgres_type(typ)}[])"
                   + (f" OR {ident(col)} IS NULL" if HIVE_NULL in changed else ""))
        replaced = sorted(k for g in changed for k in groups_before.get(g, {}))
        db.execute(f"DELETE FROM {SCHEMA}.{MANIFEST} WHERE table_name = {pg_literal(spec.name)} "
                   f"AND s3_key = ANY({pg_literal(replaced)})")
    copied = 0
    if expected and settings.engines.warehouse == "redshift":
        from lifecycle.warehouse.redshift import copy_partitions

        copied = copy_partitions(settings, db.cur, spec, target, keys, _partition_of, HIVE_NULL, LOADED_AT)
    elif expected and method == "binary":
        copied = _insert_binary(duck, spec, _export_sql(duck, bucket, spec, keys))
    elif expected:
        run = copy_via_pipe if method == "pipe" else _copy_via_file
        copied = run(duck, db.cur, _export_sql(duck, bucket, spec, keys), copy_sql)
    if copied != expected:
        raise RuntimeError(f"landing.{spec.name}: copied {copied} rows, the files hold {expected}")
    if per_file:
        db.execute(
            f"INSERT INTO {SCHEMA}.{MANIFEST} (table_name, s3_key, etag, rows, interval_start, "
            "interval_end, loaded_at) VALUES "
            + ", ".join(f"({pg_literal(spec.name)}, {pg_literal(k)}, {pg_literal(current[k])}, {n}, {pg_literal(interval_start)}, "
                        f"{pg_literal(interval_end)}, now())" for k, n in sorted(per_file.items())))
    if full:  # truncated and copied in this transaction: the count is known
        total = copied
    else:
        ((total,),) = db.query(f"SELECT count(*) FROM {target}")
    faults.point("warehouse.before_commit")
    return {"rows": int(total), "copied": copied, "files": len(per_file),
            "skipped_files": len(current) - len(per_file), "partitions": len(changed),
            "mode": "full" if full else ("incremental" if changed else "unchanged"),
            "seconds": round(time.perf_counter() - started, 3)}


def load_landing(settings: Settings, interval_start: datetime, interval_end: datetime,
                 method: str | None = None, tables: list[str] | None = None, mode: str = "incremental",
                 details: dict | None = None) -> dict:
    """Load every clean table (or the given ones) into ``landing``; returns rows per table
    (what the landing table holds after the load). ``details``, when given, receives each
    table's ``load_table`` result."""
    from lifecycle.clients import connect_duckdb

    method = method or settings.engines.load_method
    if method not in METHODS:
        raise ValueError(f"method={method!r}; use one of {', '.join(METHODS)}")
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; use one of {', '.join(MODES)}")
    specs = {name: effective_spec(settings, name) for name in CLEAN_TABLES}
    altered = ensure_landing(settings, specs)
    duck = connect_duckdb(settings)
    out = {}
    binary = method == "binary" and settings.engines.warehouse != "redshift"
    try:
        # one connection, a transaction per table (binary: DuckDB's connection to the warehouse)
        with nullcontext() if binary else pg(settings, settings.pg.warehouse_db, role="loader") as conn:
            for name in tables or CLEAN_TABLES:
                result = load_table(settings, duck, specs[name], interval_start, interval_end, method,
                                    "full" if name in altered else mode, conn=conn)
                out[name] = result["rows"]
                faults.point("warehouse.table_done")
                if details is not None:
                    details[name] = result
        return out
    finally:
        duck.close()


def run(settings: Settings, interval_start: datetime, interval_end: datetime) -> dict:
    """What the ``warehouse_load`` task returns: rows per table (in landing, and copied by this
    run), for XCom and the metrics."""
    settings = settings.for_stage("warehouse-load")  # its IAM role when stage roles are on
    details: dict = {}
    rows = load_landing(settings, interval_start, interval_end, details=details)
    return {"rows_out": rows, "tables": len(rows),
            "rows_copied": {t: d["copied"] for t, d in details.items()},
            "files_copied": sum(d["files"] for d in details.values()),
            "files_unchanged": sum(d["skipped_files"] for d in details.values())}
