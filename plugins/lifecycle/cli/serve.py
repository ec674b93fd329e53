"""`lifecycle query`, `recommend`, `metabase-provision`: what the serving stage answers.

Input: the settings and each command's options. Output: ``register(app)`` adds the commands to the
root app; ``warehouse_query`` runs one statement on the warehouse (columns, rows).
"""

from __future__ import annotations

import typer

from lifecycle.cli.support import USAGE, echo_json, fail, load_settings
from lifecycle.settings import Settings


def query(
    sql: str = typer.Argument(..., help="one SQL statement"),
    output: str = typer.Option(None, "--output", "-o", help="write the result to a .csv or .parquet file"),
    lake: bool = typer.Option(False, "--lake", help="resolve tables through the Glue Catalog (bare names: "
                              "the default database lake_clean)"),
    warehouse: bool = typer.Option(False, "--warehouse", help="run on the warehouse (Postgres / Redshift)"),
    as_of: str = typer.Option(None, "--as-of", help="read the lake's Iceberg tables as of a snapshot id "
                              "or a timestamp (time travel)"),
    role: str = typer.Option(None, "--role", help="query the lake as this IAM role of infra/iam (e.g. analyst), "
                             "its Lake Formation grants enforced"),
):
    """Ad hoc SQL on the lake (Athena-style, through the Glue Catalog) or the warehouse.

    `SELECT ... FROM lake_clean.orders` runs on the lake: tables resolved through the Glue
    Catalog; DuckDB here, Athena on the aws target. SQL that names no Glue database runs on
    the warehouse. Bad SQL or an unknown table exits 2 with the reason.

    \b
    Example:
      lifecycle query "select status, count(*) from lake_clean.orders group by 1"
      lifecycle query "select * from serving.daily_sales" --output daily.csv
      lifecycle query "select count(*) from lake_curated.product_features" --as-of 2026-12-03T10:00:00
      lifecycle query --role analyst "select country, count(*) from lake_clean.customers group by 1"
    """
    from lifecycle.lake import query as lake_sql

    if lake and warehouse:
        fail("use --lake or --warehouse, not both", USAGE)
    s = load_settings(services=True)
    try:
        if role and warehouse:
            fail("--role applies Lake Formation grants on the lake; the warehouse has its own roles "
                 "(serving: bi_reader)", USAGE)
        engine = "lake" if lake or role else "warehouse" if warehouse else lake_sql.route(s, sql)
        if engine == "lake":
            result = lake_sql.run_query(s, sql, output, as_of, role)
            cols, rows = result.columns, result.rows
        elif as_of is not None:
            fail("--as-of reads the lake's Iceberg tables; this SQL runs on the warehouse", USAGE)
        else:
            cols, rows = warehouse_query(s, sql, output)
    except lake_sql.LakeSqlError as exc:
        fail(str(exc), USAGE)
    if cols:
        typer.echo(lake_sql.format_table(cols, rows))


def warehouse_query(s: Settings, sql: str, output: str | None) -> tuple[list[str], list[tuple]]:
    import psycopg2

    from lifecycle.clients import pg
    from lifecycle.lake import query as lake_sql

    try:
        with pg(s, s.pg.warehouse_db) as conn, conn.cursor() as cur:
            cur.execute(sql)
            if cur.description is None:
                typer.echo(cur.statusmessage)
                return [], []
            cols = [d[0] for d in cur.description]
            rows = cur.fetchall()
    except psycopg2.Error as exc:
        message = str(exc).strip()
        if isinstance(exc, psycopg2.errors.UndefinedTable):
            try:
                message += f"\n(lake tables: {lake_sql.catalog_listing(lake_sql.catalog_tables(s))})"
            except Exception:  # the hint is optional; the warehouse error stands
                pass
        raise lake_sql.LakeSqlError(f"warehouse: {message}") from exc
    if output:
        lake_sql.write_rows(lake_sql.QueryResult(cols, [tuple(None if v is None else str(v) for v in r)
                                                        for r in rows]), output)
        return ["rows_written"], [(len(rows),)]
    return cols, rows


def recommend(
    product_id: int = typer.Argument(..., help="the product to find similar products for"),
    k: int = typer.Option(5, "--k", "-k", min=1, max=100, help="how many similar products"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
):
    """Products similar to PRODUCT_ID, from the published pgvector index.

    Embeddings are learnt from co-purchase and co-view behaviour; score = cosine similarity,
    1 is identical.

    \b
    Examples:
      lifecycle recommend 7
      lifecycle recommend 7 --k 10
      lifecycle recommend 7 --json
    """
    from lifecycle.serve.recommend import RecommendError
    from lifecycle.serve.recommend import recommend as nearest

    s = load_settings(services=True)
    try:
        rows = nearest(s, product_id, k)
    except RecommendError as exc:
        fail(str(exc))
    if as_json:
        echo_json(rows)
        return
    typer.echo(f"products similar to {product_id}:")
    for rank, r in enumerate(rows, start=1):
        typer.echo(f"  {rank:>2}. {r['product_id']:>6}  {r['score']:.4f}  {r['name']} ({r['category']})")


def metabase_provision(
    spec: str = typer.Option(None, help="dashboard spec (default infra/metabase/dashboard.json)"),
    wait: int = typer.Option(300, help="seconds to wait for Metabase to become healthy"),
):
    """Create (or update) the Metabase dashboard of the repo through Metabase's API.

    First admin, the warehouse as a database read by bi_reader (schema serving only), the
    cards, the dashboard. Needs LIFECYCLE_METABASE_URL (default: port 3000 of this machine;
    compose: the metabase service), LIFECYCLE_METABASE_ADMIN_PASSWORD and
    LIFECYCLE_BI_READER_PASSWORD. In compose the one-shot service `metabase-provision` runs it.

    \b
    Example:
      docker compose --profile bi up -d
      lifecycle metabase-provision --wait 600
    """
    from lifecycle.serve.metabase import MetabaseError, provision

    try:
        out = provision(load_settings(), spec, wait_seconds=wait)
    except MetabaseError as exc:
        fail(str(exc))
    typer.echo(f"dashboard: {out['url']}  ({len(out['cards'])} cards)")


def register(app: typer.Typer) -> None:
    app.command()(query)
    app.command()(recommend)
    app.command("metabase-provision")(metabase_provision)
