"""`lifecycle services`, `infra apply`, `airflow` and `airflow-env`: the environment the lifecycle runs in.

Input: the settings and each command's options. Output: ``register(app)`` adds the commands to the
root app; each prints its result and exits with the CLI's exit codes (``cli.support``).
"""

from __future__ import annotations

import typer

from lifecycle.cli.support import FAILED, OK, USAGE, echo_json, fail, group, load_settings, progress

services_app = group("Embedded services (pgserver Postgres + moto).", "lifecycle services up")
infra_app = group("Infrastructure as data (infra/).", "lifecycle infra apply")


@services_app.command("up")
def services_up():
    """Start Postgres and moto (idempotent).

    \b
    Example:
      lifecycle services up
      LIFECYCLE_PG_PORT=55433 LIFECYCLE_MOTO_PORT=55001 lifecycle services up   # other ports
    """
    from lifecycle.ops import services

    s = load_settings()
    try:
        with progress("starting Postgres and moto"):
            result = services.up(s)
    except services.PortInUseError as exc:
        fail(str(exc), USAGE)
    except services.ServiceError as exc:
        fail(str(exc))
    st = services.status(s)
    typer.echo(f"postgres  127.0.0.1:{s.pg.port}  pid {st.pg_pid}  (databases sales, warehouse, airflow)")
    typer.echo(f"moto      {s.aws.endpoint}  pid {st.moto_pid}")
    if result["environment_reset"]:
        typer.secho("moto was restarted, so its state is new: the sales and warehouse databases were "
                    "recreated to match.", fg=typer.colors.YELLOW)


@services_app.command("down")
def services_down():
    """Stop Postgres and moto (the state stays in .lifecycle/; `make reset` deletes it).

    \b
    Example:
      lifecycle services down
    """
    from lifecycle.ops import services

    services.down(load_settings())
    typer.echo("stopped")


@services_app.command("status")
def services_status():
    """Show whether the embedded services run (ports, pids, memory); exit 1 if not.

    \b
    Example:
      lifecycle services status
    """
    from lifecycle.ops import services

    s = load_settings()
    st = services.status(s)
    typer.echo(f"postgres: {'up' if st.postgres else 'down'} (port {s.pg.port})")
    typer.echo(f"moto:     {'up' if st.moto else 'down'} ({s.aws.endpoint})")
    if st.all_up:
        for k, v in services.rss_mb(s).items():
            typer.echo(f"{k}: {v:.0f}")
    raise typer.Exit(OK if st.all_up else FAILED)


@infra_app.command("apply")
def infra_apply(plan: bool = typer.Option(False, "--plan", help="dry run: print what would change, change nothing")):
    """Create or converge every resource in infra/ on the selected target.

    \b
    Example:
      lifecycle infra apply
      LIFECYCLE_TARGET=aws lifecycle infra apply --plan
    """
    from lifecycle.infra import apply as infra

    s = load_settings(services=True)
    if plan:
        from lifecycle.infra.plan import plan as make_plan
        from lifecycle.infra.plan import print_plan

        print_plan(make_plan(s), typer.echo)
        return
    with progress(f"applying infra/ to {s.target}"):
        result = infra.apply(s)
    echo_json(result)


def airflow_env_cmd():
    """Print `export` lines of the Airflow environment (and the emulator's endpoint).

    \b
    Example:
      eval "$(lifecycle airflow-env)"; airflow dags list
    """
    import shlex

    from lifecycle.pipeline.environment import airflow_env

    for k, v in airflow_env(load_settings()).items():
        typer.echo(f"export {k}={shlex.quote(v)}")


def airflow(port: int = typer.Option(None, help="port of the UI / API server; default LIFECYCLE_AIRFLOW_PORT or 8080")):
    """Run Airflow 3 (scheduler, dag-processor, triggerer, api-server) until Ctrl-C.

    \b
    Example:
      lifecycle airflow                     # the UI on port 8080
      LIFECYCLE_AIRFLOW_PORT=8081 lifecycle airflow
    """
    from lifecycle.ops.airflow import run_airflow
    from lifecycle.ops.services import port_in_use, port_in_use_message

    s = load_settings(services=True)
    port = port or s.services.airflow_port
    if port_in_use(port):
        fail(port_in_use_message(port, "LIFECYCLE_AIRFLOW_PORT", "the Airflow UI") + " (or pass --port)", USAGE)
    raise typer.Exit(run_airflow(s, port))


def register(app: typer.Typer) -> None:
    app.add_typer(services_app, name="services")
    app.add_typer(infra_app, name="infra")
    app.command("airflow-env")(airflow_env_cmd)
    app.command()(airflow)
