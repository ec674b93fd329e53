"""`lifecycle infra apply --plan`: what ``infra.apply`` would create or change, changing nothing.

Input: ``Settings`` and the same ``infra/`` files as ``lifecycle.infra.apply``.
Output: a list of ``Change(kind, name, action, detail)`` (``action``: ``create`` or
``update``), empty when the target already matches ``infra/``. Only read calls are made
(``Describe*``, ``Get*``, ``List*``, ``HeadBucket``; tests/infra/test_infra_plan.py records every
call and fails on any other), so it is safe against a production account with a read-only
role.

It mirrors ``infra.apply`` kind by kind: where apply "creates if missing, then converges"
a setting, the plan reports a missing resource as ``create`` and a setting that differs as
``update``. Settings apply writes unconditionally but cannot read back on every target
(SQS queue policies) are checked where they can be read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from urllib.parse import unquote

from lifecycle.clients import aws
from lifecycle.infra import lakeformation
from lifecycle.infra.spec import INFRA_DIR, account_id, load_spec, policy_document, substitute
from lifecycle.settings import Settings


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: str  # create | update
    detail: str = ""

    def line(self) -> str:
        sign = {"create": "+", "update": "~"}[self.action]
        return f"{sign} {self.kind:<18} {self.name}" + (f"  ({self.detail})" if self.detail else "")


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _json(doc) -> dict:
    """IAM returns policy documents URL-encoded (the API) or decoded (boto3): either way."""
    return doc if isinstance(doc, dict) else json.loads(unquote(doc))


def plan_buckets(settings: Settings, spec: dict) -> list[Change]:
    s3 = aws(settings, "s3")
    out = []
    for b in spec.get("buckets", []):
        name = settings.names.bucket(b["zone"])
        try:
            s3.head_bucket(Bucket=name)
        except Exception as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
            out.append(Change("bucket", name, "create", "encrypted, public access blocked"
                              + (", versioned" if b.get("versioning") else "")))
            continue
        try:
            block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        except Exception as exc:
            if _code(exc) != "NoSuchPublicAccessBlockConfiguration":
                raise
            block = {}
        if not all(block.get(k) for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                                          "RestrictPublicBuckets")):
            out.append(Change("bucket", name, "update", "block public access"))
        try:
            s3.get_bucket_encryption(Bucket=name)
        except Exception as exc:
            if _code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
                raise
            out.append(Change("bucket", name, "update", "default encryption"))
        if b.get("versioning") and s3.get_bucket_versioning(Bucket=name).get("Status") != "Enabled":
            out.append(Change("bucket", name, "update", "enable versioning"))
    return out


def plan_streams(settings: Settings, spec: dict) -> list[Change]:
    kinesis = aws(settings, "kinesis")
    out = []
    for st in spec.get("kinesis_streams", []):
        try:
            kinesis.describe_stream_summary(StreamName=st["name"])
        except kinesis.exceptions.ResourceNotFoundException:
            out.append(Change("kinesis_stream", st["name"], "create", f"{st.get('shards', 1)} shards"))
    return out


def plan_dynamodb(settings: Settings, spec: dict) -> list[Change]:
    ddb = aws(settings, "dynamodb")
    out = []
    for t in spec.get("dynamodb_tables", []):
        try:
            ddb.describe_table(TableName=t["name"])
        except ddb.exceptions.ResourceNotFoundException:
            out.append(Change("dynamodb_table", t["name"], "create", "on demand"
                              + (f", stream {t['stream']}" if t.get("stream") else "")))
            continue
        if t.get("ttl_attribute"):
            ttl = ddb.describe_time_to_live(TableName=t["name"]).get("TimeToLiveDescription", {})
            if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                out.append(Change("dynamodb_table", t["name"], "update", f"TTL on {t['ttl_attribute']}"))
    return out


def _topic_arns(settings: Settings) -> dict[str, str]:
    sns = aws(settings, "sns")
    return {arn.rsplit(":", 1)[-1]: arn for page in sns.get_paginator("list_topics").paginate()
            for arn in (t["TopicArn"] for t in page["Topics"])}


def plan_topics(settings: Settings, spec: dict) -> list[Change]:
    sns, sqs = aws(settings, "sns"), aws(settings, "sqs")
    topics = _topic_arns(settings)
    out = []
    for t in spec.get("sns_topics", []):
        arn = topics.get(t["name"])
        if not arn:
            out.append(Change("sns_topic", t["name"], "create"))
        endpoints = set()
        if arn:
            endpoints = {s["Endpoint"] for page in sns.get_paginator("list_subscriptions_by_topic").paginate(
                TopicArn=arn) for s in page["Subscriptions"]}
        for q in t.get("sqs_subscriptions", []):
            try:
                url = sqs.get_queue_url(QueueName=q)["QueueUrl"]
            except sqs.exceptions.QueueDoesNotExist:
                out.append(Change("sqs_queue", q, "create", f"subscribed to {t['name']}"))
                continue
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "Policy"])["Attributes"]
            if attrs["QueueArn"] not in endpoints:
                out.append(Change("sns_subscription", f"{t['name']} -> {q}", "create"))
            if arn and arn not in attrs.get("Policy", ""):
                out.append(Change("sqs_queue", q, "update", f"policy allowing {t['name']} to send"))
    return out


def plan_log_groups(settings: Settings, spec: dict) -> list[Change]:
    logs = aws(settings, "logs")
    out = []
    for g in spec.get("log_groups", []):
        found = [x for x in logs.describe_log_groups(logGroupNamePrefix=g["name"])["logGroups"]
                 if x["logGroupName"] == g["name"]]
        if not found:
            out.append(Change("log_group", g["name"], "create", f"retention {g.get('retention_days')} days"))
        elif g.get("retention_days") and found[0].get("retentionInDays") != int(g["retention_days"]):
            out.append(Change("log_group", g["name"], "update", f"retention {g['retention_days']} days"))
    return out


def plan_alarms(settings: Settings, spec: dict) -> list[Change]:
    cw = aws(settings, "cloudwatch")
    wanted = spec.get("cloudwatch_alarms", [])
    have = {}
    names = [a["name"] for a in wanted]
    for i in range(0, len(names), 100):  # the API's limit of names per call
        for a in cw.describe_alarms(AlarmNames=names[i:i + 100])["MetricAlarms"]:
            have[a["AlarmName"]] = a
    out = []
    for a in wanted:
        got = have.get(a["name"])
        if not got:
            out.append(Change("cloudwatch_alarm", a["name"], "create", f"{a['metric']} {a['comparison']} "
                                                                        f"{a['threshold']}"))
            continue
        want = {"MetricName": a["metric"], "Statistic": a["statistic"], "Period": int(a["period"]),
                "EvaluationPeriods": int(a["evaluation_periods"]), "Threshold": float(a["threshold"]),
                "ComparisonOperator": a["comparison"], "Namespace": settings.names.metrics_namespace,
                "Dimensions": sorted((k, str(v)) for k, v in a["dimensions"].items())}
        now = {k: got.get(k) for k in want}
        now["Dimensions"] = sorted((d["Name"], d["Value"]) for d in got.get("Dimensions", []))
        now["Threshold"] = float(now["Threshold"]) if now["Threshold"] is not None else None
        differ = sorted(k for k in want if want[k] != now[k])
        if differ:
            out.append(Change("cloudwatch_alarm", a["name"], "update", ", ".join(differ)))
    return out


def plan_glue(settings: Settings, spec: dict) -> list[Change]:
    glue = aws(settings, "glue")
    out = []
    for d in spec.get("glue_databases", []):
        try:
            glue.get_database(Name=d["name"])
        except glue.exceptions.EntityNotFoundException:
            out.append(Change("glue_database", d["name"], "create"))
    return out


def plan_secrets(settings: Settings, spec: dict) -> list[Change]:
    sm = aws(settings, "secretsmanager")
    out = []
    for s in spec.get("secrets", []):
        try:
            sm.describe_secret(SecretId=s["name"])
        except sm.exceptions.ResourceNotFoundException:
            out.append(Change("secret", s["name"], "create", "random value"))
    return out


def plan_iam(settings: Settings, spec: dict, account: str) -> list[Change]:
    iam = aws(settings, "iam")
    trust = json.loads(substitute((INFRA_DIR / "iam" / "trust-policy.json").read_text(), settings, account))
    out = []
    for stage in spec.get("iam_roles", []):
        role = f"{settings.names.prefix}-{stage}"
        try:
            got = iam.get_role(RoleName=role)["Role"]
        except iam.exceptions.NoSuchEntityException:
            out.append(Change("iam_role", role, "create", f"trust policy + {stage}-least-privilege"))
            continue
        if _json(got["AssumeRolePolicyDocument"]) != trust:
            out.append(Change("iam_role", role, "update", "trust policy"))
        try:
            doc = _json(iam.get_role_policy(RoleName=role, PolicyName=f"{stage}-least-privilege")["PolicyDocument"])
        except iam.exceptions.NoSuchEntityException:
            doc = None
        if doc != policy_document(settings, stage, account):
            out.append(Change("iam_role", role, "update", f"inline policy {stage}-least-privilege"))
    return out


def plan_lake_formation(settings: Settings, account: str) -> list[Change]:
    """The same comparison as ``lakeformation.apply``, without the grant/revoke calls."""
    spec = lakeformation.load_spec()
    lf = aws(settings, "lakeformation")
    out = []
    wanted = {lakeformation.location_arn(settings, z) for z in spec.get("locations", [])}
    registered = {r["ResourceArn"] for r in lf.list_resources().get("ResourceInfoList", [])}
    out += [Change("lf_location", arn, "create", "register") for arn in sorted(wanted - registered)]
    managed = lakeformation.managed_principals(settings, account)
    have: dict = {}
    for g in lakeformation.current_grants(settings):
        principal = g["Principal"]["DataLakePrincipalIdentifier"]
        if principal in managed:
            have.setdefault(lakeformation.grant_key(principal, g["Resource"]), set()).update(g.get("Permissions", []))
    desired = lakeformation.desired_grants(settings, account, spec)
    for key, want in sorted(desired.items()):
        missing = want["permissions"] - have.get(key, set())
        if missing:
            out.append(Change("lf_grant", f"{want['principal'].rsplit('/', 1)[-1]} on "
                              f"{lakeformation.describe_resource(want['resource'])}", "create",
                              ", ".join(sorted(missing))))
    for key, got in sorted(have.items()):
        extra = got - desired.get(key, {}).get("permissions", set())
        if extra:
            out.append(Change("lf_grant", f"{key[0].rsplit('/', 1)[-1]} on "
                              f"{lakeformation.describe_resource(json.loads(key[1]))}", "update",
                              "revoke " + ", ".join(sorted(extra))))
    return out


def plan(settings: Settings) -> list[Change]:
    account = account_id(settings)
    spec = load_spec(settings, account)
    return [
        *plan_buckets(settings, spec),
        *plan_streams(settings, spec),
        *plan_dynamodb(settings, spec),
        *plan_topics(settings, spec),
        *plan_log_groups(settings, spec),
        *plan_alarms(settings, spec),
        *plan_glue(settings, spec),
        *plan_secrets(settings, spec),
        *plan_iam(settings, spec, account),
        *plan_lake_formation(settings, account),
    ]


def print_plan(changes: list[Change], echo=print) -> None:
    for c in changes:
        echo(c.line())
    creates = sum(c.action == "create" for c in changes)
    echo(f"plan: {creates} to create, {len(changes) - creates} to change"
         if changes else "plan: nothing to do (the target matches infra/)")


def as_json(changes: list[Change]) -> list[dict]:
    return [asdict(c) for c in changes]
