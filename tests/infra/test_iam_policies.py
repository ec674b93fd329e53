"""The IAM policies of infra/iam/: least privilege, read as data (no services).
"""

from __future__ import annotations

import json

from lifecycle.settings import Settings

WILDCARD_RESOURCE_ALLOWED = {"cloudwatch:PutMetricData", "cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics",
                             "cloudwatch:ListMetrics", "cloudwatch:DescribeAlarms",
                             # no resource-level permissions: Lake Formation decides per table
                             "lakeformation:GetDataAccess"}


def test_iam_policies_grant_no_wildcard_actions_and_scope_resources():
    from lifecycle.infra.apply import load_spec, policy_document

    s = Settings.from_env({})
    spec = load_spec(s)
    for stage in spec["iam_roles"]:
        doc = policy_document(s, stage, "123456789012")
        for st in doc["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert all("*" not in a for a in actions), (stage, actions)
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            if "*" in resources:
                assert set(actions) <= WILDCARD_RESOURCE_ALLOWED, (stage, actions)
            assert "${" not in json.dumps(st), "unfilled placeholder"


def test_ingest_roles_cannot_touch_the_clean_zone():
    from lifecycle.infra.apply import policy_document

    s = Settings.from_env({})
    for stage in ("ingest-sales", "ingest-activity"):
        text = json.dumps(policy_document(s, stage, "123456789012"))
        assert s.names.bucket("clean") not in text and "s3:DeleteObject" not in text
