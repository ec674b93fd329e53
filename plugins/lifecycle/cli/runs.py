"""`lifecycle simulate`, `run`, `reconcile`, `demo`, `bench`: a business day through the whole lifecycle.

Input: the settings and each command's options. Output: ``register(app)`` adds the commands to the
root app.
"""

from __future__ import annotations

import sys

import typer

from lifecycle.cli.support import (
    FAILED,
    OK,
    USAGE,
    default_date,
    echo_json,
    fail,
    load_settings,
    parse_date,
    progress,
    services_down_message,
    unknown_name_message,
)


def simulate(
    day: str = typer.Option(None, "--date", help="business date (YYYY-MM-DD); default: yesterday UTC"),
    scale: int = typer.Option(200, help="orders per day"),
    seed: int = typer.Option(42),
    bad_rate: float = typer.Option(0.02, help="share of deliberately bad event records"),
    late_rate: float = typer.Option(0.01, help="share of late events (yesterday's, arriving today)"),
):
    """Play one business day of the sales platform into the sources (RDS, Kinesis, DynamoDB).

    \b
    Example:
      lifecycle simulate --date 2026-11-25 --bad-rate 0.05
    """
    from lifecycle.sources.simulator import SimulationRefused, simulate_day

    d = parse_date(day) if day else default_date()
    s = load_settings(services=True)
    try:
        with progress(f"simulating {d} ({scale} orders)"):
            result = simulate_day(s, d, seed=seed, scale=scale, bad_rate=bad_rate, late_rate=late_rate)
    except SimulationRefused as exc:
        fail(str(exc), USAGE)
    echo_json(result)


def run(
    dags: str = typer.Option(None, help="comma-separated DAG ids; default: the whole lifecycle"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show Airflow's task logs on a terminal too "
                                 "(they are always shown when the output is not a terminal)"),
):
    """Run the lifecycle's DAGs once, in order, with Airflow's dag.test().

    On a terminal: a progress bar and the result; elsewhere (CI, a pipe) Airflow's task logs too.

    \b
    Example:
      lifecycle run
      lifecycle run --dags warehouse_load,dbt_build,serve_publish
    """
    from lifecycle.dataops.preflight import PreflightError, check
    from lifecycle.ops import dag_runs as orchestrate

    valid = sorted(p.stem for p in (orchestrate.REPO_ROOT / "dags").glob("*.py"))
    ids = tuple(dags.split(",")) if dags else orchestrate.LIFECYCLE_DAGS
    if bad := unknown_name_message("DAG(s)", list(ids), valid):
        fail(bad, USAGE)
    s = load_settings()
    try:  # a wrong endpoint, credential or database: named now, not deep in a task
        check(s)
    except PreflightError as exc:  # the setting at fault; and when it is only that they are down, how to start them
        down = services_down_message(s)
        fail(f"preflight: {exc}" + (f"\n{down}" if down else ""), USAGE)
    # on a terminal the progress bar stands for the task logs (-v brings them back)
    orchestrate.configure_airflow(s, quiet=sys.stderr.isatty() and not verbose)
    orchestrate.migrate_metadata(s)
    orchestrate.build_dbt_manifest()
    with progress("running the lifecycle's DAGs", total=len(ids)) as advance:
        results = orchestrate.run_dags(ids, on_done=lambda dag_id, _: advance(f"{dag_id} done"))
    echo_json({d: r["state"] for d, r in results.items()})
    ok = len(results) == len(ids) and all(r["state"].endswith("success") for r in results.values())
    raise typer.Exit(OK if ok else FAILED)


def reconcile():
    """Compare source, lake, warehouse and serving; exit 1 on any mismatch.

    \b
    Example:
      lifecycle reconcile
    """
    from lifecycle.dataops.reconcile import print_report
    from lifecycle.dataops.reconcile import reconcile as check

    report = check(load_settings(services=True))
    print_report(report)
    raise typer.Exit(OK if report["ok"] else FAILED)


def demo(
    day: str = typer.Option(None, "--date", help="business date; default: yesterday UTC"),
    scale: int = typer.Option(200, help="orders per day"),
    bad_rate: float = typer.Option(0.02, help="share of deliberately bad event records"),
    late_rate: float = typer.Option(0.01, help="share of late events"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show Airflow's task logs"),
):
    """Start services, apply infra, simulate a day, run the lifecycle, reconcile, report (make demo).

    \b
    Example:
      lifecycle demo
      lifecycle demo --date 2026-11-25 --scale 500 -v
    """
    from lifecycle.ops.demo import run_demo

    d = parse_date(day) if day else default_date()
    raise typer.Exit(run_demo(load_settings(), d, scale=scale, bad_rate=bad_rate, late_rate=late_rate,
                                verbose=verbose))


def bench(ctx: typer.Context):
    """Benchmark every stage against a raw baseline on the same data (its own environment).

    Options pass through (`python -m lifecycle.bench --help` lists them); results go to
    bench/results/ (docs/bench.md).

    \b
    Example:
      lifecycle bench --scale 200000 --events 50000
    """
    from lifecycle.bench import main as bench_main

    with progress("benchmarking (stage lines below)"):
        code = bench_main(list(ctx.args))
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command()(simulate)
    app.command()(run)
    app.command()(reconcile)
    app.command()(demo)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(bench)
