"""`lifecycle infra apply --plan` on the aws target, against moto in-process (no endpoint
override: the code path real AWS takes).

Input: ``infra/`` and an empty moto account. Output: assertions that the plan lists every
resource apply creates, that after apply it lists nothing, that a drifted setting shows up
as an update, and that planning makes read calls only (every boto3 call is recorded).
"""

from __future__ import annotations

import contextlib
import re
from unittest import mock

import pytest
from botocore.client import BaseClient

READ_ONLY = re.compile(r"^(Describe|Get|List|Head)[A-Z]")


@pytest.fixture
def aws_account(monkeypatch):
    """An empty moto account and Settings of the aws target (fresh boto3 clients). The plan
    covers AWS resources only: the Postgres roles that `infra apply` also creates (there is no
    server here) are tested in test_security.py."""
    from moto import mock_aws

    from lifecycle.security import pg_roles

    monkeypatch.setattr(pg_roles, "apply", lambda settings: [])

    from lifecycle import clients
    from lifecycle.settings import Settings

    env = {"LIFECYCLE_TARGET": "aws", "LIFECYCLE_PG_HOST": "warehouse.example.internal",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "LIFECYCLE_NAME_PREFIX": "plantest"}
    clients.forget_clients()  # a session made before moto was imported lacks its hook
    try:
        with mock_aws():
            yield Settings.from_env(env)
    finally:
        clients.forget_clients()


@contextlib.contextmanager
def recorded_calls():
    calls: list[tuple[str, str]] = []
    original = BaseClient._make_api_call

    def spy(self, operation_name, api_params):
        calls.append((self.meta.service_model.service_name, operation_name))
        return original(self, operation_name, api_params)

    with mock.patch.object(BaseClient, "_make_api_call", spy):
        yield calls


def _snapshot(settings) -> dict:
    """What exists, by kind (read calls only)."""
    from lifecycle.clients import aws

    return {
        "buckets": sorted(b["Name"] for b in aws(settings, "s3").list_buckets()["Buckets"]),
        "tables": sorted(aws(settings, "dynamodb").list_tables()["TableNames"]),
        "roles": sorted(r["RoleName"] for r in aws(settings, "iam").list_roles()["Roles"]),
        "grants": len(aws(settings, "lakeformation").list_permissions()["PrincipalResourcePermissions"]),
        "topics": len(aws(settings, "sns").list_topics()["Topics"]),
        "streams": aws(settings, "kinesis").list_streams()["StreamNames"],
    }


def test_plan_on_an_empty_account_lists_everything_and_mutates_nothing(aws_account):
    from lifecycle.infra import apply as infra
    from lifecycle.infra.plan import plan

    before = _snapshot(aws_account)
    with recorded_calls() as calls:
        changes = plan(aws_account)
    writes = [c for c in calls if not READ_ONLY.match(c[1])]
    assert calls and not writes, f"the plan made mutating calls: {writes}"
    assert _snapshot(aws_account) == before

    assert {c.action for c in changes} == {"create"}
    planned = {(c.kind, c.name) for c in changes}
    applied = infra.apply(aws_account)
    for kind, plan_kind in (("buckets", "bucket"), ("kinesis_streams", "kinesis_stream"),
                            ("dynamodb_tables", "dynamodb_table"), ("sns_topics", "sns_topic"),
                            ("log_groups", "log_group"), ("cloudwatch_alarms", "cloudwatch_alarm"),
                            ("glue_databases", "glue_database"), ("secrets", "secret"), ("iam_roles", "iam_role")):
        assert applied[kind], kind
        assert {(plan_kind, name) for name in applied[kind]} <= planned, kind
    lf = applied["lake_formation"]
    assert sum(c.kind == "lf_grant" for c in changes) == lf["granted"] > 0
    assert {c.name for c in changes if c.kind == "lf_location"} == set(lf["locations"])


def test_plan_after_apply_has_nothing_to_do_and_sees_drift(aws_account, capsys):
    from lifecycle.clients import aws
    from lifecycle.infra import apply as infra
    from lifecycle.infra.plan import plan, print_plan

    infra.apply(aws_account)
    assert plan(aws_account) == []
    print_plan([])
    assert "nothing to do" in capsys.readouterr().out

    # drift, made by hand: the plan names each change and still writes nothing
    raw = aws_account.names.bucket("raw")
    aws(aws_account, "s3").put_bucket_versioning(Bucket=raw, VersioningConfiguration={"Status": "Suspended"})
    aws(aws_account, "logs").put_retention_policy(logGroupName=aws_account.names.log_group, retentionInDays=1)
    role = aws_account.names.role("serve")
    aws(aws_account, "iam").delete_role_policy(RoleName=role, PolicyName="serve-least-privilege")
    aws(aws_account, "glue").delete_database(Name=aws_account.names.clean_database)
    with recorded_calls() as calls:
        changes = plan(aws_account)
    assert not [c for c in calls if not READ_ONLY.match(c[1])]
    assert {(c.kind, c.name, c.action) for c in changes} >= {
        ("bucket", raw, "update"), ("log_group", aws_account.names.log_group, "update"),
        ("iam_role", role, "update"), ("glue_database", aws_account.names.clean_database, "create")}
    infra.apply(aws_account)
    assert plan(aws_account) == []
