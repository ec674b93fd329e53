"""`lifecycle`: the command line for everything outside Airflow.

Input: the command line and the environment (``Settings.from_env()``).
Output: the action's result on stdout; progress and errors on stderr (colour and progress
bars only on a terminal; NO_COLOR=1 turns colour off). Exit codes, the same for every command:
0 success; 1 the command ran and something failed or a check did not pass; 2 it could not
run: a usage or settings error or a missing prerequisite (services not running, a port in
use, Java missing), with a message that says what to do (``lifecycle.cli.support``).

    lifecycle services up|down|status     embedded Postgres + moto
    lifecycle infra apply                  buckets, stream, tables, topic, Glue, IAM
    lifecycle simulate --date 2026-11-26   one business day into the sources
    lifecycle run                          every lifecycle DAG once, in order (dag.test)
    lifecycle reconcile                    source vs lake vs warehouse vs serving
    lifecycle demo                         all of the above, with a report
    lifecycle jobs run all                 the lake's Glue-style jobs (incremental by bookmark)
    lifecycle query "select ..."           ad hoc SQL: lake tables via the Glue Catalog, or the warehouse
    lifecycle lake grants                  Lake Formation grants in effect
    lifecycle lake spark-run               the clean jobs on real Spark, on a local copy of raw
    lifecycle lake glue-deploy             the jobs as AWS Glue jobs (scripts + definitions)
    lifecycle recommend 7                  products similar to product 7 (pgvector)
    lifecycle metabase-provision           the Metabase dashboard of infra/metabase/ via its API
    lifecycle airflow                      Airflow 3 (UI on :8080) on the embedded services
    lifecycle metrics [--html f.html]      latest CloudWatch metrics with a trend
    lifecycle logs <dag> <task>            a task's log from CloudWatch Logs
    lifecycle alarms evaluate|list         CloudWatch alarms (evaluated here on emulators)
    lifecycle observe --date 2026-11-26    data-observability monitors for one day
    lifecycle lineage                      which job produced which dataset (OpenLineage)

Each command group is a module here (environment, ingest, lake, runs, serve, observe,
operations) with a ``register(app)``; ``support`` holds what they share.
"""


from __future__ import annotations

import os
import sys

import typer

from lifecycle.cli import environment, ingest, lake, observe, operations, runs, serve

EXIT_CODES = ("Exit codes: 0 success; 1 something failed or a check did not pass; 2 usage, settings or a "
              "missing prerequisite (the message says what to do).")

app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True, add_completion=False,
                  epilog=f"Example: lifecycle demo    {EXIT_CODES}")


@app.callback()
def _options(ctx: typer.Context) -> None:
    # click already drops colour when stdout is not a terminal; NO_COLOR (no-color.org) always
    if os.environ.get("NO_COLOR"):
        ctx.color = False


# one module per command group, each adds its commands
for _module in (runs, environment, ingest, lake, serve, observe, operations):
    _module.register(app)


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
