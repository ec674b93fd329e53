"""Apply ``infra/`` (infrastructure as data) to the selected target, idempotently.

Input: ``Settings`` and the files ``infra/resources.yaml`` + ``infra/iam/*.json``.
Output: buckets (one per lake zone), the Kinesis stream, DynamoDB tables, the SNS alert
topic with its SQS subscription, Glue databases, secrets, the CloudWatch Logs group, the
CloudWatch alarms (actions: the alert topic) and one IAM role per pipeline stage exist with
the declared settings. Returns a summary ``{kind: [names]}``.

Every step is "create if missing, then converge": running it twice changes nothing.
"""

from __future__ import annotations

import json
import secrets as pysecrets
import time

from lifecycle.clients import aws
from lifecycle.infra import lakeformation
from lifecycle.infra.spec import INFRA_DIR, account_id, load_spec, policy_document, substitute
from lifecycle.security import pg_roles
from lifecycle.settings import Settings


def _err_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def apply_buckets(settings: Settings, spec: dict, account: str | None = None) -> list[str]:
    """Each bucket: Block Public Access, default encryption, versioning where declared and the
    Deny-only bucket policy of ``lifecycle.security.bucket_policy`` (TLS only, no wrong SSE
    header, no deletes by pipeline roles where declared)."""
    from lifecycle.security.bucket_policy import bucket_policy

    s3 = aws(settings, "s3")
    account = account or settings.aws.account_id
    names = []
    for b in spec.get("buckets", []):
        name = settings.names.bucket(b["zone"])
        try:
            s3.head_bucket(Bucket=name)
        except Exception:
            kwargs = {"Bucket": name}
            if settings.aws.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.aws.region}
            s3.create_bucket(**kwargs)
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True,
                "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
            },
        )
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        if b.get("versioning"):
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps(bucket_policy(settings, name, account, b)))
        names.append(name)
    return names


def apply_streams(settings: Settings, spec: dict) -> list[str]:
    kinesis = aws(settings, "kinesis")
    names = []
    for st in spec.get("kinesis_streams", []):
        try:
            kinesis.describe_stream_summary(StreamName=st["name"])
        except kinesis.exceptions.ResourceNotFoundException:
            kinesis.create_stream(StreamName=st["name"], ShardCount=int(st.get("shards", 1)))
        for _ in range(100):
            summary = kinesis.describe_stream_summary(StreamName=st["name"])["StreamDescriptionSummary"]
            if summary["StreamStatus"] == "ACTIVE":
                break
            time.sleep(0.2)
        names.append(st["name"])
    return names


def apply_dynamodb(settings: Settings, spec: dict) -> list[str]:
    ddb = aws(settings, "dynamodb")
    names = []
    for t in spec.get("dynamodb_tables", []):
        try:
            ddb.describe_table(TableName=t["name"])
        except ddb.exceptions.ResourceNotFoundException:
            kwargs = dict(
                TableName=t["name"],
                KeySchema=[{"AttributeName": k["name"], "KeyType": k["role"]} for k in t["keys"]],
                AttributeDefinitions=[{"AttributeName": k["name"], "AttributeType": k["type"]}
                                      for k in t["keys"]],
                BillingMode="PAY_PER_REQUEST",
            )
            if t.get("stream"):
                kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": t["stream"]}
            ddb.create_table(**kwargs)
            ddb.get_waiter("table_exists").wait(TableName=t["name"], WaiterConfig={"Delay": 1})
        if t.get("ttl_attribute"):
            ttl = ddb.describe_time_to_live(TableName=t["name"]).get("TimeToLiveDescription", {})
            if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                ddb.update_time_to_live(TableName=t["name"], TimeToLiveSpecification={
                    "Enabled": True, "AttributeName": t["ttl_attribute"]})
        names.append(t["name"])
    return names


def apply_topics(settings: Settings, spec: dict) -> list[str]:
    sns, sqs = aws(settings, "sns"), aws(settings, "sqs")
    names = []
    for t in spec.get("sns_topics", []):
        topic_arn = sns.create_topic(Name=t["name"])["TopicArn"]  # idempotent by name
        existing = {s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]}
        for q in t.get("sqs_subscriptions", []):
            url = sqs.create_queue(QueueName=q)["QueueUrl"]
            q_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            policy = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                               "Action": "sqs:SendMessage", "Resource": q_arn,
                               "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}],
            }
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
            if q_arn not in existing:
                sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=q_arn)
        names.append(t["name"])
    return names


def apply_log_groups(settings: Settings, spec: dict) -> list[str]:
    logs = aws(settings, "logs")
    names = []
    for g in spec.get("log_groups", []):
        try:
            logs.create_log_group(logGroupName=g["name"])
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        if g.get("retention_days"):
            logs.put_retention_policy(logGroupName=g["name"], retentionInDays=int(g["retention_days"]))
        names.append(g["name"])
    return names


def apply_alarms(settings: Settings, spec: dict) -> list[str]:
    """``put_metric_alarm`` is an upsert: the declared alarm replaces any previous definition."""
    cw = aws(settings, "cloudwatch")
    topic = alert_topic_arn(settings)
    names = []
    for a in spec.get("cloudwatch_alarms", []):
        cw.put_metric_alarm(
            AlarmName=a["name"], AlarmDescription=f"{a['description']} | runbook: {a.get('runbook', '')}"[:1024],
            Namespace=settings.names.metrics_namespace, MetricName=a["metric"],
            Dimensions=[{"Name": k, "Value": str(v)} for k, v in a["dimensions"].items()],
            Statistic=a["statistic"], Period=int(a["period"]), EvaluationPeriods=int(a["evaluation_periods"]),
            DatapointsToAlarm=int(a.get("datapoints_to_alarm", a["evaluation_periods"])),
            Threshold=float(a["threshold"]), ComparisonOperator=a["comparison"],
            TreatMissingData=a.get("treat_missing_data", "missing"),
            ActionsEnabled=True, AlarmActions=[topic], OKActions=[],
        )
        names.append(a["name"])
    return names


def apply_glue(settings: Settings, spec: dict) -> list[str]:
    glue = aws(settings, "glue")
    names = []
    for d in spec.get("glue_databases", []):
        try:
            glue.get_database(Name=d["name"])
        except glue.exceptions.EntityNotFoundException:
            glue.create_database(DatabaseInput={"Name": d["name"], "Description": d.get("description", "")})
        names.append(d["name"])
    return names


def apply_secrets(settings: Settings, spec: dict) -> list[str]:
    sm = aws(settings, "secretsmanager")
    names = []
    for s in spec.get("secrets", []):
        try:
            sm.describe_secret(SecretId=s["name"])
        except sm.exceptions.ResourceNotFoundException:
            sm.create_secret(Name=s["name"], SecretString=pysecrets.token_hex(int(s.get("generate_bytes", 32))))
        names.append(s["name"])
    return names


def apply_iam(settings: Settings, spec: dict, account: str) -> list[str]:
    iam = aws(settings, "iam")
    trust = substitute((INFRA_DIR / "iam" / "trust-policy.json").read_text(), settings, account)
    names = []
    for stage in spec.get("iam_roles", []):
        role = f"{settings.names.prefix}-{stage}"
        try:
            iam.get_role(RoleName=role)
            iam.update_assume_role_policy(RoleName=role, PolicyDocument=trust)
        except iam.exceptions.NoSuchEntityException:
            iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust,
                            Description=f"least-privilege role of the {stage} stage")
        iam.put_role_policy(RoleName=role, PolicyName=f"{stage}-least-privilege",
                            PolicyDocument=json.dumps(policy_document(settings, stage, account)))
        names.append(role)
    return names


def apply(settings: Settings) -> dict[str, list[str]]:
    account = account_id(settings)
    spec = load_spec(settings, account)
    return {
        "buckets": apply_buckets(settings, spec, account),
        "kinesis_streams": apply_streams(settings, spec),
        "dynamodb_tables": apply_dynamodb(settings, spec),
        "sns_topics": apply_topics(settings, spec),
        "log_groups": apply_log_groups(settings, spec),
        "cloudwatch_alarms": apply_alarms(settings, spec),
        "glue_databases": apply_glue(settings, spec),
        "secrets": apply_secrets(settings, spec),
        "iam_roles": apply_iam(settings, spec, account),
        "lake_formation": lakeformation.apply(settings, account),  # after the roles it grants to
        "postgres_roles": pg_roles.apply(settings),
    }


def alert_topic_arn(settings: Settings) -> str:
    return aws(settings, "sns").create_topic(Name=settings.names.alert_topic)["TopicArn"]


def alert_queue_url(settings: Settings) -> str:
    return aws(settings, "sqs").get_queue_url(QueueName=settings.names.alert_queue)["QueueUrl"]

