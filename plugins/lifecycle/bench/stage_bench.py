"""The benchmark's stages, each timed against a raw baseline on the same data in the same run.

Input: a ``BenchEnvironment`` (its ``Settings``; the workload of ``lifecycle.bench.workload``
already in place as each stage needs it) and the stage's parameters.
Output: one ``StageResult`` per stage (rows and seconds of the stage and of its baseline,
their ratio, peak RSS, details). Stages call only the public functions of the lifecycle:
``sales_cdc.full_load / capture_changes / slot_lag``, ``user_activity.run``,
``runner.run_lake_clean``, ``load.load_landing``; dbt runs as a subprocess (see
``lifecycle.bench.dbt_bench``).

Baselines (what the same data costs with the plain engine and nothing of ours around it):

- ``full_load``: ``COPY (SELECT * FROM <table>) TO STDOUT`` of the four tables into a null sink.
- ``cdc``: ``COPY (SELECT * FROM orders WHERE <the changed rows>) TO STDOUT`` into a null sink.
- ``cdc_lag``: the offered load itself (rows written per second by the writer thread):
  the ratio says whether ingestion keeps up; the lag percentiles are the real output.
- ``kinesis``: a bare ``get_records`` loop over the same shards from TRIM_HORIZON (no
  checkpoints, no S3 writes).
- ``clean``: one DuckDB ``COPY (SELECT * FROM read_parquet(<raw DMS files>) / <split lines
  of read_text(<raw event objects>)>) TO 's3://<bench bucket>/clean-baseline/...' (FORMAT
  parquet)`` per raw table: the same bytes read and written back as Parquet, no logic.
- ``load``: Postgres ``COPY ... FROM STDIN (FORMAT csv)`` of local CSV files holding the same
  rows; producing the CSVs (DuckDB from the clean objects) is NOT timed.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from datetime import datetime

from lifecycle.bench.environment import BenchEnvironment
from lifecycle.bench.measure import NullSink, RssSampler, StageResult, percentiles, timed
from lifecycle.clients import aws, pg
from lifecycle.pipeline import stages
from lifecycle.sources.sales_db import TABLES
from lifecycle.sql import ident

TARGET = 0.5            # every stage: at least half its baseline's throughput
TARGET_LOAD = 0.8       # the warehouse load: at least 80 %


def _copy_out(settings, sql: str) -> tuple[int, int]:
    """Run ``COPY (sql) TO STDOUT`` into a null sink; returns (rows, bytes)."""
    sink = NullSink()
    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        cur.copy_expert(f"COPY ({sql}) TO STDOUT", sink, size=1 << 20)
        rows = cur.rowcount
    return rows, sink.bytes


def _lsn(text: str | None) -> int | None:
    if not text:
        return None
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def _changes_count(result: dict) -> tuple[int, dict]:
    """Total changes and per-table counts out of ``capture_changes``' return value."""
    changes = result.get("changes") or {}
    per_table = {t: sum(v.values()) if isinstance(v, dict) else int(v) for t, v in changes.items()}
    return sum(per_table.values()), per_table


# ---- CDC ----------------------------------------------------------------------------------

def stage_full_load(env: BenchEnvironment) -> StageResult:
    from lifecycle.ingest import sales_cdc

    s = env.settings
    base_rows, base_bytes, base_s = 0, 0, 0.0
    for table in TABLES:
        (rows, nbytes), secs = timed(_copy_out, s, f"SELECT * FROM public.{table}")
        base_rows, base_bytes, base_s = base_rows + rows, base_bytes + nbytes, base_s + secs
    with RssSampler(s) as rss:
        counts, secs = timed(sales_cdc.full_load, s)
    return StageResult(
        stage="full_load", rows=sum(counts.values()), seconds=secs,
        baseline_rows=base_rows, baseline_seconds=base_s, target=TARGET,
        what="sales_cdc.full_load: the 4 tables → DMS LOAD Parquet on S3 (+ slot creation)",
        baseline="COPY (SELECT * FROM <table>) TO STDOUT, 4 tables, null sink",
        peak_rss_mb=rss.result(), details={"rows_per_table": counts, "baseline_bytes": base_bytes},
    )


def stage_cdc(env: BenchEnvironment, first: int, count: int) -> StageResult:
    """``count`` orders from ``first`` were changed (workload.change_orders) before this."""
    from lifecycle.ingest import sales_cdc

    s = env.settings
    (base_rows, base_bytes), base_s = timed(
        _copy_out, s, f"SELECT * FROM public.orders WHERE order_id BETWEEN {int(first)} AND {int(first + count - 1)}")
    lag_before = sales_cdc.slot_lag(s)
    with RssSampler(s) as rss:
        result, secs = timed(sales_cdc.capture_changes, s)
    rows, per_table = _changes_count(result)
    return StageResult(
        stage="cdc", rows=rows, seconds=secs, baseline_rows=base_rows, baseline_seconds=base_s,
        target=TARGET,
        what="sales_cdc.capture_changes: pgoutput decode → DMS CDC Parquet on S3 → slot advance",
        baseline="COPY (SELECT * FROM orders WHERE <changed rows>) TO STDOUT, null sink",
        peak_rss_mb=rss.result(),
        details={"changes_per_table": per_table, "batches": result.get("batches"),
                 "files": len(result.get("files") or []), "baseline_bytes": base_bytes,
                 "slot_lag_before": lag_before, "slot_lag_after": sales_cdc.slot_lag(s)},
    )


class _Writer(threading.Thread):
    """Small update transactions on ``orders`` at a fixed rate; logs each commit's LSN and time."""

    def __init__(self, env: BenchEnvironment, rate: float, seconds: float, txn_rows: int, n_orders: int):
        super().__init__(name="bench-cdc-writer", daemon=True)
        self.env, self.rate, self.seconds, self.txn_rows, self.n_orders = env, rate, seconds, txn_rows, n_orders
        self.commits: list[tuple[int, float]] = []  # (WAL insert LSN right after COMMIT, wall time)
        self.rows = 0
        self.started = self.finished = 0.0
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def run(self) -> None:
        s = self.env.settings
        try:
            with pg(s, s.pg.sales_db) as conn, conn.cursor() as cur:
                self.started = time.perf_counter()
                k, next_id = 0, 1
                while True:
                    due = self.started + k * self.txn_rows / self.rate
                    if due - self.started >= self.seconds or self.stop.is_set():
                        break
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    ids = [((next_id + j - 1) % self.n_orders) + 1 for j in range(self.txn_rows)]
                    next_id = ids[-1] + 1
                    cur.execute("UPDATE orders SET updated_at = updated_at + interval '1 second' "
                                "WHERE order_id = ANY(%s)", (ids,))
                    n = cur.rowcount
                    conn.commit()
                    wall = time.time()
                    cur.execute("SELECT pg_current_wal_insert_lsn()::text")
                    lsn = _lsn(cur.fetchone()[0])
                    conn.commit()
                    with self.lock:
                        self.commits.append((lsn, wall))
                        self.rows += n
                    k += 1
                self.finished = time.perf_counter()
        except BaseException as exc:  # reported by the stage
            self.error = exc
            self.finished = time.perf_counter()

    def oldest_unconsumed(self, confirmed: int | None) -> float | None:
        """Wall time of the oldest commit the slot has not confirmed, or None."""
        with self.lock:
            for lsn, wall in self.commits:
                if confirmed is None or lsn > confirmed:
                    return wall
        return None


def stage_cdc_lag(env: BenchEnvironment, rate: float, seconds: float, n_orders: int,
                  txn_rows: int = 50, sample_every: float = 0.25) -> StageResult:
    """Replication lag under a steady write load while ingestion runs ``capture_changes`` in a loop.

    Two views of the lag: a sampler thread every ``sample_every`` s (bytes: current WAL −
    the slot's confirmed_flush_lsn, read from ``pg_replication_slots`` without touching the
    slot; seconds: now − commit time of the oldest write the slot has not confirmed, from
    the writer's own commit log), and ``sales_cdc.slot_lag`` between two captures (it may
    peek the slot, so it is never called concurrently with a capture).
    """
    from lifecycle.ingest import sales_cdc

    s = env.settings
    slot = sales_cdc.slot_lag(s).get("slot")
    writer = _Writer(env, rate, seconds, txn_rows, n_orders)
    samples: list[tuple[float, int, float]] = []  # (t, lag bytes, lag seconds)
    stop = threading.Event()

    def sample() -> None:
        with pg(s, s.pg.sales_db, autocommit=True) as conn, conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, "
                            "confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (slot,))
                row = cur.fetchone()
                if row is not None:
                    oldest = writer.oldest_unconsumed(_lsn(row[1]))
                    now = time.time()
                    samples.append((now, int(row[0] or 0), max(now - oldest, 0.0) if oldest else 0.0))
                stop.wait(sample_every)

    sampler = threading.Thread(target=sample, name="bench-lag-sampler", daemon=True)
    between: list[dict] = []
    captured, captures, capture_s = 0, 0, 0.0
    with RssSampler(s) as rss:
        started = time.perf_counter()
        writer.start()
        sampler.start()
        try:
            while writer.is_alive():
                result, secs = timed(sales_cdc.capture_changes, s)
                captured += _changes_count(result)[0]
                captures += 1
                capture_s += secs
                between.append(sales_cdc.slot_lag(s))
                if not result.get("batches"):
                    time.sleep(0.05)
        finally:
            writer.stop.set()
            writer.join()
            stop.set()
            sampler.join()
        # drain what the writer committed last
        for _ in range(20):
            if captured >= writer.rows:
                break
            result = sales_cdc.capture_changes(s)
            captured += _changes_count(result)[0]
            captures += 1
        elapsed = time.perf_counter() - started
    if writer.error:
        raise writer.error
    lag_bytes = [b for _, b, _ in samples]
    lag_secs = [x for _, _, x in samples]
    between_secs = [b["lag_seconds"] for b in between if b.get("lag_seconds") is not None]
    between_bytes = [b["lag_bytes"] for b in between if b.get("lag_bytes") is not None]
    write_s = writer.finished - writer.started
    return StageResult(
        stage="cdc_lag", rows=captured, seconds=elapsed, baseline_rows=writer.rows,
        baseline_seconds=write_s, target=TARGET,
        what=(f"capture_changes in a loop while a writer updates {rate:g} rows/s in "
              f"{txn_rows}-row transactions for {seconds:g} s"),
        baseline="the offered load: rows written ÷ writing time (ratio ≈ 1 = ingestion keeps up)",
        peak_rss_mb=rss.result(),
        details={
            "write_rate_target_rows_per_s": rate,
            "write_rate_achieved_rows_per_s": round(writer.rows / write_s, 1) if write_s else None,
            "transactions": len(writer.commits),
            "captures": captures,
            "mean_capture_s": round(capture_s / captures, 4) if captures else None,
            "samples": len(samples),
            "lag_bytes": percentiles(lag_bytes),
            "lag_seconds": {k: (round(v, 3) if v is not None else None)
                            for k, v in percentiles(lag_secs).items()},
            "slot_lag_between_captures": {
                "lag_bytes": percentiles(between_bytes),
                "lag_seconds": percentiles(between_secs),
            },
        },
    )


# ---- Kinesis ------------------------------------------------------------------------------

def _bare_read(settings) -> tuple[int, int]:
    """Every record of every shard from TRIM_HORIZON; returns (records, get_records calls)."""
    kinesis = aws(settings, "kinesis")
    stream = settings.names.stream
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    total = calls = 0
    for shard in shards:
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            resp = kinesis.get_records(ShardIterator=it, Limit=10_000)
            calls += 1
            total += len(resp["Records"])
            it = resp.get("NextShardIterator")
            if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
                break
    return total, calls


def stage_kinesis(env: BenchEnvironment, put: dict) -> StageResult:

    s = env.settings
    (base_rows, calls), base_s = timed(_bare_read, s)
    with RssSampler(s) as rss:
        result, secs = timed(stages.ingest_events, s, *stages.default_interval())
    shards = len(result.get("per_shard") or {})
    return StageResult(
        stage="kinesis", rows=int(result["records"]), seconds=secs,
        baseline_rows=base_rows, baseline_seconds=base_s, target=TARGET,
        what="stage ingest_events (user_activity.run): every shard from its checkpoint → Firehose-layout objects + checkpoints",
        baseline="bare get_records loop over the same shards from TRIM_HORIZON (no S3, no checkpoints)",
        peak_rss_mb=rss.result(),
        details={"shards": shards, "objects": len(result.get("objects") or []),
                 "baseline_get_records_calls": calls, "producer": put},
    )


# ---- lake_clean ---------------------------------------------------------------------------

def _list(s3, bucket: str, prefix: str) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(keys)


def _clean_baseline(env: BenchEnvironment) -> dict[str, int]:
    """The raw zone read and written back as Parquet by one DuckDB COPY per raw table."""
    from lifecycle.clients import connect_duckdb

    s = env.settings
    s3, raw, out = aws(s, "s3"), s.names.bucket("raw"), env.baseline_bucket
    rows: dict[str, int] = {}
    with connect_duckdb(s) as con:
        for table in TABLES:
            keys = [k for k in _list(s3, raw, f"sales/public/{table}/") if k.endswith(".parquet")
                    and k.count("/") == 3]
            if not keys:
                continue
            files = "[" + ", ".join(f"'s3://{raw}/{k}'" for k in keys) + "]"
            rows[table] = con.execute(
                f"COPY (SELECT * FROM read_parquet({files}, union_by_name=true)) "
                f"TO 's3://{out}/clean-baseline/{table}.parquet' (FORMAT parquet)").fetchone()[0]
        keys = [k for k in _list(s3, raw, "events/") if k.count("/") == 5]
        if keys:
            files = "[" + ", ".join(f"'s3://{raw}/{k}'" for k in keys) + "]"
            rows["events"] = con.execute(
                f"COPY (SELECT line FROM (SELECT unnest(string_split(content, chr(10))) AS line "
                f"FROM read_text({files})) WHERE trim(line) <> '') "
                f"TO 's3://{out}/clean-baseline/events.parquet' (FORMAT parquet)").fetchone()[0]
    return rows


def _raw_rows_in(result: dict) -> dict[str, int]:
    """Raw rows read by the lake jobs of a ``run_lake_clean`` result (not their clean inputs)."""
    return {name: n for job in result["jobs"].values() for name, n in job["rows_in"].items()
            if not name.startswith("clean.")}


def stage_clean(env: BenchEnvironment, start: datetime, end: datetime) -> StageResult:

    s = env.settings
    base, base_s = timed(_clean_baseline, env)
    with RssSampler(s) as rss:
        result, secs = timed(stages.lake, s, start, end)
    rows_in = _raw_rows_in(result)
    return StageResult(
        stage="clean", rows=sum(rows_in.values()), seconds=secs,
        baseline_rows=sum(base.values()), baseline_seconds=base_s, target=TARGET,
        what="stage lake (runner.run_lake_clean): clean_sales + clean_events + clean_reviews (SQLFrame on DuckDB) + Glue",
        baseline="DuckDB COPY (SELECT * FROM read_parquet / split read_text of the raw objects) TO S3 Parquet",
        peak_rss_mb=rss.result(),
        details={"raw_rows_in": rows_in, "baseline_rows": base, "rows_out": result.get("rows_out"),
                 "rejected": result.get("rejected"),
                 "job_seconds": {n: j.get("duration_s") for n, j in result["jobs"].items()}},
    )


def stage_clean_incremental(env: BenchEnvironment, start: datetime, end: datetime, full: StageResult,
                            scale: int, n_events: int, share: float = 0.01) -> StageResult:
    """The lake jobs again after ``share`` new data (order changes through CDC and new events
    through Kinesis), incremental by job bookmark; ``details.cost_vs_full`` = its seconds ÷
    the full clean run's (issue target: ≤ 0.05 at 1 %)."""
    from datetime import timedelta

    from lifecycle.bench import workload
    from lifecycle.ingest import sales_cdc

    s = env.settings
    n_orders, n_new_events = max(1, int(scale * share)), max(1, int(n_events * share))
    # the newest orders move on (paid, shipped...); a new day of events arrives
    workload.change_orders(s, scale - n_orders + 1, n_orders)
    payloads, keys = workload.make_events(scale, n_new_events, (start + timedelta(days=1)).date(),
                                          first=n_events)
    workload.put_events(s, payloads, keys)
    # the ingestion of the new data, timed for the whole lifecycle's incremental cost
    _, cdc_s = timed(sales_cdc.capture_changes, s)
    _, events_s = timed(stages.ingest_events, s, *stages.default_interval())
    with RssSampler(s) as rss:
        result, secs = timed(stages.lake, s, start, end)
    rows_in = _raw_rows_in(result)
    return StageResult(
        stage="clean_incremental", rows=sum(rows_in.values()), seconds=secs,
        baseline_rows=full.rows, baseline_seconds=full.seconds, target=0.0,
        what=f"runner.run_lake_clean after {share:.0%} new data (job bookmarks: new objects only, "
             "merge into the touched partitions)",
        baseline="the full clean run of this benchmark",
        peak_rss_mb=rss.result(),
        details={"cost_vs_full": round(secs / full.seconds, 4) if full.seconds else None,
                 "ingest_seconds": {"sales_cdc": round(cdc_s, 3), "user_activity": round(events_s, 3)},
                 "new_orders_changed": n_orders, "new_events": n_new_events, "raw_rows_in": rows_in,
                 "modes": {n: j.get("mode") for n, j in result["jobs"].items()},
                 "partitions_rewritten": {n: j.get("partitions_rewritten") for n, j in result["jobs"].items()},
                 "job_seconds": {n: j.get("duration_s") for n, j in result["jobs"].items()}},
    )


# ---- warehouse load -----------------------------------------------------------------------


def _landing_columns(settings, table: str) -> list[str]:
    """The landing table's data columns (without the load's own ``_loaded_at``)."""
    from lifecycle.warehouse import load as load_module

    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'landing' "
                    "AND table_name = %s ORDER BY ordinal_position", (table,))
        return [r[0] for r in cur.fetchall() if r[0] != load_module.LOADED_AT]


def stage_load(env: BenchEnvironment, start: datetime, end: datetime) -> StageResult:
    from lifecycle.clients import connect_duckdb
    from lifecycle.lake.catalog import CLEAN_TABLES
    from lifecycle.warehouse import load

    s = env.settings
    load.ensure_landing(s)
    bucket = s.names.bucket("clean")
    base_rows, base_s, per_table = 0, 0.0, {}
    with tempfile.TemporaryDirectory(prefix="lifecycle-bench-csv-") as tmp:
        duck = connect_duckdb(s)
        files: dict[str, tuple[str, list[str]]] = {}
        export_started = time.perf_counter()
        try:  # producing the CSVs is not part of the baseline (reported as a detail)
            for name, spec in CLEAN_TABLES.items():
                keys = load.clean_objects(s, spec)
                cols = _landing_columns(s, name)
                if not keys or not cols:
                    continue
                path = os.path.join(tmp, f"{name}.csv")
                src = "[" + ", ".join(f"'s3://{bucket}/{k}'" for k in keys) + "]"
                select = ", ".join(ident(c) for c in cols)
                duck.execute(f"COPY (SELECT {select} FROM read_parquet({src}, union_by_name=true)) "
                             f"TO '{path}' (FORMAT csv, HEADER false)")
                files[name] = (path, cols)
        finally:
            duck.close()
        export_s = time.perf_counter() - export_started
        with pg(s, s.pg.warehouse_db, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("CREATE SCHEMA IF NOT EXISTS bench_baseline")
            for name in files:
                cur.execute(f"DROP TABLE IF EXISTS bench_baseline.{ident(name)}")
                cur.execute(f"CREATE TABLE bench_baseline.{ident(name)} (LIKE landing.{ident(name)} INCLUDING DEFAULTS)")
        for name, (path, cols) in files.items():
            started = time.perf_counter()
            with pg(s, s.pg.warehouse_db) as conn, conn.cursor() as cur, open(path, "rb") as fh:
                cur.execute(f"TRUNCATE bench_baseline.{ident(name)}")
                collist = ", ".join(ident(c) for c in cols)
                cur.copy_expert(f"COPY bench_baseline.{ident(name)} ({collist}) FROM STDIN WITH (FORMAT csv)",
                                fh, size=1 << 20)
                per_table[name] = cur.rowcount
            base_s += time.perf_counter() - started
            base_rows += per_table[name]
    with RssSampler(s) as rss:
        result, secs = timed(load.load_landing, s, start, end, mode="full")
    # the other transfer method, in the same run (not in the ratio): binary ↔ CSV pipe
    other = "pipe" if s.engines.load_method == "binary" else "binary"
    _, other_s = timed(load.load_landing, s, start, end, method=other, mode="full")
    _, secs_again = timed(load.load_landing, s, start, end, mode="full")  # the neighbours moved
    # the same load again: incremental against the manifest, nothing changed (not in the ratio)
    rerun: dict = {}
    _, rerun_s = timed(load.load_landing, s, start, end, details=rerun)
    with pg(s, s.pg.warehouse_db, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS bench_baseline CASCADE")
    return StageResult(
        stage="load", rows=sum(result.values()), seconds=secs,
        baseline_rows=base_rows, baseline_seconds=base_s, target=TARGET_LOAD,
        what=f"load.load_landing (method {s.engines.load_method}): clean Parquet on S3 → DuckDB → "
             + ("binary COPY (DuckDB's postgres extension)" if s.engines.load_method == "binary" else "CSV pipe → COPY")
             + " into landing (+ manifest)",
        baseline="Postgres COPY FROM STDIN (csv) of local CSV files of the same rows (making the CSVs not timed)",
        peak_rss_mb=rss.result(), details={"rows_per_table": result, "baseline_rows_per_table": per_table,
                 # DuckDB alone: clean Parquet on (moto) S3 → local CSV, the producer side of the pipe
                 "csv_export_seconds_untimed": round(export_s, 3),
                 "rerun_unchanged_seconds": round(rerun_s, 3),
                 # the same full load by the other method, then by this one again (not in the ratio)
                 "method": s.engines.load_method, "other_method": other,
                 "other_method_seconds": round(other_s, 3),
                 "other_method_ratio": round(base_s / other_s, 3) if other_s else None,
                 "again_seconds": round(secs_again, 3),
                 "again_ratio": round(base_s / secs_again, 3) if secs_again else None,
                 "rerun_rows_copied": sum(d["copied"] for d in rerun.values())},
    )
