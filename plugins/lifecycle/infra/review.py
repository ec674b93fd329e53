"""``lifecycle review``: the deployed resources against a Well-Architected checklist.

Input: ``Settings`` (the selected target); what is deployed there under the name prefix:
buckets ``<prefix>-*``, IAM roles ``<prefix>-*`` and their policies, SNS topics, CloudWatch
alarms and log groups, Lake Formation grants.
Output: a list of ``Finding`` (severity high / medium / low, pillar, check id, resource,
message); ``cli`` prints them and exits 1 when any is high.

The checks come from the AWS Well-Architected Framework's Data Analytics Lens:
- security: data at rest encrypted, no public data, encryption in transit enforced,
  least privilege (no wildcard grants outside the reviewed allow-list, no open trust policy),
  fine-grained access through Lake Formation only (no IAM_ALLOWED_PRINCIPALS, no ALL/ALTER
  on data to people);
- reliability: the immutable source zone is versioned, every alarm notifies a topic that has
  a subscriber;
- cost: logs have a retention, DynamoDB tables are on-demand;
- operations: the declared alarms and log groups exist (``infra/resources.yaml``).
Hand-written: AWS Config rules / Security Hub would do this on AWS but not on the emulators.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote

from lifecycle.clients import aws
from lifecycle.settings import Settings

SEVERITIES = ("high", "medium", "low")


@dataclass(frozen=True)
class Finding:
    severity: str
    pillar: str
    check: str
    resource: str
    message: str


def _code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def _doc(value) -> dict:
    return json.loads(unquote(value)) if isinstance(value, str) else value


# ---- security + reliability: buckets -------------------------------------------------------

def _buckets(settings: Settings) -> list[str]:
    return sorted(b["Name"] for b in aws(settings, "s3").list_buckets().get("Buckets", [])
                  if b["Name"].startswith(f"{settings.names.prefix}-"))


def check_buckets(settings: Settings) -> list[Finding]:
    s3, out = aws(settings, "s3"), []
    for b in _buckets(settings):
        def add(sev, pillar, check, msg, b=b):
            out.append(Finding(sev, pillar, check, f"s3://{b}", msg))
        try:
            block = s3.get_public_access_block(Bucket=b)["PublicAccessBlockConfiguration"]
            off = sorted(k for k, v in block.items() if not v)
        except Exception as exc:
            if _code(exc) != "NoSuchPublicAccessBlockConfiguration":
                raise
            off = ["all four settings"]
        if off:
            add("high", "security", "SEC-S3-BLOCK-PUBLIC", f"Block Public Access is off: {', '.join(off)}")
        policy = None
        try:
            policy = json.loads(s3.get_bucket_policy(Bucket=b)["Policy"])
        except Exception as exc:
            if _code(exc) != "NoSuchBucketPolicy":
                raise
        statements = (policy or {}).get("Statement", [])
        statements = [statements] if isinstance(statements, dict) else statements
        for st in statements:
            principal = st.get("Principal")
            if st.get("Effect") == "Allow" and principal in ("*", {"AWS": "*"}) and "Condition" not in st:
                add("high", "security", "SEC-S3-PUBLIC-POLICY",
                    f"bucket policy statement {st.get('Sid', '?')} allows everyone (Principal *)")
        acl = s3.get_bucket_acl(Bucket=b)
        for grant in acl.get("Grants", []):
            uri = grant.get("Grantee", {}).get("URI", "")
            if uri.endswith(("/global/AllUsers", "/global/AuthenticatedUsers")):
                add("high", "security", "SEC-S3-PUBLIC-ACL", f"ACL grants {grant['Permission']} to {uri}")
        try:
            rules = s3.get_bucket_encryption(Bucket=b)["ServerSideEncryptionConfiguration"]["Rules"]
        except Exception as exc:
            if _code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
                raise
            rules = []
        if not rules:
            add("high", "security", "SEC-S3-ENCRYPTION", "no default encryption")
        if not any(st.get("Effect") == "Deny" and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
                   in ("false", False) for st in statements):
            add("medium", "security", "SEC-S3-TLS", "bucket policy does not deny requests without TLS")
        if b == settings.names.bucket("raw"):
            if s3.get_bucket_versioning(Bucket=b).get("Status") != "Enabled":
                add("medium", "reliability", "REL-S3-RAW-VERSIONED",
                    "the raw zone (replayable source of truth) is not versioned")
            if not any(st.get("Effect") == "Deny" and "s3:DeleteObject" in json.dumps(st.get("Action"))
                       for st in statements):
                add("medium", "reliability", "REL-S3-RAW-DELETES", "pipeline roles are not denied deletes on raw")
    return out


# ---- security: IAM -------------------------------------------------------------------------

def _role_policies(iam, role: str) -> dict[str, dict]:
    docs = {}
    for name in iam.list_role_policies(RoleName=role).get("PolicyNames", []):
        docs[name] = _doc(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
    for att in iam.list_attached_role_policies(RoleName=role).get("AttachedPolicies", []):
        pol = iam.get_policy(PolicyArn=att["PolicyArn"])["Policy"]
        version = iam.get_policy_version(PolicyArn=att["PolicyArn"], VersionId=pol["DefaultVersionId"])
        docs[att["PolicyName"]] = _doc(version["PolicyVersion"]["Document"])
    return docs


def check_iam(settings: Settings) -> list[Finding]:
    from lifecycle.security.iam_lint import lint, load_allowlist

    iam, out = aws(settings, "iam"), []
    prefix = f"{settings.names.prefix}-"
    roles = [r for page in iam.get_paginator("list_roles").paginate() for r in page["Roles"]
             if r["RoleName"].startswith(prefix)]
    allowlist = load_allowlist()
    for role in roles:
        name, stage = role["RoleName"], role["RoleName"][len(prefix):]
        trust = _doc(role["AssumeRolePolicyDocument"])
        for st in trust.get("Statement", []):
            if st.get("Effect") == "Allow" and st.get("Principal") in ("*", {"AWS": "*"}):
                out.append(Finding("high", "security", "SEC-IAM-OPEN-TRUST", f"iam role {name}",
                                   "trust policy lets any principal assume the role"))
        docs = _role_policies(iam, name)
        # the allow-list is per stage: every policy of a role is linted as that stage's
        merged = {stage: {"Statement": [st for d in docs.values() for st in
                                        (d.get("Statement") if isinstance(d.get("Statement"), list)
                                         else [d.get("Statement")])]}}
        for f in lint(merged, allowlist):
            if "matches no statement" not in f:
                out.append(Finding("high", "security", "SEC-IAM-WILDCARD", f"iam role {name}", f))
    return out


# ---- governance: Lake Formation --------------------------------------------------------------

def check_lake_formation(settings: Settings) -> list[Finding]:
    from lifecycle.infra.lakeformation import current_grants, describe_resource

    out = []
    try:
        grants = current_grants(settings)
    except Exception as exc:  # a target without Lake Formation (LocalStack community)
        return [Finding("low", "security", "SEC-LF-UNAVAILABLE", "lakeformation", f"cannot list grants: {exc}")]
    analyst = f"role/{settings.names.role('analyst')}"
    for g in grants:
        who = g["Principal"]["DataLakePrincipalIdentifier"]
        perms = set(g.get("Permissions", []))
        where = describe_resource(g["Resource"])
        if who == "IAM_ALLOWED_PRINCIPALS":
            out.append(Finding("high", "security", "SEC-LF-IAM-ALLOWED", where,
                               "IAM_ALLOWED_PRINCIPALS bypasses Lake Formation's fine-grained grants"))
        elif who.endswith(analyst) and perms & {"ALL", "ALTER", "DROP", "INSERT", "DELETE"}:
            out.append(Finding("high", "security", "SEC-LF-PEOPLE-WRITE", where,
                               f"analysts hold {sorted(perms)} (people should only SELECT)"))
    if not grants:
        out.append(Finding("medium", "security", "SEC-LF-NO-GRANTS", "lakeformation",
                           "no Lake Formation grants: access to the lake is IAM-only"))
    return out


# ---- reliability + operations: topics, alarms, logs; cost ------------------------------------

def _missing(declared: list[dict], deployed, code: str, why: str) -> list[Finding]:
    """A finding for each resource ``infra/resources.yaml`` declares that is not deployed."""
    return [Finding("medium", "operations", code, d["name"], why) for d in declared if d["name"] not in deployed]


def check_operations(settings: Settings) -> list[Finding]:
    from lifecycle.infra.spec import load_spec

    spec = load_spec(settings, settings.aws.account_id)
    out = []
    sns, cw, logs = aws(settings, "sns"), aws(settings, "cloudwatch"), aws(settings, "logs")
    topics = {t["TopicArn"] for page in sns.get_paginator("list_topics").paginate() for t in page["Topics"]}
    for arn in sorted(t for t in topics if t.rsplit(":", 1)[-1].startswith(settings.names.prefix)):
        subs = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
        if not subs:
            out.append(Finding("medium", "reliability", "REL-TOPIC-NO-SUBSCRIBER", arn, "nobody receives this topic"))
    alarms = {a["AlarmName"]: a for page in cw.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=f"{settings.names.prefix}-") for a in page["MetricAlarms"]}
    out += _missing(spec.get("cloudwatch_alarms", []), alarms, "OPS-ALARM-MISSING", "declared alarm is not deployed")
    for name, a in sorted(alarms.items()):
        actions = a.get("AlarmActions", [])
        if not a.get("ActionsEnabled") or not actions:
            out.append(Finding("medium", "reliability", "REL-ALARM-NO-ACTION", name, "the alarm notifies nobody"))
        elif not set(actions) & topics:
            out.append(Finding("medium", "reliability", "REL-ALARM-DEAD-ACTION", name,
                               f"the alarm's actions {actions} are not existing topics"))
    groups = {g["logGroupName"]: g for page in logs.get_paginator("describe_log_groups").paginate(
        logGroupNamePrefix=f"/{settings.names.prefix}/") for g in page["logGroups"]}
    out += _missing(spec.get("log_groups", []), groups, "OPS-LOG-GROUP-MISSING", "declared log group is missing")
    for name, g in sorted(groups.items()):
        if not g.get("retentionInDays"):
            out.append(Finding("low", "cost", "COST-LOG-RETENTION", name, "logs are kept forever (no retention)"))
    ddb = aws(settings, "dynamodb")
    for t in spec.get("dynamodb_tables", []):
        try:
            mode = ddb.describe_table(TableName=t["name"])["Table"].get("BillingModeSummary", {}).get("BillingMode")
        except ddb.exceptions.ResourceNotFoundException:
            out.append(Finding("medium", "operations", "OPS-TABLE-MISSING", t["name"], "declared table is missing"))
            continue
        if mode != "PAY_PER_REQUEST":
            out.append(Finding("low", "cost", "COST-DDB-PROVISIONED", t["name"],
                               "provisioned capacity for a bursty pipeline table (on-demand fits)"))
    return out


def review(settings: Settings) -> list[Finding]:
    findings = [*check_buckets(settings), *check_iam(settings), *check_lake_formation(settings),
                *check_operations(settings)]
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), f.pillar, f.check, f.resource))
