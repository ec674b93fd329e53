"""`lifecycle deploy`, `review`, `preflight` and `recover`: the commands that operate a deployment.

Input: the settings (``lifecycle.cli.support.load_settings``) and each command's options.
Output: ``register(app)`` adds the commands to the root ``lifecycle`` app; each prints its
result (JSON where it is data) and exits with the CLI's exit codes (``cli.support``). The work
itself is in ``lifecycle.ops.deploy``, ``lifecycle.infra.review``,
``lifecycle.dataops.preflight`` and ``lifecycle.ops.recovery``, imported when a command runs.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from lifecycle.cli.support import USAGE, echo_json, fail, load_settings, unknown_name_message


def deploy() -> None:
    """Package dags/, plugins.zip, requirements.txt for Amazon MWAA; sync to its bucket.

    Uploads only what changed to LIFECYCLE_MWAA_BUCKET, then prints the
    `aws mwaa update-environment` command with the new object versions.

    \b
    Example:
      LIFECYCLE_TARGET=aws LIFECYCLE_MWAA_BUCKET=airflow-acme lifecycle deploy
    """
    from lifecycle.ops.deploy import sync

    result = sync(load_settings())
    echo_json({k: v for k, v in result.items() if k != "unchanged"} | {"unchanged": len(result["unchanged"])})
    v = result["versions"]
    typer.echo("then: aws mwaa update-environment --name <env> "
               f"--plugins-s3-object-version {v['plugins.zip']} --requirements-s3-object-version "
               f"{v['requirements.txt']} --startup-script-s3-object-version {v['startup.sh']}")


def review(as_json: bool = typer.Option(False, "--json", help="print the findings as JSON")) -> None:
    """Review the deployment against the Well-Architected data analytics lens.

    Checks the selected target's buckets, IAM roles and policies, Lake Formation grants,
    topics, alarms, log groups and tables; prints findings by severity; exits 1 on a high one.

    \b
    Example:
      lifecycle review
      LIFECYCLE_TARGET=aws lifecycle review --json
    """
    from lifecycle.infra.review import SEVERITIES
    from lifecycle.infra.review import review as review_deployment

    findings = review_deployment(load_settings())
    if as_json:
        echo_json([asdict(f) for f in findings])
    else:
        for f in findings:
            typer.echo(f"[{f.severity.upper():6}] {f.pillar:11} {f.check:24} {f.resource}: {f.message}")
        counts = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
        typer.echo(f"{len(findings)} findings: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if any(f.severity == "high" for f in findings):
        raise typer.Exit(1)


def recover_app() -> typer.Typer:
    app = typer.Typer(help="Rebuild a damaged layer from the one below (docs/recovery.md).",
                      epilog="Example: lifecycle recover lake", no_args_is_help=True)

    def settings():
        from lifecycle.dataops.preflight import require

        s = load_settings()  # a malformed setting: one line and exit 2, as every command
        require(s)
        return s

    @app.command("lake")
    def lake(table: str = typer.Option(None, help="with --snapshot: the clean or curated table to roll back"),
             snapshot: str = typer.Option(None, help="roll --table back to this snapshot id, or to the one "
                                                     "current at this ISO time (lifecycle lake snapshots)")):
        """Rebuild every lake table from raw/, or roll one back to a snapshot (--table, --snapshot).

        Without options: bookmarks dropped, every job run in full over raw/. With --table and
        --snapshot: Iceberg's rollback of that table, a metadata commit (no file rewritten).

        \b
        Example:
          lifecycle recover lake
          lifecycle recover lake --table orders --snapshot 4242424242424242
          lifecycle recover lake --table orders --snapshot 2026-12-03T09:00:00
        """
        from lifecycle.ops.recovery import rebuild_lake, rollback_table

        if (table is None) != (snapshot is None):
            fail("--table and --snapshot go together (without both: the full rebuild)", USAGE)
        if snapshot is None:
            echo_json(rebuild_lake(settings()))
            return
        try:
            echo_json(rollback_table(settings(), table, snapshot))
        except (KeyError, ValueError) as exc:
            fail(str(exc).strip("'\""), USAGE)

    @app.command("warehouse")
    def warehouse(dbt: bool = typer.Option(True, help="also dbt build --full-refresh (serving)")):
        """Reload every landing table in full from the clean zone, then rebuild serving.

        \b
        Example:
          lifecycle recover warehouse
          lifecycle recover warehouse --no-dbt
        """
        from lifecycle.ops.recovery import rebuild_warehouse

        echo_json(rebuild_warehouse(settings(), dbt=dbt))

    return app


def stage(names: Annotated[list[str], typer.Argument(help="stages, in order (lifecycle.pipeline.stages.RUNNERS)")],
          start: Annotated[str | None, typer.Option(help="interval start, ISO (default: the last whole hour)")] = None,
          end: Annotated[str | None, typer.Option(help="interval end, ISO")] = None) -> None:
    """Run stages as their DAG tasks run them, without Airflow (the one stage runner).

    \b
    Example:
      lifecycle stage ingest_sales lake warehouse
    """
    from datetime import datetime

    from lifecycle.dataops.preflight import require
    from lifecycle.pipeline.stages import RUNNERS, run_stages

    if bad := unknown_name_message("stage(s)", names, list(RUNNERS)):
        fail(bad, USAGE)
    if bool(start) != bool(end):
        fail("give --start and --end together (or neither: the last whole hour)", USAGE)
    try:
        interval = (datetime.fromisoformat(start), datetime.fromisoformat(end)) if start else (None, None)
    except ValueError as exc:
        fail(f"--start/--end: {exc} (use ISO 8601, e.g. 2026-11-25T00:00:00+00:00)", USAGE)
    s = load_settings()
    require(s)
    echo_json(run_stages(s, names, *interval))


def register(app: typer.Typer) -> None:
    from lifecycle.dataops.preflight import preflight_command

    app.command("deploy")(deploy)
    app.command("review")(review)
    app.command("stage")(stage)
    app.command("preflight")(preflight_command)
    app.add_typer(recover_app(), name="recover")
