"""Lake Formation grants, enforced where the lake is queried on the emulated targets.

Input: ``Settings``; an IAM role of ``infra/iam`` (``analyst``); the Glue tables a query names.
Output: ``list_grants`` (every grant Lake Formation lists) and ``granted_columns``: the
columns of a table the role may ``SELECT``, or ``AccessDenied`` when it holds no ``SELECT`` on
the table.

On AWS, Athena enforces Lake Formation itself. moto and LocalStack store the grants and
enforce nothing, so ``lifecycle query --role`` (``lifecycle.lake.query``) enforces what they
store, the way Athena with Lake Formation refuses: a table without a ``SELECT`` grant fails,
a column not granted is not there (``SELECT *`` leaves it out, naming it fails), and the role
reads only tables of the catalog (no ``read_parquet`` or ``iceberg_scan`` of a path).

A ``SELECT`` grant is one of (the Lake Formation API's ``Resource``): ``Table`` by name or
``TableWildcard`` (every column), ``TableWithColumns`` with ``ColumnNames`` (those) or
``ColumnWildcard`` with ``ExcludedColumnNames`` (all but those); ``ALL`` includes ``SELECT``.
A role's grants add up.
"""

from __future__ import annotations

from lifecycle.clients import aws, role_arn
from lifecycle.settings import Settings


class AccessDenied(Exception):
    """The role holds no ``SELECT`` on the table (the message names both)."""


def list_grants(settings: Settings) -> list[dict]:
    """Every grant Lake Formation lists (``list_permissions``, all pages)."""
    lf = aws(settings, "lakeformation")
    out, token = [], None
    while True:
        page = lf.list_permissions(**({"NextToken": token} if token else {}))
        out.extend(page.get("PrincipalResourcePermissions", []))
        token = page.get("NextToken")
        if not token:
            return out


def _selected_columns(resource: dict, database: str, table: str, columns: list[str]) -> set[str]:
    """The columns of ``database.table`` one grant's resource covers (empty: not this table)."""
    if "Table" in resource:
        r = resource["Table"]
        if r.get("DatabaseName") == database and ("TableWildcard" in r or r.get("Name") == table):
            return set(columns)
    elif "TableWithColumns" in resource:
        r = resource["TableWithColumns"]
        if r.get("DatabaseName") == database and r.get("Name") == table:
            if "ColumnWildcard" in r:
                return set(columns) - set(r["ColumnWildcard"].get("ExcludedColumnNames", []))
            return set(columns) & set(r.get("ColumnNames", []))
    return set()


def granted_columns(settings: Settings, role: str, database: str, table: str, columns: list[str],
                    grants: list[dict] | None = None) -> list[str]:
    """``columns`` of ``database.table`` that ``role`` may SELECT, in their order; raises
    ``AccessDenied`` when it may select none. ``grants``: ``list_grants`` read once per query."""
    principal = role_arn(settings, role)
    allowed: set[str] = set()
    for grant in grants if grants is not None else list_grants(settings):
        if grant["Principal"]["DataLakePrincipalIdentifier"] != principal:
            continue
        if {"SELECT", "ALL"} & set(grant.get("Permissions", [])):
            allowed |= _selected_columns(grant["Resource"], database, table, columns)
    if not allowed:
        raise AccessDenied(f"Lake Formation: {role} holds no SELECT on {database}.{table}")
    return [c for c in columns if c in allowed]
