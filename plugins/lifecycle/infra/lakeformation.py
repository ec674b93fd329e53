"""Lake Formation governance from ``infra/lakeformation.yaml``, applied idempotently.

Input: ``Settings``, the account id, ``infra/lakeformation.yaml`` (data locations, PII
columns, grants per stage role) and the Glue Catalog's tables (for per-table grants).
Output of ``apply``: the zone buckets registered as Lake Formation data locations; the
declared grants in effect; every other grant a stage role (``<prefix>-<role>`` of
``infra/iam``) holds revoked (``batch_revoke_permissions``); locations of the lake's
buckets no longer declared deregistered. Returns ``{"locations", "granted", "revoked",
"unchanged", "grants", "pending"}``; a second apply grants and revokes nothing. ``pending``:
grants on tables the catalog does not have yet (on AWS, before the first lake_clean run),
made by the next apply.
``effective_grants`` lists what is in effect (``lifecycle lake grants``).

Grant shapes (the Lake Formation API's ``Resource``):
- ``locations: [raw]`` → ``DATA_LOCATION_ACCESS`` on ``{"DataLocation": {"ResourceArn":
  "arn:aws:s3:::<bucket>"}}``;
- ``databases: {db: [perms]}`` → ``{"Database": {"Name": db}}``;
- ``tables: {db: [perms]}`` → ``{"Table": {"DatabaseName": db, "TableWildcard": {}}}`` (every
  table, present and future), or with ``exclude_pii: true`` one grant per table (the
  catalog's tables plus the clean contract's): ``{"Table": ...Name}`` for all but
  ``SELECT``, and ``SELECT`` on ``{"TableWithColumns": {..., "ColumnWildcard":
  {"ExcludedColumnNames": [pii]}}}`` for a table with PII columns.

Only principals that are stage roles are managed; grants to anyone else (an admin, a
person's own grants) are left alone. On AWS the caller must be a Lake Formation data lake
administrator. moto stores grants without enforcing them (docs: README "Lake Formation").
"""

from __future__ import annotations

import json

import yaml

from lifecycle.clients import aws
from lifecycle.lake.governance import list_grants
from lifecycle.settings import REPO_ROOT, Settings

SPEC_FILE = REPO_ROOT / "infra" / "lakeformation.yaml"
BATCH = 20  # entries per BatchGrant/BatchRevoke call (the API's limit)


def load_spec() -> dict:
    return yaml.safe_load(SPEC_FILE.read_text())


def role_arn(settings: Settings, account: str, role: str) -> str:
    return f"arn:aws:iam::{account}:role/{settings.names.role(role)}"


def location_arn(settings: Settings, zone: str) -> str:
    return f"arn:aws:s3:::{settings.names.bucket(zone)}"


def _normal(value):
    """A resource as a comparable value: no CatalogId, lists sorted (the API adds/reorders)."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in sorted(value.items()) if k != "CatalogId"}
    if isinstance(value, list):
        return sorted((_normal(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    return value


def grant_key(principal: str, resource: dict) -> tuple[str, str]:
    return principal, json.dumps(_normal(resource), sort_keys=True)


def catalog_table_names(settings: Settings, database: str) -> list[str]:
    glue = aws(settings, "glue")
    try:
        return sorted(t["Name"] for page in glue.get_paginator("get_tables").paginate(DatabaseName=database)
                      for t in page["TableList"])
    except glue.exceptions.EntityNotFoundException:
        return []


def desired_grants(settings: Settings, account: str, spec: dict | None = None,
                   tables: dict[str, list[str]] | None = None) -> dict[tuple[str, str], dict]:
    """``{(principal, resource key): {"principal", "resource", "permissions"}}`` as declared.

    ``tables``: ``{database: [table names]}`` for per-table grants; default: the Glue
    Catalog's tables plus, for the clean database, the tables of the clean contract.
    """
    from lifecycle.lake.catalog import CLEAN_TABLES

    spec = spec or load_spec()
    pii = {tuple(name.split(".", 1)): list(cols) for name, cols in (spec.get("pii_columns") or {}).items()}
    out: dict[tuple[str, str], dict] = {}

    def add(principal: str, resource: dict, permissions: list[str]) -> None:
        entry = out.setdefault(grant_key(principal, resource),
                               {"principal": principal, "resource": resource, "permissions": set()})
        entry["permissions"] |= set(permissions)

    def table_names(db: str) -> list[str]:
        if tables is not None:
            return sorted(tables.get(db, []))
        names = set(catalog_table_names(settings, db))
        if db == settings.names.clean_database:
            names |= set(CLEAN_TABLES)
        return sorted(names)

    for grant in spec.get("grants", []):
        principal = role_arn(settings, account, grant["role"])
        for zone in grant.get("locations", []):
            add(principal, {"DataLocation": {"ResourceArn": location_arn(settings, zone)}},
                ["DATA_LOCATION_ACCESS"])
        for db, perms in (grant.get("databases") or {}).items():
            add(principal, {"Database": {"Name": db}}, perms)
        for db, perms in (grant.get("tables") or {}).items():
            if not grant.get("exclude_pii"):
                add(principal, {"Table": {"DatabaseName": db, "TableWildcard": {}}}, perms)
                continue
            for name in table_names(db):
                hidden = pii.get((db, name))
                other = [p for p in perms if p != "SELECT"] if hidden else perms
                if other:
                    add(principal, {"Table": {"DatabaseName": db, "Name": name}}, other)
                if hidden and "SELECT" in perms:
                    add(principal, {"TableWithColumns": {"DatabaseName": db, "Name": name, "ColumnWildcard": {
                        "ExcludedColumnNames": sorted(hidden)}}}, ["SELECT"])
    return out


def managed_principals(settings: Settings, account: str) -> set[str]:
    from lifecycle.infra.spec import load_spec as load_resources

    roles = load_resources(settings, account).get("iam_roles", [])
    return {role_arn(settings, account, r) for r in roles}


def current_grants(settings: Settings) -> list[dict]:
    """Every grant Lake Formation lists (``lifecycle.lake.governance.list_grants``)."""
    return list_grants(settings)


def _register_locations(settings: Settings, spec: dict) -> list[str]:
    lf = aws(settings, "lakeformation")
    wanted = {location_arn(settings, z) for z in spec.get("locations", [])}
    ours = {location_arn(settings, z) for z in ("raw", "clean", "quarantine", "curated", "serving", "deploy")}
    registered = {r["ResourceArn"] for r in lf.list_resources().get("ResourceInfoList", [])}
    for arn in sorted(wanted - registered):
        lf.register_resource(ResourceArn=arn, UseServiceLinkedRole=True)
    for arn in sorted((registered & ours) - wanted):
        lf.deregister_resource(ResourceArn=arn)
    return sorted(wanted)


def _entries(items: list[tuple[str, dict, list[str]]]) -> list[dict]:
    return [{"Id": str(i), "Principal": {"DataLakePrincipalIdentifier": p}, "Resource": r,
             "Permissions": sorted(perms)} for i, (p, r, perms) in enumerate(items)]


def apply(settings: Settings, account: str, spec: dict | None = None) -> dict:
    """Register the locations, grant what is declared, revoke what is not (stage roles only)."""
    spec = spec or load_spec()
    lf = aws(settings, "lakeformation")
    locations = _register_locations(settings, spec)
    desired = desired_grants(settings, account, spec)
    managed = managed_principals(settings, account)
    have: dict[tuple[str, str], dict] = {}
    for g in current_grants(settings):
        principal = g["Principal"]["DataLakePrincipalIdentifier"]
        if principal in managed:
            entry = have.setdefault(grant_key(principal, g["Resource"]),
                                    {"resource": g["Resource"], "permissions": set()})
            entry["permissions"] |= set(g.get("Permissions", []))
    to_grant, to_revoke, unchanged = [], [], 0
    for key, want in desired.items():
        missing = want["permissions"] - have.get(key, {}).get("permissions", set())
        if missing:
            to_grant.append((want["principal"], want["resource"], sorted(missing)))
        else:
            unchanged += 1
    for key, got in have.items():
        extra = got["permissions"] - desired.get(key, {}).get("permissions", set())
        if extra:  # revoke with the resource exactly as Lake Formation listed it
            to_revoke.append((key[0], got["resource"], sorted(extra)))
    for i in range(0, len(to_revoke), BATCH):
        batch_failures(lf.batch_revoke_permissions(Entries=_entries(to_revoke[i:i + BATCH])), "revoke")
    pending: list[str] = []
    for i in range(0, len(to_grant), BATCH):
        batch = to_grant[i:i + BATCH]
        missing = batch_failures(lf.batch_grant_permissions(Entries=_entries(batch)), "grant")
        pending += [describe_resource(batch[int(n)][1]) for n in missing]
    return {"locations": locations, "granted": len(to_grant) - len(pending), "revoked": len(to_revoke),
            "unchanged": unchanged, "grants": len(desired), "pending": sorted(set(pending))}


def batch_failures(resp: dict, what: str) -> list[str]:
    """Raise on failed entries, except a table that does not exist yet (a contract table
    before the first lake_clean run, on AWS): those entry ids are returned, to be granted
    by the next apply."""
    missing, other = [], []
    for f in resp.get("Failures") or []:
        code = (f.get("Error") or {}).get("ErrorCode", "")
        (missing if code == "EntityNotFoundException" else other).append(f)
    if other:
        raise RuntimeError(f"Lake Formation could not {what} {len(other)} grant(s): {other[:3]}")
    return [f["RequestEntry"]["Id"] for f in missing]


def describe_resource(resource: dict) -> str:
    """A grant's resource in words, e.g. ``columns lake_clean.customers (all but email_hash)``."""
    if "DataLocation" in resource:
        return f"location {resource['DataLocation']['ResourceArn'].split(':::')[-1]}"
    if "Database" in resource:
        return f"database {resource['Database']['Name']}"
    if "TableWithColumns" in resource:
        t = resource["TableWithColumns"]
        wildcard = t.get("ColumnWildcard")
        if wildcard is not None:
            excluded = wildcard.get("ExcludedColumnNames") or []
            cols = f"all but {', '.join(excluded)}" if excluded else "all"
        else:
            cols = ", ".join(t.get("ColumnNames", []))
        return f"columns {t['DatabaseName']}.{t['Name']} ({cols})"
    if "Table" in resource:
        t = resource["Table"]
        return f"table {t['DatabaseName']}.{t.get('Name') or '*'}"
    if "Catalog" in resource:
        return "catalog"
    return json.dumps(resource)


def effective_grants(settings: Settings) -> list[tuple[str, str, str]]:
    """``(principal, resource, permissions)`` of every grant in effect, sorted, for display."""
    rows = []
    for g in current_grants(settings):
        principal = g["Principal"]["DataLakePrincipalIdentifier"]
        name = principal.rsplit("/", 1)[-1] if ":role/" in principal else principal
        rows.append((name, describe_resource(g["Resource"]), ", ".join(sorted(g.get("Permissions", [])))))
    return sorted(rows)
