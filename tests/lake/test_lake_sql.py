"""`lifecycle query` over the lake, Athena-style: tables resolved through the Glue Catalog.

Input: the hand-written raw zone of test_jobs, cleaned by the DuckDB runner (so the clean
tables and partitions are registered in the Glue database ``lake_clean`` on moto).
Asserts: a good query and an aggregation give the lake's rows (partition keys typed from the
catalog), CSV and Parquet output files, bad SQL → DuckDB's message and exit 2 without a
traceback, unknown table / unknown database → exit 2 naming the catalog's databases and
tables, SQL naming only warehouse schemas still runs on the warehouse, and the Athena path
(aws target) makes its calls (moto's Athena returns no rows).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from conftest import reset_lake
from typer.testing import CliRunner

ORDERS = [(100, "delivered"), (103, "placed"), (104, "placed")]


@pytest.fixture(scope="module")
def lake(settings):
    from raw_lake import write_raw

    from lifecycle.jobs.engine.runner import run_lake_clean

    reset_lake(settings)
    write_raw(settings)
    run_lake_clean(settings, datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC))
    return settings


def _cli(*args):
    from lifecycle.cli import app

    return CliRunner().invoke(app, ["query", *args])


def test_good_query_reads_the_lake_through_the_catalog(lake):
    from lifecycle.lake.query import route, run_query

    sql = "SELECT order_id, status FROM lake_clean.orders ORDER BY order_id"
    assert route(lake, sql) == "lake"
    result = run_query(lake, sql)
    assert result.columns == ["order_id", "status"] and result.rows == ORDERS
    assert result.tables == {"lake_clean.orders": f"s3://{lake.names.bucket('clean')}/orders"}
    # the partition key comes typed from the catalog (DATE), not as text
    typed = run_query(lake, "SELECT DISTINCT typeof(order_date) FROM lake_clean.orders")
    assert typed.rows == [("DATE",)]
    out = _cli(sql)
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[0].split() == ["order_id", "status"]
    assert out.output.splitlines()[1].split() == ["100", "delivered"]


def test_aggregation_and_join(lake):
    from lifecycle.lake.query import run_query

    result = run_query(lake, """
        SELECT o.order_date, count(DISTINCT o.order_id) AS orders, sum(i.quantity * i.unit_price) AS revenue
        FROM lake_clean.orders o JOIN lake_clean.order_items i USING (order_id)
        GROUP BY 1 ORDER BY 1""")
    assert [(str(d), n, str(r)) for d, n, r in result.rows] == [
        ("2026-01-01", 1, "58.98"), ("2026-01-02", 1, "15.00"), ("2026-01-03", 1, "21.00")]
    # a bare name is a table of the default database, as in Athena's query context
    bare = _cli("SELECT count(*) AS n FROM customers", "--lake")
    assert bare.exit_code == 0 and bare.output.split() == ["n", "3"]


def test_csv_and_parquet_output(lake, tmp_path):
    sql = "SELECT order_id, status FROM lake_clean.orders ORDER BY order_id"
    for name in ("orders.csv", "orders.parquet"):
        target = tmp_path / name
        out = _cli(sql, "--output", str(target))
        assert out.exit_code == 0, out.output
        assert out.output.split() == ["rows_written", "3"]
        table = pacsv.read_csv(target) if name.endswith(".csv") else pq.read_table(target)
        assert list(zip(*table.to_pydict().values(), strict=True)) == ORDERS
    bad = _cli(sql, "--output", str(tmp_path / "orders.xlsx"))
    assert bad.exit_code == 2 and ".csv or .parquet" in bad.output


def test_bad_sql_gives_duckdb_error_and_exit_2(lake):
    out = _cli("SELECT order_id FROM lake_clean.orders WHERE")
    assert out.exit_code == 2
    assert "Parser Error" in out.output and "Traceback" not in out.output
    out = _cli("SELECT no_such_column FROM lake_clean.orders")
    assert out.exit_code == 2
    assert "no_such_column" in out.output and "Traceback" not in out.output


def test_unknown_table_names_the_catalog(lake):
    out = _cli("SELECT * FROM lake_clean.nope")
    assert out.exit_code == 2 and "Traceback" not in out.output
    assert "unknown table lake_clean.nope" in out.output
    assert "lake_clean (customers, events, order_items, order_status_history, orders" in out.output


def test_unknown_database(lake):
    out = _cli("SELECT * FROM nodb.orders", "--lake")
    assert out.exit_code == 2
    assert "unknown database nodb" in out.output and "lake_clean (" in out.output
    # without --lake an unknown schema goes to the warehouse, whose error names the lake too
    out = _cli("SELECT * FROM nodb.orders")
    assert out.exit_code == 2 and "warehouse:" in out.output and "lake_clean (" in out.output


def test_warehouse_sql_still_runs_on_the_warehouse(lake):
    out = _cli("SELECT 41 + 1 AS answer")
    assert out.exit_code == 0 and out.output.split() == ["answer", "42"]
    assert _cli("SELECT 1", "--lake", "--warehouse").exit_code == 2


def test_athena_path_on_the_aws_target(lake):
    from lifecycle.lake.query import run_query

    aws_settings = dataclasses.replace(lake, target="aws")
    result = run_query(aws_settings, "SELECT count(*) FROM orders")
    # moto accepts the query and "succeeds" without running it: no rows (see lake_sql)
    assert result.engine == "athena" and result.rows == []
    assert aws_settings.athena_output_location == f"s3://{lake.names.bucket('serving')}/athena-results/"


def test_an_analyst_reads_what_lake_formation_grants_and_nothing_else(lake):
    """moto stores Lake Formation grants and enforces nothing; `lifecycle query --role` enforces
    them as Athena would: PII columns absent and not nameable, an ungranted table refused, no
    reading around the catalog."""
    from lifecycle.clients import aws, role_arn
    from lifecycle.infra import apply as infra
    from lifecycle.lake.governance import list_grants
    from lifecycle.lake.query import LakeSqlError, run_query

    infra.apply(lake)  # the grants of infra/lakeformation.yaml
    whole = run_query(lake, "SELECT * FROM lake_clean.customers ORDER BY customer_id")
    mine = run_query(lake, "SELECT * FROM lake_clean.customers ORDER BY customer_id", role="analyst")
    assert set(whole.columns) - set(mine.columns) == {"email_hash", "full_name_masked", "phone_masked"}
    assert mine.columns == [c for c in whole.columns if c in mine.columns]
    assert len(mine.rows) == len(whole.rows) > 0
    with pytest.raises(LakeSqlError, match=r"^Lake Formation: analyst may not read lake_clean\.customers\.email_hash"):
        run_query(lake, "SELECT count(DISTINCT email_hash) FROM lake_clean.customers", role="analyst")
    with pytest.raises(LakeSqlError, match=r"analyst reads the catalog's tables only, not read_parquet\(\)"):
        run_query(lake, f"SELECT * FROM read_parquet('s3://{lake.names.bucket('clean')}/customers/**/*.parquet')",
                  role="analyst")
    analyst = role_arn(lake, "analyst")
    on_orders = [g for g in list_grants(lake) if g["Principal"]["DataLakePrincipalIdentifier"] == analyst
                 and g["Resource"].get("Table", {}).get("Name") == "orders"]
    assert on_orders
    for g in on_orders:
        aws(lake, "lakeformation").revoke_permissions(Principal=g["Principal"], Resource=g["Resource"],
                                                      Permissions=g["Permissions"])
    try:
        with pytest.raises(LakeSqlError, match=r"analyst holds no SELECT on lake_clean\.orders"):
            run_query(lake, "SELECT count(*) FROM lake_clean.orders", role="analyst")
        assert run_query(lake, "SELECT count(*) FROM lake_clean.order_items", role="analyst").rows[0][0] > 0
        assert run_query(lake, "SELECT count(*) FROM lake_clean.orders").rows == [(len(ORDERS),)]  # admin
    finally:
        infra.apply(lake)  # the declared grants back
    out = _cli("--role", "analyst", "SELECT email_hash FROM lake_clean.customers")
    assert out.exit_code == 2 and "analyst may not read lake_clean.customers.email_hash" in out.output
    assert _cli("--role", "analyst", "--warehouse", "SELECT 1").exit_code == 2
