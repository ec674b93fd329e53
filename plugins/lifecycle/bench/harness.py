"""``lifecycle.bench.main``: build the workload, run the selected stages, write the reports.

Input: argv (see ``parser()``): ``--scale`` orders (default 1,000,000; a comma list, or
``--scaling``, runs each scale in turn and adds a scaling report, ``lifecycle.bench.scaling``),
``--events`` (default 200,000; one value or one per scale), ``--stages`` (comma list of
full_load, cdc, cdc_lag, kinesis, clean, load, dbt, dbt_incremental, clean_incremental,
lifecycle_incremental, orchestration; default all; ``cdc`` also measures ``full_load``,
``lifecycle_incremental`` every full stage), ``--out`` (default ``<repo>/bench/results``),
``--keep`` (leave the benchmark environment running), and knobs for the shard count, the
CDC transaction size, the lag test and the DAGs of the orchestration stage.
Output: ``<out>/<UTC timestamp>.json`` and ``.md`` (see ``lifecycle.bench.report``), the
table printed; exit code 0 when every selected stage ran, 1 when one failed (a stage below
its target is reported, not an error).

Everything runs in a private embedded environment (``lifecycle.bench.environment``) on
data generated for the run (``lifecycle.bench.workload``). A stage that is not selected but
whose output a selected stage needs still runs, untimed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lifecycle.bench import workload
from lifecycle.bench.measure import StageResult, timed
from lifecycle.settings import REPO_ROOT

STAGES = ("full_load", "cdc", "cdc_lag", "kinesis", "clean", "load", "dbt", "dbt_incremental",
          "clean_incremental", "lifecycle_incremental", "orchestration")
# lifecycle_incremental reruns every stage after 1 % new data: it needs the full stages first
NEEDS = {"cdc": {"full_load"},
         "lifecycle_incremental": {"full_load", "kinesis", "clean", "load", "dbt", "dbt_incremental",
                                   "clean_incremental"}}
# cdc_lag runs for a fixed time against an offered load: not a throughput, not in `whole`;
# dbt_incremental compares two dbt builds (incremental vs full refresh) and clean_incremental
# an incremental lake run with the full one: not in `whole` either
WHOLE = ("full_load", "cdc", "kinesis", "clean", "load", "dbt")
DEFAULT_OUT = REPO_ROOT / "bench" / "results"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lifecycle bench", description=(
        "Benchmark every lifecycle stage against a raw baseline on the same data, in a private "
        "embedded environment. Reports ratios (stage rows/s ÷ baseline rows/s)."))
    p.add_argument("--scale", type=_ints, default=[1_000_000],
                   help="orders to generate (default 1,000,000); a comma list (100000,1000000) runs the "
                        "workload at each scale in turn and adds a scaling report")
    p.add_argument("--scaling", action="store_true",
                   help=f"shorthand for --scale {','.join(str(x) for x in SCALING)} (10 M: 30+ min)")
    p.add_argument("--events", type=_ints, default=[200_000],
                   help="Kinesis events (default 200,000), one value or one per scale")
    p.add_argument("--stages", default="all", help=f"comma list of {', '.join(STAGES)} or 'all'")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the JSON and Markdown results")
    p.add_argument("--keep", action="store_true", help="leave the benchmark environment running")
    p.add_argument("--shards", type=int, default=None,
                   help="Kinesis shards (default events/2000 within 16..128: moto slows as a shard fills)")
    p.add_argument("--changes", type=int, default=None, help="orders changed for the cdc stage (default: scale)")
    p.add_argument("--txn-rows", type=int, default=10_000, help="rows per transaction of the CDC changes")
    p.add_argument("--lag-seconds", type=float, default=None,
                   help="duration of the cdc_lag write load (default 20; 5 below 100,000 orders)")
    p.add_argument("--load-method", default=None, choices=("binary", "pipe", "file"),
                   help="the warehouse load's transfer method (default: binary)")
    p.add_argument("--duckdb-memory-limit", default=None, type=_memory_limit,
                   help="DuckDB memory_limit of the lake jobs and the load (e.g. 4GB; default 2GB as in "
                        "Settings, whatever the shell's LIFECYCLE_DUCKDB_MEMORY_LIMIT; none: DuckDB's own, "
                        "80%% of RAM)")
    p.add_argument("--orchestration-dags", default="",
                   help="DAGs the orchestration stage runs with dag.test (default: every lifecycle DAG)")
    p.add_argument("--lag-rate", type=float, default=500.0, help="rows/s of the cdc_lag write load")
    p.add_argument("--shared-source", action="store_true",
                   help="keep the source database on the warehouse's Postgres server (the embedded default's "
                        "layout; by default the source gets its own server, as RDS and compose's sales-db)")
    return p


SCALING = (100_000, 1_000_000, 10_000_000)


def _memory_limit(text: str) -> str:
    """``--duckdb-memory-limit``: checked as the setting is (``2GB``, ``512MB``, ``none``)."""
    from lifecycle.settings import SettingsError, parse_memory_limit

    try:
        parse_memory_limit(text, "--duckdb-memory-limit")
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _ints(text: str) -> list[int]:
    """``"100000,1e6,2_000"`` → ``[100000, 1000000, 2000]``."""
    try:
        out = [int(float(x)) if "e" in x.lower() else int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma list of integers: {text!r}") from exc
    if not out or min(out) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers: {text!r}")
    return out


def _selected(text: str) -> list[str]:
    if text.strip().lower() in ("", "all"):
        return list(STAGES)
    wanted = {s.strip().lower() for s in text.split(",") if s.strip()}
    unknown = wanted - set(STAGES) - {"whole"}
    if unknown:
        raise SystemExit(f"unknown stage(s): {', '.join(sorted(unknown))}; use {', '.join(STAGES)}")
    for stage, needs in NEEDS.items():
        if stage in wanted:
            wanted |= needs
    return [s for s in STAGES if s in wanted]


# measured: a 10M-order run had used 17 GB under /tmp (Postgres data, WAL and sort files,
# DuckDB spill) when its dbt stage failed with "No space left on device"
DISK_BYTES_PER_ORDER = 3_000


def _warn_if_short_of_disk(scale: int) -> None:
    import shutil
    import tempfile

    free, need = shutil.disk_usage(tempfile.gettempdir()).free, scale * DISK_BYTES_PER_ORDER
    if free < need:
        _log(f"WARNING: {free / 1e9:.1f} GB free under {tempfile.gettempdir()}, a run at {scale:,} orders "
             f"needs about {need / 1e9:.0f} GB: stages may fail with 'No space left on device'")


def _log(msg: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


def _whole(results: list[StageResult]) -> StageResult | None:
    parts = [r for r in results if r.stage in WHOLE and not r.error]
    if len(parts) < 2:
        return None
    peak: dict[str, float] = {}
    for r in parts:
        for k, v in r.peak_rss_mb.items():
            peak[k] = max(peak.get(k, 0.0), v)
    return StageResult(
        stage="whole", rows=sum(r.rows for r in parts), seconds=sum(r.seconds for r in parts),
        baseline_rows=sum(r.baseline_rows for r in parts),
        baseline_seconds=sum(r.baseline_seconds for r in parts), target=0.5,
        what="sum of the stages " + ", ".join(r.stage for r in parts),
        baseline="sum of their baselines", peak_rss_mb=peak,
        details={"stages": [r.stage for r in parts]},
    )


WARM_MODULES = ("pandas", "pyarrow.parquet", "duckdb", "sqlglot", "sqlframe", "sqlframe.duckdb",
                "lifecycle.ingest.sales_cdc", "lifecycle.ingest.user_activity", "lifecycle.jobs.engine.runner",
                "lifecycle.warehouse.load", "psutil")


def warm_up() -> float:
    """Import the heavy modules before any timing; returns the seconds it took.

    Stages are timed in a warm process: a first ``pq.write_table`` imports pandas, the first
    job imports SQLFrame and sqlglot (1–2 s together), a one-off cost per process that
    would otherwise land on whichever stage runs first. It is reported as ``import_seconds``.
    """
    import importlib

    started = time.perf_counter()
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    return time.perf_counter() - started


def _postgres_version(settings) -> str | None:
    from lifecycle.clients import pg

    try:
        with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
            cur.execute("SELECT current_setting('server_version')")
            return cur.fetchone()[0]
    except Exception:
        return None


def run_scale(args: argparse.Namespace, scale: int, n_events: int) -> dict:
    """One benchmark run at ``scale`` orders and ``n_events`` events in a fresh environment;
    returns ``{"meta", "results", "json", "md"}`` (the reports are written)."""
    from lifecycle.bench import dbt_bench, incremental, orchestration, report
    from lifecycle.bench import stage_bench as stages
    from lifecycle.bench.environment import bench_environment

    selected = _selected(args.stages)
    shards = args.shards or min(max(n_events // 2000, 16), 128)
    changes = min(args.changes or scale, scale)
    lag_seconds = args.lag_seconds if args.lag_seconds is not None else (20.0 if scale >= 100_000 else 5.0)
    day = workload.DEFAULT_DAY
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    need = set(selected)
    downstream = need & {"clean", "load", "dbt", "dbt_incremental", "clean_incremental", "lifecycle_incremental",
                         "orchestration"}
    timestamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    meta: dict = {"timestamp": timestamp, "load_average_start": None,
                  "params": {"scale": scale, "events": n_events, "shards": shards, "stages": selected,
                             "cdc_changes": changes, "cdc_txn_rows": args.txn_rows,
                             "lag_seconds": lag_seconds, "lag_rate": args.lag_rate, "day": day.isoformat()}}
    meta["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    _warn_if_short_of_disk(scale)
    results: list[StageResult] = []

    def measure(name: str, fn, *fargs) -> StageResult | None:
        _log(f"stage {name} ...")
        try:
            r = fn(*fargs)
        except Exception as exc:
            traceback.print_exc()
            r = StageResult(stage=name, rows=0, seconds=0.0, baseline_rows=0, baseline_seconds=0.0,
                            target=stages.TARGET, error=f"{type(exc).__name__}: {exc}")
        results.append(r)
        _log(f"stage {name}: {r.rows:,} rows in {r.seconds:.2f} s, baseline {r.baseline_rows:,} rows in "
             f"{r.baseline_seconds:.2f} s, ratio {r.ratio if r.ratio is None else round(r.ratio, 3)}"
             + (f" ERROR {r.error}" if r.error else ""))
        return r

    meta["import_seconds"] = round(warm_up(), 2)
    meta["params"]["source_server"] = "shared" if args.shared_source else "separate"
    with bench_environment(keep=args.keep, separate_source=not args.shared_source) as env:
        if args.duckdb_memory_limit:
            from lifecycle.settings import parse_memory_limit

            limit = parse_memory_limit(args.duckdb_memory_limit, "--duckdb-memory-limit")
            env.settings = replace(env.settings, engines=replace(env.settings.engines, duckdb_memory_limit=limit))
            env.env["LIFECYCLE_DUCKDB_MEMORY_LIMIT"] = limit or "none"
        meta["params"]["duckdb_memory_limit"] = env.settings.engines.duckdb_memory_limit or "none (DuckDB's own)"
        if args.load_method:
            env.settings = replace(env.settings, engines=replace(env.settings.engines, load_method=args.load_method))
            env.env["LIFECYCLE_LOAD_METHOD"] = args.load_method
            meta["params"]["load_method"] = args.load_method
        s = env.settings
        _log(f"environment at {env.home} (postgres :{s.pg.port}"
             + (f", source postgres :{s.pg.sales_port}" if s.pg.sales_port else "") + f", moto :{s.services.moto_port})")
        meta["versions"] = report.versions(_postgres_version(s))
        wl: dict = {}
        meta["workload"] = wl

        if need & {"full_load", "cdc", "cdc_lag"} or downstream:
            rows, secs = timed(workload.generate_sales, s, scale, day)
            wl["sales"] = {"rows": rows, "seconds": round(secs, 2)}
            _log(f"sales generated: {rows} in {secs:.1f} s")
        if need & {"kinesis"} or downstream:
            (payloads, keys), secs = timed(workload.make_events, scale, n_events, day)
            workload.recreate_stream(s, shards)
            put = workload.put_events(s, payloads, keys)
            del payloads, keys
            wl["events"] = {"generated_seconds": round(secs, 2), "put": put, "shards": shards}
            _log(f"events put: {put}")

        # ---- sales: full load, CDC, lag
        if "full_load" in need:
            measure("full_load", stages.stage_full_load, env)
        elif need & {"cdc_lag"} or downstream:
            from lifecycle.ingest import sales_cdc

            sales_cdc.full_load(s)
        if "cdc" in need or downstream:
            n, secs = timed(workload.change_orders, s, 1, changes, args.txn_rows)
            wl["cdc_changes"] = {"rows": n, "txn_rows": args.txn_rows, "seconds": round(secs, 2)}
            _log(f"{n} orders changed in {secs:.1f} s")
            if "cdc" in need:
                measure("cdc", stages.stage_cdc, env, 1, changes)
            else:
                from lifecycle.ingest import sales_cdc

                sales_cdc.capture_changes(s)
        if "cdc_lag" in need:
            measure("cdc_lag", stages.stage_cdc_lag, env, args.lag_rate, lag_seconds, scale)

        # ---- events
        if "kinesis" in need:
            measure("kinesis", stages.stage_kinesis, env, wl["events"]["put"])
        elif downstream:
            from lifecycle.ingest import user_activity

            user_activity.run(s)

        # ---- lake, warehouse, dbt
        if "clean" in need or "clean_incremental" in need:
            full_clean = measure("clean", stages.stage_clean, env, start, end)
        elif need & {"load", "dbt", "dbt_incremental"}:
            from lifecycle.jobs.engine.runner import run_lake_clean

            run_lake_clean(s, start, end)
        if "load" in need:
            measure("load", stages.stage_load, env, start, end)
        elif need & {"dbt", "dbt_incremental"}:
            from lifecycle.warehouse.load import load_landing

            load_landing(s, start, end)
        if "dbt" in need:
            measure("dbt", dbt_bench.stage_dbt, env, env.home / "dbt")
        if "lifecycle_incremental" in need:
            # untimed: the dbt stage leaves its baseline's copies; the incremental build needs dbt's own
            _, secs = dbt_bench.fresh_build(env, env.home / "dbt-incremental")
            _log(f"dbt models rebuilt by dbt (untimed) in {secs:.1f} s")
        # after the full stages: it adds data the stages above would otherwise see
        if "clean_incremental" in need and not full_clean.error:
            inc = measure("clean_incremental", stages.stage_clean_incremental, env, start, end, full_clean,
                          scale, n_events)
            _log(f"incremental clean after 1% new data: {inc.details.get('cost_vs_full')} of the full run")
            if "lifecycle_incremental" in need:
                whole_inc = measure("lifecycle_incremental", incremental.stage_lifecycle_incremental, env,
                                    start, end, inc, {r.stage: r for r in results},
                                    env.home / "dbt-incremental")
                _log(f"whole lifecycle after 1% new data: {whole_inc.details.get('cost_vs_full')} of the full run")

        if "dbt_incremental" in need:  # last: it adds copies of 1 % of the rows straight into landing
            measure("dbt_incremental", dbt_bench.stage_dbt_incremental, env, env.home / "dbt-incremental")

        if "orchestration" in need:  # last: the DAGs run the whole lifecycle again, on this data
            orch = measure("orchestration", orchestration.stage_orchestration, env, env.home / "orchestration",
                           args.orchestration_dags)
            if not orch.error:
                _log(f"Airflow's share of the DAG runs' wall time: {orch.details['overhead']['airflow_share']}")

        whole = _whole(results)
        if whole:
            results.append(whole)
        meta["machine"] = report.machine()
        if args.keep:
            _log(f"environment kept: LIFECYCLE_HOME={env.home} LIFECYCLE_PG_PORT={s.pg.port} "
                 + (f"LIFECYCLE_SALES_PG_PORT={s.pg.sales_port} (source server state: {env.source.home}) "
                    if env.source else "")
                 + f"LIFECYCLE_MOTO_PORT={s.services.moto_port}")

    json_path, md_path = report.write(Path(args.out), meta, results)
    print()
    print(report.render_table(results))
    for line in (report.lag_summary(results), report.incremental_summary(results),
                 report.orchestration_summary(results)):
        if line:
            print(line)
    below = report.below_target(results)
    print(f"below target: {', '.join(below) if below else 'none'}")
    print(f"results: {json_path} and {md_path}")
    return {"meta": meta, "results": results, "json": json_path, "md": md_path}


def run(args: argparse.Namespace) -> int:
    from lifecycle.bench import scaling

    scales = list(SCALING) if args.scaling else args.scale
    if len(args.events) not in (1, len(scales)):
        raise SystemExit("--events: one value, or one per scale")
    events = args.events if len(args.events) == len(scales) else [args.events[0]] * len(scales)
    runs = []
    for scale, n_events in zip(scales, events, strict=True):
        _log(f"==== scale {scale:,} orders, {n_events:,} events")
        runs.append(run_scale(args, scale, n_events))
    if len(runs) > 1:
        json_path, md_path, text = scaling.write(Path(args.out), runs)
        print()
        print(text)
        print(f"scaling results: {json_path} and {md_path}")
    return 1 if any(r.error for run_ in runs for r in run_["results"]) else 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run(args)
