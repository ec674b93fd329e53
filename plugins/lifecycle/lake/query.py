"""Athena-style ad hoc SQL over the lake: ``<database>.<table>`` resolved through the Glue Catalog.

Input: ``Settings`` and one SQL statement, e.g. ``SELECT status, count(*) FROM
lake_clean.orders GROUP BY 1``; optionally an output path (``.csv`` or ``.parquet``).
Output: a ``QueryResult`` (column names, rows) or the file written; errors as
``LakeSqlError`` with a message for the user (the CLI prints it and exits 2).

How a query runs:

- ``embedded`` / ``compose``: every table the SQL names (``db.table``, or a bare ``table``
  of the default database ``settings.names.clean_database``, as Athena's query context does) is
  looked up with Glue ``get_table``; its ``StorageDescriptor.Location`` and
  ``PartitionKeys`` become a DuckDB view ``"<db>"."<table>"`` over
  ``read_parquet('<location>*/…/*.parquet', hive_partitioning=true)`` with the catalog's
  columns and types, on a connection with the lake's S3 settings
  (``clients.connect_duckdb``). The SQL itself is DuckDB's dialect (close to Athena's Trino
  for SELECTs). A table the catalog knows but that has no objects yet is empty. An Iceberg
  table (``Parameters.table_type = ICEBERG``) is ``iceberg_scan`` of the metadata file the
  catalog names (``Parameters.metadata_location``, never a guess from a listing); with
  ``as_of`` (``lifecycle query --as-of <snapshot id | timestamp>``) as it was then.
- ``role`` (``lifecycle query --role analyst``): the query runs as that IAM role, and its Lake
  Formation grants are enforced (``lifecycle.lake.governance``): a table it holds no SELECT on
  fails, the columns it is not granted are left out of the views (naming one fails), table
  functions (``read_parquet`` of a path) are refused. Athena does the same on ``aws``.
- ``aws``: the SQL goes to Athena as it is (``start_query_execution`` in the workgroup
  ``settings.aws.athena_workgroup``, results in ``settings.athena_output_location``, default
  database ``settings.names.clean_database``), polled until it ends, then ``get_query_results``.

Which engine: ``lifecycle query`` sends the SQL here when it names a Glue database (or with
``--lake``); SQL that names only warehouse schemas (``serving.daily_sales``) still runs on
the warehouse, and ``--warehouse`` forces that (see ``route``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from lifecycle.clients import aws
from lifecycle.lake.catalog import duckdb_type, logical_from_hive
from lifecycle.lake.iceberg import is_iceberg, scan_of
from lifecycle.settings import Settings
from lifecycle.sql import ident, literal

OUTPUT_FORMATS = {".csv": "csv", ".parquet": "parquet"}


class LakeSqlError(Exception):
    """A query that cannot run: bad SQL, an unknown database or table, a bad output path."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    tables: dict[str, str] = field(default_factory=dict)  # "db.table" -> location
    output: str | None = None
    engine: str = "duckdb"


# ---- what the SQL names ---------------------------------------------------------------------

def referenced_tables(sql: str) -> set[str]:
    """Table names the SQL reads (``db.table`` or ``table``; CTE names excluded), from DuckDB's
    own parser (``json_serialize_sql``: parsed, not bound, so the tables need not exist yet).
    Raises ``LakeSqlError`` with the parser's message on bad SQL; only SELECTs are parsed."""
    return _parsed(sql)[0]


def table_functions(sql: str) -> set[str]:
    """Table functions the SQL calls in its FROM clauses (``read_parquet``, ``iceberg_scan``…)."""
    return _parsed(sql)[1]


def _parsed(sql: str) -> tuple[set[str], set[str]]:
    import json

    import duckdb

    con = duckdb.connect()
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql($1)", [sql]).fetchone()[0])
    finally:
        con.close()
    if tree.get("error"):
        message = tree.get("error_message", "cannot parse the SQL")
        if tree.get("error_type") == "parser":
            raise LakeSqlError(f"Parser Error: {message}")
        raise LakeSqlError(f"only a SELECT runs on the lake (Athena-style, read only): {message}")
    tables: set[str] = set()
    ctes: set[str] = set()
    functions: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("type") == "TABLE_FUNCTION":
                functions.add((node.get("function") or {}).get("function_name", "?"))
            if node.get("type") == "BASE_TABLE" and node.get("table_name"):
                schema = node.get("schema_name")
                tables.add(f"{schema}.{node['table_name']}" if schema else node["table_name"])
            for entry in (node.get("cte_map") or {}).get("map", []):
                ctes.add(entry["key"].lower())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree["statements"])
    return {t for t in tables if "." in t or t.lower() not in ctes}, functions


def _split(name: str) -> tuple[str | None, str]:
    parts = [p.strip('"') for p in name.split(".")]
    return (parts[-2].lower() if len(parts) >= 2 else None), parts[-1].lower()


def catalog_tables(settings: Settings) -> dict[str, list[str]]:
    """``{database: [tables]}`` of the Glue Data Catalog."""
    glue = aws(settings, "glue")
    out: dict[str, list[str]] = {}
    for page in glue.get_paginator("get_databases").paginate():
        for db in page["DatabaseList"]:
            out[db["Name"]] = sorted(t["Name"] for p in glue.get_paginator("get_tables").paginate(
                DatabaseName=db["Name"]) for t in p["TableList"])
    return out


def catalog_listing(catalog: dict[str, list[str]]) -> str:
    if not catalog:
        return "the Glue Catalog has no databases (run `lifecycle infra apply` and the lake_clean DAG)"
    return "the Glue Catalog has: " + "; ".join(
        f"{db} ({', '.join(tables) or 'no tables'})" for db, tables in sorted(catalog.items()))


def route(settings: Settings, sql: str) -> str:
    """``lake`` when the SQL names a table of a Glue database, else ``warehouse``."""
    refs = referenced_tables(sql)
    if not any(_split(ref)[0] for ref in refs):
        return "warehouse"
    try:
        databases = set(catalog_tables(settings))
    except (BotoCoreError, ClientError):  # no catalog reachable: the warehouse as before
        return "warehouse"
    for ref in refs:
        db, _ = _split(ref)
        if db in databases:
            return "lake"
    return "warehouse"


# ---- DuckDB (embedded / compose) ------------------------------------------------------------



def _duck_type(hive: str) -> str:
    try:
        return duckdb_type(logical_from_hive(hive))
    except (KeyError, ValueError):
        return "VARCHAR"  # a Glue type the lake does not write (struct, array...): as text


def has_objects(settings: Settings, location: str) -> bool:
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    resp = aws(settings, "s3").list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    return bool(resp.get("KeyCount"))


def view_sql(settings: Settings, table: dict, as_of: str | None = None) -> str:
    """The DuckDB ``SELECT`` behind a Glue table. An Iceberg table: ``iceberg_scan`` of the
    metadata file the catalog names (as of a snapshot or a time with ``as_of``). A Parquet
    table: its columns (catalog types) over its location's objects, partition keys from the
    hive-style prefixes."""
    if is_iceberg(table):
        try:
            return f"SELECT * FROM {scan_of(table['Parameters']['metadata_location'], as_of)}"
        except ValueError as exc:
            raise LakeSqlError(f"--as-of {as_of!r}: give a snapshot id or an ISO 8601 timestamp") from exc
    if as_of is not None:
        raise LakeSqlError(f"--as-of: {table['DatabaseName']}.{table['Name']} is not an Iceberg table "
                           "(it has no snapshots)")
    sd = table["StorageDescriptor"]
    location = sd["Location"].rstrip("/") + "/"
    columns = [(c["Name"], c["Type"]) for c in sd.get("Columns", [])]
    keys = [(k["Name"], k["Type"]) for k in table.get("PartitionKeys", [])]
    select = ", ".join(f"CAST({ident(c)} AS {_duck_type(t)}) AS {ident(c)}" for c, t in columns + keys)
    if not has_objects(settings, location):
        return f"SELECT {select} FROM (SELECT 1) WHERE false"
    glob = location + "*/" * len(keys) + "*.parquet"
    hive = ""
    if keys:
        types = ", ".join(f"{literal(k)}: {literal(_duck_type(t))}" for k, t in keys)
        hive = f", hive_partitioning=true, hive_types={{{types}}}"
    return f"SELECT {select} FROM read_parquet({literal(glob)}, union_by_name=true{hive})"


def _resolve(settings: Settings, refs: set[str]) -> dict[tuple[str, str], dict]:
    glue = aws(settings, "glue")
    found: dict[tuple[str, str], dict] = {}
    catalog: dict[str, list[str]] | None = None
    for ref in sorted(refs):
        db, name = _split(ref)
        db = db or settings.names.clean_database
        try:
            found[(db, name)] = glue.get_table(DatabaseName=db, Name=name)["Table"]
        except glue.exceptions.EntityNotFoundException as exc:
            catalog = catalog if catalog is not None else catalog_tables(settings)
            what = f"table {db}.{name}" if db in catalog else f"database {db}"
            raise LakeSqlError(f"unknown {what} (in {ref!r}); {catalog_listing(catalog)}") from exc
    return found


def _as_role(settings: Settings, role: str | None) -> Settings:
    """The settings whose AWS clients call as ``role`` (its IAM policy applies where enforced)."""
    from dataclasses import replace

    return replace(settings, stage=role) if role else settings


def _granted_view(settings: Settings, con, role: str, db: str, name: str, select: str, grants: list[dict],
                  hidden: dict[str, tuple[str, str]]) -> str:
    """``select`` narrowed to the columns ``role`` may read (``lifecycle.lake.governance``);
    the others go to ``hidden`` (column -> table) for the error message."""
    from lifecycle.lake.governance import AccessDenied, granted_columns

    columns = [r[0] for r in con.execute(f"DESCRIBE {select}").fetchall()]
    try:
        allowed = granted_columns(settings, role, db, name, columns, grants)
    except AccessDenied as exc:
        raise LakeSqlError(str(exc)) from exc
    hidden.update({c.lower(): (db, name) for c in columns if c not in allowed})
    return f"SELECT {', '.join(ident(c) for c in allowed)} FROM ({select})"


def _denied_column(message: str, role: str, hidden: dict[str, tuple[str, str]]) -> str | None:
    import re

    match = re.search(r'Referenced column "([^"]+)" not found', message)
    if match and match.group(1).lower() in hidden:
        db, name = hidden[match.group(1).lower()]
        return f"Lake Formation: {role} may not read {db}.{name}.{match.group(1)} (a column it is not granted)"
    return None


def run_duckdb(settings: Settings, sql: str, output: str | None = None,
               as_of: str | None = None, role: str | None = None) -> QueryResult:
    """The query on DuckDB over the catalog's tables; with ``role``, as that IAM role with its
    Lake Formation grants enforced (module docstring of ``lifecycle.lake.governance``)."""
    import duckdb

    from lifecycle.clients import connect_duckdb
    from lifecycle.lake.governance import list_grants

    if role and (functions := table_functions(sql)):
        raise LakeSqlError(f"Lake Formation: {role} reads the catalog's tables only, not "
                           f"{', '.join(sorted(functions))}()")
    try:
        tables = _resolve(_as_role(settings, role), referenced_tables(sql))
        grants = list_grants(settings) if role else []
    except (BotoCoreError, ClientError) as exc:
        raise LakeSqlError(f"Glue Catalog: {exc}") from exc
    hidden: dict[str, tuple[str, str]] = {}
    with connect_duckdb(_as_role(settings, role)) as con:
        locations = {}
        for (db, name), table in tables.items():
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(db)}")
            try:
                select = view_sql(_as_role(settings, role), table, as_of)
                if role:
                    select = _granted_view(settings, con, role, db, name, select, grants, hidden)
                con.execute(f"CREATE OR REPLACE VIEW {ident(db)}.{ident(name)} AS {select}")
            except duckdb.Error as exc:  # e.g. no snapshot at that time
                raise LakeSqlError(f"{db}.{name}: {exc}") from exc
            locations[f"{db}.{name}"] = table.get("StorageDescriptor", {}).get("Location", "")
        if settings.names.clean_database in {db for db, _ in tables}:
            con.execute(f"SET schema = {literal(settings.names.clean_database)}")  # bare names: the default db
        try:
            if output:
                fmt = _format(output)
                options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT parquet"
                con.execute(f"COPY ({sql.rstrip().rstrip(';')}) TO {literal(str(Path(output).resolve()))} ({options})")
                rel = con.execute(f"SELECT count(*) FROM read_{fmt}({literal(str(Path(output).resolve()))})")
                return QueryResult(["rows_written"], [rel.fetchone()], locations, output)
            cur = con.execute(sql)
            columns = [d[0] for d in cur.description] if cur.description else []
            return QueryResult(columns, cur.fetchall() if columns else [], locations)
        except duckdb.Error as exc:
            raise LakeSqlError((role and _denied_column(str(exc), role, hidden)) or str(exc)) from exc


def _format(output: str) -> str:
    fmt = OUTPUT_FORMATS.get(Path(output).suffix.lower())
    if fmt is None:
        raise LakeSqlError(f"--output {output}: use a .csv or .parquet file name")
    return fmt


# ---- Athena (aws) ---------------------------------------------------------------------------

ATHENA_DONE = ("SUCCEEDED", "FAILED", "CANCELLED")


def run_athena(settings: Settings, sql: str, output: str | None = None, poll_s: float = 1.0,
               timeout_s: float = 1800) -> QueryResult:
    """Run ``sql`` on Athena in the settings' workgroup and default database; wait; fetch.

    Not runnable here (moto's Athena accepts queries and returns no rows); the calls are
    the documented ``start_query_execution`` / ``get_query_execution`` /
    ``get_query_results`` of boto3's ``athena`` client.
    """
    if output:
        _format(output)
    athena = aws(settings, "athena")
    qid = athena.start_query_execution(
        QueryString=sql,
        QueryExecutionContext={"Database": settings.names.clean_database, "Catalog": "AwsDataCatalog"},
        WorkGroup=settings.aws.athena_workgroup,
        ResultConfiguration={"OutputLocation": settings.athena_output_location},
    )["QueryExecutionId"]
    deadline = time.monotonic() + timeout_s
    while True:
        status = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]
        if status["State"] in ATHENA_DONE:
            break
        if time.monotonic() > deadline:
            athena.stop_query_execution(QueryExecutionId=qid)
            raise LakeSqlError(f"Athena query {qid} did not finish in {timeout_s:.0f} s (stopped)")
        time.sleep(poll_s)
    if status["State"] != "SUCCEEDED":
        raise LakeSqlError(f"Athena: {status['State']}: {status.get('StateChangeReason', '')}")
    columns: list[str] = []
    rows: list[tuple] = []
    for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=qid):
        if not columns:
            columns = [c["Name"] for c in page["ResultSet"]["ResultSetMetadata"].get("ColumnInfo", [])]
        for row in page["ResultSet"].get("Rows", []):
            values = tuple(d.get("VarCharValue") for d in row["Data"])
            if values == tuple(columns) and not rows:
                continue  # a SELECT's first row repeats the header
            rows.append(values)
    result = QueryResult(columns, rows, engine="athena")
    if output:
        write_rows(result, output)
        return QueryResult(["rows_written"], [(len(rows),)], output=output, engine="athena")
    return result


def write_rows(result: QueryResult, output: str) -> None:
    import pyarrow as pa

    table = pa.table({c: pa.array([r[i] for r in result.rows], pa.string())
                      for i, c in enumerate(result.columns)})
    if _format(output) == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, output)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, output)


# ---- entry point ----------------------------------------------------------------------------

def run_query(settings: Settings, sql: str, output: str | None = None,
              as_of: str | None = None, role: str | None = None) -> QueryResult:
    """The lake query on the settings' target: Athena on ``aws``, DuckDB elsewhere. ``as_of``
    (a snapshot id or a timestamp) reads every Iceberg table the SQL names as it was then.
    ``role`` (an IAM role of infra/iam, e.g. ``analyst``): the query runs as that role, its
    Lake Formation grants enforced (by Athena on ``aws``, by ``run_duckdb`` elsewhere)."""
    if settings.target == "aws":
        if as_of is not None:
            raise LakeSqlError("--as-of on Athena: write it in the SQL "
                               "(FROM t FOR TIMESTAMP AS OF TIMESTAMP '...' / FOR VERSION AS OF <id>)")
        try:
            return run_athena(_as_role(settings, role), sql, output)
        except (BotoCoreError, ClientError) as exc:
            raise LakeSqlError(f"Athena: {exc}") from exc
    return run_duckdb(settings, sql, output, as_of, role)


def format_table(columns: list[str], rows: list[tuple]) -> str:
    """A plain text table (header, rows), as ``lifecycle query`` prints it."""
    cells = [[("NULL" if v is None else str(v)) for v in r] for r in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)
