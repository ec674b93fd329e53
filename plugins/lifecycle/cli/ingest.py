"""`lifecycle cdc status|resnapshot`: change data capture from the sales database (DMS-style).

Input: the settings. Output: ``register(app)`` adds the `cdc` group to the root app.
"""

from __future__ import annotations

import typer

from lifecycle.cli.support import FAILED, echo_json, group, load_settings, progress

cdc_app = group("Change data capture from the sales database (DMS-style).", "lifecycle cdc status")


@cdc_app.command("status")
def cdc_status():
    """The replication slot, its lag (bytes, seconds) and the raw files per table.

    \b
    Example:
      lifecycle cdc status
    """
    from lifecycle.clients import aws, pg
    from lifecycle.ingest import sales_cdc

    s = load_settings(services=True)
    lag = sales_cdc.slot_lag(s)
    if not lag["exists"]:
        typer.echo(f"slot {sales_cdc.SLOT}: missing (the next ingest_sales run re-snapshots)")
        raise typer.Exit(FAILED)
    with pg(s, s.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT active, restart_lsn::text, confirmed_flush_lsn::text FROM pg_replication_slots "
                    "WHERE slot_name = %s", (sales_cdc.SLOT,))
        active, restart, flushed = cur.fetchone()
    typer.echo(f"slot {sales_cdc.SLOT}: {'active' if active else 'idle'}, restart_lsn {restart}, "
               f"confirmed_flush_lsn {flushed}")
    typer.echo(f"lag: {lag['lag_bytes']} bytes of WAL, {lag['lag_seconds']:.1f} s behind the oldest "
               f"unconsumed commit (alert above {s.thresholds.cdc_lag_alert_seconds} s)")
    s3 = aws(s, "s3")
    from lifecycle.sources.sales_db import TABLES

    for table in TABLES:
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=s.names.bucket("raw"), Prefix=f"{sales_cdc.PREFIX}/{table}/") for o in page.get("Contents", [])]
        cdc = [k for k in keys if "LOAD" not in k]
        typer.echo(f"  {table:<12} full load: {'yes' if len(keys) > len(cdc) else 'no'}, CDC files: {len(cdc)}"
                   + (f", newest {cdc[-1].rsplit('/', 1)[-1]}" if cdc else ""))


@cdc_app.command("resnapshot")
def cdc_resnapshot(yes: bool = typer.Option(False, "--yes", help="do not ask")):
    """Recreate the slot and take a new full load (after a breaking schema change).

    \b
    Example:
      lifecycle cdc resnapshot --yes
    """
    from lifecycle.ingest import sales_cdc

    s = load_settings(services=True)
    if not yes:
        typer.confirm("This replaces the raw sales files with a new full load (CDC history is dropped). Go on?",
                      abort=True)
    with progress("full load of the sales database"):
        result = sales_cdc.full_load(s)
    echo_json(result)


def register(app: typer.Typer) -> None:
    app.add_typer(cdc_app, name="cdc")
