"""Lake Formation grants from infra/lakeformation.yaml, applied by `lifecycle infra apply` (moto).

Input: the session's embedded environment (moto stores grants, it does not enforce them).
Asserts: after apply, ``list_permissions`` holds exactly the declared grants of the stage
roles; a second apply grants and revokes nothing; a grant nobody declared is revoked and a
grant to someone who is not a stage role is left alone; analysts read clean.customers
without its PII columns and every other clean table whole; `lifecycle lake grants` lists it.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lifecycle.clients import aws

PII = ["email_hash", "full_name_masked", "phone_masked"]


@pytest.fixture(scope="module")
def applied(settings):
    from lifecycle.infra import apply as infra

    account = infra.account_id(settings)
    first = infra.apply(settings)["lake_formation"]
    return {"account": account, "first": first}


def _listed(settings, account):
    from lifecycle.infra.lakeformation import current_grants, grant_key

    out = {}
    for g in current_grants(settings):
        key = grant_key(g["Principal"]["DataLakePrincipalIdentifier"], g["Resource"])
        out[key] = set(g["Permissions"])
    return out


def _declared(settings, account):
    from lifecycle.infra.lakeformation import desired_grants

    return {k: v["permissions"] for k, v in desired_grants(settings, account).items()}


def test_apply_gives_exactly_the_declared_grants(settings, applied):
    account = applied["account"]
    listed = _listed(settings, account)
    declared = _declared(settings, account)
    assert listed == declared
    roles = {k[0].rsplit("/", 1)[-1] for k in listed}
    assert roles == {f"{settings.names.prefix}-{r}" for r in
                     ("ingest-sales", "ingest-activity", "transform", "warehouse-load", "analyst")}
    lf = aws(settings, "lakeformation")
    registered = {r["ResourceArn"] for r in lf.list_resources()["ResourceInfoList"]}
    assert registered == {f"arn:aws:s3:::{settings.names.bucket(z)}" for z in ("raw", "clean", "quarantine", "curated")}


def test_rerun_changes_nothing(settings, applied):
    from lifecycle.infra import apply as infra

    before = _listed(settings, applied["account"])
    again = infra.apply(settings)["lake_formation"]
    assert (again["granted"], again["revoked"]) == (0, 0)
    assert again["unchanged"] == again["grants"] == len(before)
    assert _listed(settings, applied["account"]) == before


def test_undeclared_grants_are_revoked_others_left_alone(settings, applied):
    from lifecycle.infra import lakeformation

    account = applied["account"]
    lf = aws(settings, "lakeformation")
    analyst = lakeformation.role_arn(settings, account, "analyst")
    ingest = lakeformation.role_arn(settings, account, "ingest-sales")
    outsider = f"arn:aws:iam::{account}:role/someone-else"
    customers = {"Table": {"DatabaseName": settings.names.clean_database, "Name": "customers"}}
    # drift: someone gave the analysts every table (PII included), ingestion the clean bucket
    # (a new resource each: moto's merge of permissions into an existing grant breaks its revoke)
    every_table = {"Table": {"DatabaseName": settings.names.clean_database, "TableWildcard": {}}}
    lf.grant_permissions(Principal={"DataLakePrincipalIdentifier": analyst}, Resource=every_table,
                         Permissions=["SELECT"])
    lf.grant_permissions(Principal={"DataLakePrincipalIdentifier": ingest},
                         Resource={"DataLocation": {"ResourceArn": lakeformation.location_arn(settings, "clean")}},
                         Permissions=["DATA_LOCATION_ACCESS"])
    lf.grant_permissions(Principal={"DataLakePrincipalIdentifier": outsider}, Resource=customers,
                         Permissions=["SELECT"])
    result = lakeformation.apply(settings, account)
    assert result["revoked"] == 2 and result["granted"] == 0
    listed = _listed(settings, account)
    assert listed.pop(lakeformation.grant_key(outsider, customers)) == {"SELECT"}
    assert listed == _declared(settings, account)
    lf.revoke_permissions(Principal={"DataLakePrincipalIdentifier": outsider}, Resource=customers,
                          Permissions=["SELECT"])


def test_analysts_never_get_pii_columns(settings, applied):
    from lifecycle.infra.lakeformation import current_grants, role_arn
    from lifecycle.lake.catalog import CLEAN_TABLES

    analyst = role_arn(settings, applied["account"], "analyst")
    mine = [g for g in current_grants(settings) if g["Principal"]["DataLakePrincipalIdentifier"] == analyst]
    select_on = {}
    for g in mine:
        if "SELECT" not in g["Permissions"]:
            continue
        r = g["Resource"]
        if "TableWithColumns" in r:
            t = r["TableWithColumns"]
            select_on[t["Name"]] = sorted(t["ColumnWildcard"]["ExcludedColumnNames"])
        else:
            assert "Table" in r and "TableWildcard" not in r["Table"], f"a wildcard would expose PII: {r}"
            select_on[r["Table"]["Name"]] = []
    assert select_on["customers"] == PII
    assert all(select_on[t] == [] for t in CLEAN_TABLES if t != "customers")
    # every clean and curated table the catalog holds (curated tables carry no PII at all)
    from lifecycle.lake.catalog import CURATED_TABLES

    assert set(CLEAN_TABLES) <= set(select_on) <= set(CLEAN_TABLES) | set(CURATED_TABLES)
    assert all(select_on[t] == [] for t in CURATED_TABLES if t in select_on)
    # the PII columns are real columns of the contract (a typo would exclude nothing)
    assert set(PII) <= {c for c, _ in CLEAN_TABLES["customers"].columns}
    # the stages that write or load customers see the whole table
    assert "TableWildcard" in json.dumps([g["Resource"] for g in current_grants(settings)
                                          if g["Principal"]["DataLakePrincipalIdentifier"].endswith("-warehouse-load")])


def test_cli_lists_the_grants(settings, applied):
    from lifecycle.cli import app

    out = CliRunner().invoke(app, ["lake", "grants"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].split() == ["principal", "resource", "permissions"]
    assert any(line.startswith(f"{settings.names.prefix}-analyst") and
               "columns lake_clean.customers (all but email_hash, full_name_masked, phone_masked)" in line
               and "SELECT" in line for line in lines)
    assert any(f"location {settings.names.bucket('raw')}" in line and "DATA_LOCATION_ACCESS" in line
               and "-ingest-sales" in line for line in lines)


def test_a_table_not_in_the_catalog_yet_is_pending_not_fatal():
    from lifecycle.infra.lakeformation import batch_failures

    missing = {"Failures": [{"RequestEntry": {"Id": "3"}, "Error": {"ErrorCode": "EntityNotFoundException"}}]}
    assert batch_failures(missing, "grant") == ["3"]
    denied = {"Failures": [{"RequestEntry": {"Id": "1"}, "Error": {"ErrorCode": "AccessDeniedException"}}]}
    with pytest.raises(RuntimeError, match="could not grant 1"):
        batch_failures(denied, "grant")
