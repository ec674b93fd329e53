"""Security settings applied by `lifecycle infra apply`, read back through the AWS APIs (moto).

Input: the session's embedded environment.
Asserts: every lake bucket has Block Public Access (all four flags), SSE default encryption,
a Deny-only policy refusing non-TLS requests and a wrong SSE header (but not an absent one:
default encryption covers writers that send none), and is not public; ``raw`` is versioned
and its policy denies deletes and history loss to the pipeline roles. moto stores bucket policies without evaluating them,
so the policy is checked as a document here (docs/security.md).
"""

from __future__ import annotations

import json

import pytest

from lifecycle.clients import aws

ZONES = ("raw", "clean", "quarantine", "curated", "serving", "deploy")


@pytest.fixture(scope="module")
def applied(settings):
    from lifecycle.infra import apply as infra

    return {"account": infra.account_id(settings), "out": infra.apply(settings)}


def _statements(settings, bucket):
    policy = json.loads(aws(settings, "s3").get_bucket_policy(Bucket=bucket)["Policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


@pytest.mark.parametrize("zone", ZONES)
def test_every_bucket_is_hardened(settings, applied, zone):
    s3, bucket = aws(settings, "s3"), settings.names.bucket(zone)
    assert bucket in applied["out"]["buckets"]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                     "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False

    st = _statements(settings, bucket)
    assert all(s["Effect"] == "Deny" for s in st.values())  # a policy that only takes away
    tls = st["DenyInsecureTransport"]
    assert tls["Principal"] == "*" and tls["Action"] == "s3:*"
    assert set(tls["Resource"]) == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    sse = st["DenyWrongEncryptionHeader"]
    assert sse["Action"] == "s3:PutObject" and sse["Resource"] == f"arn:aws:s3:::{bucket}/*"
    assert set(sse["Condition"]["StringNotEquals"]["s3:x-amz-server-side-encryption"]) == {"AES256", "aws:kms"}
    # denied only when the header is present: an absent header means default encryption
    assert sse["Condition"]["Null"] == {"s3:x-amz-server-side-encryption": "false"}

    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if zone == "raw":
        assert versioning == "Enabled"
        assert {"DenyPipelineDeletes", "DenyPipelineHistoryLoss"} <= st.keys()
    else:
        assert "DenyPipelineDeletes" not in st


def test_raw_denies_deletes_to_pipeline_roles(settings, applied):
    account, bucket = applied["account"], settings.names.bucket("raw")
    st = _statements(settings, bucket)
    roles = f"arn:aws:iam::{account}:role/{settings.names.prefix}-*"
    deletes = st["DenyPipelineDeletes"]
    assert deletes["Action"] == "s3:DeleteObject" and deletes["Resource"] == f"arn:aws:s3:::{bucket}/*"
    assert deletes["Condition"] == {"ArnLike": {"aws:PrincipalArn": roles}}
    history = st["DenyPipelineHistoryLoss"]
    assert {"s3:DeleteObjectVersion", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration"} <= set(history["Action"])
    assert history["Condition"] == {"ArnLike": {"aws:PrincipalArn": roles}}
    # every stage role is an `<prefix>-*` role, so the pattern covers all of them
    assert all(r.startswith(f"{settings.names.prefix}-") for r in applied["out"]["iam_roles"])


def test_the_embedded_moto_applies_unconditional_bucket_policy_statements_only(settings, applied):
    """moto ignores conditions (a conditional Deny would deny everything); the embedded
    target's launcher (lifecycle/ops/moto_server.py) leaves those statements out of
    moto's evaluation and keeps the unconditional ones."""
    s3, bucket = aws(settings, "s3"), settings.names.bucket("policy-probe")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "NoReads", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Sid": "NoPlainHttp", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": f"arn:aws:s3:::{bucket}/*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    try:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")  # the conditional Deny is not applied
        with pytest.raises(Exception) as denied:
            s3.get_object(Bucket=bucket, Key="k")
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    finally:
        s3.delete_bucket_policy(Bucket=bucket)
        s3.delete_object(Bucket=bucket, Key="k")
        s3.delete_bucket(Bucket=bucket)


def test_apply_twice_keeps_the_same_policies(settings, applied):
    from lifecycle.infra import apply as infra

    before = {z: _statements(settings, settings.names.bucket(z)) for z in ZONES}
    infra.apply_buckets(settings, infra.load_spec(settings, applied["account"]), applied["account"])
    assert {z: _statements(settings, settings.names.bucket(z)) for z in ZONES} == before


# ---- IAM policy linter -------------------------------------------------------------------------

def test_the_repo_policies_pass_the_linter():
    from lifecycle.security.iam_lint import lint, policy_files

    assert {"ingest-sales", "ingest-activity", "transform", "warehouse-load", "serve", "observability",
            "airflow", "analyst"} <= policy_files().keys()
    assert lint() == []


@pytest.mark.parametrize("statement, expected", [
    ({"Sid": "All", "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}, "wildcard action 's3:*'"),
    ({"Sid": "All", "Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/*"}, "wildcard action '*'"),
    ({"Sid": "All", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}, "wildcard resource '*'"),
    ({"Sid": "All", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*"},
     "wildcard resource 'arn:aws:s3:::*'"),
    ({"Sid": "All", "Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"}, "NotAction"),
    # allow-listed for another policy / another Sid only
    ({"Sid": "Other", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"},
     "wildcard resource '*'"),
])
def test_the_linter_rejects_wildcards_outside_the_allowlist(statement, expected):
    from lifecycle.security.iam_lint import lint, load_allowlist, policy_files

    policies = policy_files()
    policies["serve"] = {"Version": "2012-10-17", "Statement": [*policies["serve"]["Statement"], statement]}
    findings = lint(policies, load_allowlist())
    assert len(findings) == 1 and expected in findings[0] and findings[0].startswith("serve:")


def test_the_linter_flags_a_stale_allowlist_entry_and_ignores_denies():
    from lifecycle.security.iam_lint import lint, load_allowlist, policy_files

    policies = policy_files()
    policies["serve"] = {"Statement": [s for s in policies["serve"]["Statement"] if s["Sid"] != "Metrics"]
                         + [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
    findings = lint(policies, load_allowlist())
    assert len(findings) == 1 and "('serve', 'Metrics', 'resource', '*')" in findings[0]


# ---- Postgres roles ----------------------------------------------------------------------------

def _connect(settings, role: str, database: str):
    import psycopg2

    conn = psycopg2.connect(settings.pg_dsn(database, role), connect_timeout=10)
    conn.autocommit = True
    return conn


def _refused(settings, role: str, database: str, statement: str) -> None:
    import psycopg2

    conn = _connect(settings, role, database)
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(statement)
    finally:
        conn.close()


def _allowed(settings, role: str, database: str, statement: str):
    conn = _connect(settings, role, database)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


@pytest.fixture(scope="module")
def databases(settings, applied):
    from lifecycle.sources.sales_db import ensure_schema

    ensure_schema(settings)  # the source tables (created by the admin after the grants)
    _allowed(settings, "loader", settings.pg.warehouse_db,
             "CREATE TABLE IF NOT EXISTS landing.security_probe (x int); INSERT INTO landing.security_probe VALUES (1)")
    return settings


def test_each_stage_logs_in_as_its_own_role(settings, databases):
    users = {r: _allowed(settings, r, db, "SELECT current_user")[0][0]
             for r, db in (("cdc", settings.pg.sales_db), ("loader", settings.pg.warehouse_db),
                           ("dbt", settings.pg.warehouse_db))}
    assert users == {"cdc": settings.pg.cdc_user, "loader": settings.pg.loader_user, "dbt": settings.pg.dbt_user}
    assert len(set(users.values()) | {settings.pg.user}) == 4
    # the stage roles are not superusers and only cdc may replicate
    rows = _allowed(settings, "admin", settings.pg.warehouse_db,
                    "SELECT rolname, rolsuper, rolreplication, rolcreaterole, rolcreatedb FROM pg_roles "
                    f"WHERE rolname IN ('{settings.pg.cdc_user}', '{settings.pg.loader_user}', '{settings.pg.dbt_user}', "
                    f"'{settings.pg.bi_reader_user}')")
    assert {r[0]: r[1:] for r in rows} == {
        settings.pg.cdc_user: (False, True, False, False), settings.pg.loader_user: (False, False, False, False),
        settings.pg.dbt_user: (False, False, False, False), settings.pg.bi_reader_user: (False, False, False, False)}


def test_stage_logins_come_from_the_settings_and_fall_back_only_off_the_embedded_target():
    from lifecycle.settings import Settings, SettingsError

    embedded = Settings.from_env({"LIFECYCLE_PG_LOADER_PASSWORD": "lp"})
    assert embedded.pg_login("cdc") == ("lifecycle_cdc", None)  # trusted loopback: the role, no password
    assert embedded.pg_login("loader") == ("lifecycle_loader", "lp")
    assert "user=lifecycle_dbt" in embedded.pg_dsn("warehouse", "dbt") and "password" not in embedded.pg_dsn(
        "warehouse", "dbt")
    compose = Settings.from_env({"LIFECYCLE_TARGET": "compose", "AWS_ENDPOINT_URL": "http://emulator:4566",
                                 "LIFECYCLE_PG_PASSWORD": "admin-pw", "LIFECYCLE_PG_CDC_PASSWORD": "cdc-pw"})
    assert compose.pg_login("cdc") == ("lifecycle_cdc", "cdc-pw")
    assert compose.pg_login("loader") == ("postgres", "admin-pw")  # no password for it yet
    with pytest.raises(SettingsError):
        compose.pg_login("root")


@pytest.mark.parametrize("role, database, statement", [
    # cdc: reads the source, never writes it
    ("cdc", "sales", "UPDATE public.products SET name = name"),
    ("cdc", "sales", "DELETE FROM public.orders"),
    ("cdc", "sales", "CREATE TABLE public.cdc_was_here (x int)"),
    # loader: landing only
    ("loader", "warehouse", "CREATE SCHEMA loader_was_here"),
    ("loader", "warehouse", "CREATE TABLE public.loader_was_here (x int)"),
    # dbt: reads landing, cannot change it
    ("dbt", "warehouse", "INSERT INTO landing.security_probe VALUES (2)"),
    ("dbt", "warehouse", "DROP TABLE landing.security_probe"),
    ("dbt", "warehouse", "DELETE FROM landing.security_probe"),
])
def test_a_stage_role_is_refused_outside_its_stage(settings, databases, role, database, statement):
    db = {"sales": settings.pg.sales_db, "warehouse": settings.pg.warehouse_db}[database]
    _refused(settings, role, db, statement)


def test_what_each_stage_needs_is_allowed(settings, databases):
    assert _allowed(settings, "cdc", settings.pg.sales_db, "SELECT count(*) FROM public.orders")[0][0] >= 0
    assert _allowed(settings, "dbt", settings.pg.warehouse_db, "SELECT x FROM landing.security_probe") == [(1,)]
    _allowed(settings, "dbt", settings.pg.warehouse_db, "CREATE SCHEMA IF NOT EXISTS staging")


@pytest.mark.parametrize("role, database", [("cdc", "warehouse"), ("loader", "sales"), ("dbt", "sales"),
                                            ("bi_reader", "sales"), ("cdc", "airflow")])
def test_a_stage_role_cannot_connect_to_another_database(settings, databases, role, database):
    import psycopg2

    db = {"sales": settings.pg.sales_db, "warehouse": settings.pg.warehouse_db, "airflow": settings.pg.airflow_db}[database]
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        _connect(settings, role, db)


# ---- lifecycle review ---------------------------------------------------------------------------

def test_review_passes_on_our_deployment(settings, applied):
    from typer.testing import CliRunner

    from lifecycle.cli import app
    from lifecycle.infra.review import review

    findings = review(settings)
    assert [f for f in findings if f.severity == "high"] == []
    # buckets and roles are only ours (other tests may leave topics or alarms behind)
    assert [f for f in findings if f.severity == "medium" and f.check.startswith(("SEC-", "REL-S3"))] == []
    result = CliRunner().invoke(app, ["review"])
    assert result.exit_code == 0, result.output
    assert "0 high" in result.output


def test_review_catches_a_public_bucket_and_a_wildcard_policy(settings, applied):
    from typer.testing import CliRunner

    from lifecycle.cli import app
    from lifecycle.infra.review import review

    s3, iam = aws(settings, "s3"), aws(settings, "iam")
    leaky, rogue = settings.names.bucket("leaky"), settings.names.role("rogue")
    s3.create_bucket(Bucket=leaky)
    s3.put_bucket_policy(Bucket=leaky, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Everyone", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{leaky}/*"}]}))
    iam.create_role(RoleName=rogue, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{applied['account']}:root"}, "Action": "sts:AssumeRole"}]}))
    iam.put_role_policy(RoleName=rogue, PolicyName="admin", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Everything", "Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    try:
        high = {(f.check, f.resource) for f in review(settings) if f.severity == "high"}
        assert high == {("SEC-S3-BLOCK-PUBLIC", f"s3://{leaky}"), ("SEC-S3-PUBLIC-POLICY", f"s3://{leaky}"),
                        ("SEC-S3-ENCRYPTION", f"s3://{leaky}"), ("SEC-IAM-WILDCARD", f"iam role {rogue}")}
        result = CliRunner().invoke(app, ["review", "--json"])
        assert result.exit_code == 1
        assert {f["check"] for f in json.loads(result.output)} >= {"SEC-S3-PUBLIC-POLICY", "SEC-IAM-WILDCARD"}
    finally:
        s3.delete_bucket_policy(Bucket=leaky)
        s3.delete_bucket(Bucket=leaky)
        iam.delete_role_policy(RoleName=rogue, PolicyName="admin")
        iam.delete_role(RoleName=rogue)


# ---- per-stage IAM roles, enforced by moto -------------------------------------------------------

STAGES = ("ingest-sales", "ingest-activity", "transform", "warehouse-load", "serve", "observability", "airflow")
PROBE = "_security-probe/x"


def _s3_call(s3, settings, op: str, zone: str, key: str):
    bucket = settings.names.bucket(zone)
    if op == "put":
        return s3.put_object(Bucket=bucket, Key=key, Body=b"probe")
    if op == "get":
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    if op == "commit":  # a lake job's Iceberg commit: a data file, then a metadata file, read back
        table, _, rest = key.partition("/")
        s3.put_object(Bucket=bucket, Key=f"{table}/data/{rest}.parquet", Body=b"probe")
        s3.put_object(Bucket=bucket, Key=f"{table}/metadata/{rest}.metadata.json", Body=b"{}")
        return s3.get_object(Bucket=bucket, Key=f"{table}/metadata/{rest}.metadata.json")["Body"].read()
    return s3.delete_object(Bucket=bucket, Key=key)


# (stage, operation, zone, key, allowed): each stage's own work, and what is outside it
S3_CASES = [
    ("ingest-sales", "put", "raw", f"sales/{PROBE}", True),
    ("ingest-sales", "get", "clean", f"orders/{PROBE}", False),
    ("ingest-sales", "delete", "raw", f"events/{PROBE}", False),
    ("ingest-sales", "put", "clean", f"orders/{PROBE}", False),
    ("ingest-activity", "put", "raw", f"events/{PROBE}", True),
    ("ingest-activity", "get", "raw", f"reviews/{PROBE}", True),
    ("ingest-activity", "get", "clean", f"orders/{PROBE}", False),
    ("ingest-activity", "delete", "raw", f"events/{PROBE}", False),
    ("ingest-activity", "put", "raw", f"sales/{PROBE}", False),
    ("transform", "get", "raw", f"sales/{PROBE}", True),
    ("transform", "put", "clean", f"orders/{PROBE}", True),
    ("transform", "commit", "clean", f"orders/{PROBE}", True),
    ("transform", "commit", "curated", f"product_features/{PROBE}", True),
    ("transform", "put", "quarantine", f"events/{PROBE}", True),
    ("transform", "delete", "raw", f"sales/{PROBE}", False),
    ("transform", "put", "raw", f"sales/{PROBE}", False),
    ("transform", "put", "serving", f"dashboard/{PROBE}", False),
    ("warehouse-load", "get", "clean", f"orders/{PROBE}", True),
    ("warehouse-load", "put", "clean", f"orders/{PROBE}", False),
    ("warehouse-load", "commit", "clean", f"orders/{PROBE}", False),
    ("warehouse-load", "get", "raw", f"sales/{PROBE}", False),
    ("serve", "put", "serving", f"dashboard/{PROBE}", True),
    ("serve", "put", "clean", f"orders/{PROBE}", False),
    ("serve", "put", "curated", f"features/{PROBE}", False),
    ("serve", "get", "raw", f"sales/{PROBE}", False),
    ("observability", "get", "clean", f"orders/{PROBE}", True),
    ("observability", "put", "serving", "dashboard/observability.html", True),
    ("observability", "put", "serving", "dashboard/index.html", False),
    ("observability", "delete", "clean", f"orders/{PROBE}", False),
    ("airflow", "get", "deploy", f"dags/{PROBE}", True),
    ("airflow", "put", "raw", f"sales/{PROBE}", False),
    ("airflow", "get", "clean", f"orders/{PROBE}", False),
]


@pytest.fixture(scope="module")
def stage_clients(settings, applied):
    """Each stage's S3 client, its role assumed before moto enforces (see enforcement.py);
    the probe objects exist."""
    from lifecycle.security.enforcement import stage_settings

    s3 = aws(settings, "s3")
    for zone, key in {(c[2], c[3]) for c in S3_CASES}:
        s3.put_object(Bucket=settings.names.bucket(zone), Key=key, Body=b"probe")
    clients = {}
    for stage in STAGES:
        st = stage_settings(settings, stage)
        ident = aws(st, "sts").get_caller_identity()["Arn"]
        assert f":assumed-role/{settings.names.role(stage)}/" in ident
        clients[stage] = (st, aws(st, "s3"), aws(st, "iam"))
    return clients


def _status(call) -> int:
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"]
    return 200


def test_each_stage_role_is_allowed_its_own_s3_work_and_denied_the_rest(settings, stage_clients):
    from lifecycle.security.enforcement import enforced

    admin = aws(settings, "s3")
    with enforced(settings):
        # the emulator's dummy admin key is no identity at all now: enforcement is on
        assert _status(lambda: admin.list_buckets()) == 403
        got = {}
        for stage, op, zone, key, _ in S3_CASES:
            s3 = stage_clients[stage][1]
            got[(stage, op, zone, key)] = _status(lambda s3=s3, op=op, zone=zone, key=key:
                                                  _s3_call(s3, settings, op, zone, key))
        # and none may touch IAM
        iam = {stage: _status(lambda i=c[2]: i.create_user(UserName=f"{settings.names.prefix}-intruder"))
               for stage, c in stage_clients.items()}
    want = {(s, o, z, k): (200 if ok else 403) for s, o, z, k, ok in S3_CASES}
    assert {k: (200 if v in (200, 204) else v) for k, v in got.items()} == want
    assert set(iam.values()) == {403}
    # the denied deletes left the objects in place
    assert admin.get_object(Bucket=settings.names.bucket("raw"), Key=f"events/{PROBE}")["Body"].read() == b"probe"


# ---- secrets: not in task logs, XCom, rendered templates, lineage ---------------------------------

@pytest.fixture(scope="module")
def secret_run(settings, databases, tmp_path_factory):
    """`lifecycle run` of ingest_sales (Airflow's dag.test) with distinctive
    secrets in the environment (the embedded Postgres trusts loopback and moto checks no
    signature, so any value works); returns the secrets and every text the run left behind."""
    import secrets as pysecrets
    import subprocess
    import sys

    import psycopg2
    from conftest import lifecycle_env

    known = {name: f"{name.lower()}-{pysecrets.token_hex(12)}" for name in (
        "LIFECYCLE_PG_PASSWORD", "LIFECYCLE_PG_CDC_PASSWORD", "LIFECYCLE_PG_LOADER_PASSWORD",
        "LIFECYCLE_PG_DBT_PASSWORD", "LIFECYCLE_BI_READER_PASSWORD", "AWS_SECRET_ACCESS_KEY")}
    env = {**lifecycle_env(settings), **known}
    env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW_CONN_")}  # rebuilt from the secrets
    proc = subprocess.run([sys.executable, "-m", "lifecycle.cli", "run", "--dags", "ingest_sales"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    texts = {"run stdout": proc.stdout, "run stderr": proc.stderr}
    for path in (settings.home / "airflow" / "logs").rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    if settings.lineage_file.exists():
        texts["openlineage events"] = settings.lineage_file.read_text()
    logs = aws(settings, "logs")
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName=settings.names.log_group):
        texts.setdefault("cloudwatch logs", "")
        texts["cloudwatch logs"] += "\n".join(e["message"] for e in page["events"])
    conn = psycopg2.connect(settings.pg_dsn(settings.pg.airflow_db))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT dag_id, task_id, value::text FROM xcom")
            xcoms = cur.fetchall()
            cur.execute("SELECT dag_id, task_id, rendered_fields::text FROM rendered_task_instance_fields")
            rendered = cur.fetchall()
    finally:
        conn.close()
    texts["xcom"] = "\n".join(map(str, xcoms))
    texts["rendered templates"] = "\n".join(map(str, rendered))
    return {"known": known, "texts": texts, "xcoms": xcoms, "rendered": rendered}


def test_no_secret_in_task_logs_xcom_rendered_templates_or_lineage(secret_run):
    from lifecycle.security.secrets_check import leaks

    texts = secret_run["texts"]
    # the scan looks at real output: the run logged its tasks and returned XComs
    assert "replicate_sales" in texts["run stdout"] + texts["run stderr"]
    assert {(d, t) for d, t, _ in secret_run["xcoms"]} >= {("ingest_sales", "replicate_sales")}
    assert texts["rendered templates"] and texts["openlineage events"]
    assert leaks(texts, secret_run["known"]) == []
    # and the scan can fail: a text holding one of them is reported
    assert leaks({"probe": f"x {secret_run['known']['AWS_SECRET_ACCESS_KEY']} y"}, secret_run["known"]) == [
        ("probe", "AWS_SECRET_ACCESS_KEY")]


def test_a_stage_entry_point_runs_with_its_role(settings, databases, stage_clients):
    """``sales_cdc.run`` with stage roles on, the whole stage under moto's IAM enforcement:
    every AWS call of the stage goes through the ingest-sales role (its clients are the
    stage's) and is authorized by its policy; the run works, and the same role is refused a
    step outside its stage."""
    from lifecycle.clients import aws as client_for
    from lifecycle.ingest import sales_cdc
    from lifecycle.security.enforcement import enforced, stage_settings

    st = stage_settings(settings, "ingest-sales")
    s3 = client_for(st.for_stage("ingest-sales"), "s3")
    assert s3 is stage_clients["ingest-sales"][1]
    # moto authorizes CloudWatch calls by their signing name (monitoring:PutMetricData), which
    # no AWS policy names: the role's own cloudwatch:PutMetricData, spelt moto's way, for the test
    iam, role = aws(settings, "iam"), settings.names.role("ingest-sales")
    iam.put_role_policy(RoleName=role, PolicyName="moto-cloudwatch-signing-name", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "monitoring:PutMetricData",
                                                "Resource": "*"}]}))
    from lifecycle.clients import pg

    sales_cdc.run(st)  # whatever the session's earlier tests left: full load or pending changes
    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:  # one change for the run
        cur.execute("INSERT INTO products VALUES (990001, 'SKU-IAM', 'Probe', 'probes', 'enforced run', 1.00, true, "
                    "now()) ON CONFLICT (product_id) DO UPDATE SET updated_at = now()")
    try:
        with enforced(settings):
            out = sales_cdc.run(st)
            refused = _status(lambda: s3.put_object(Bucket=settings.names.bucket("clean"), Key=f"orders/{PROBE}-cdc",
                                                    Body=b"not the ingest stage's zone"))
    finally:
        iam.delete_role_policy(RoleName=role, PolicyName="moto-cloudwatch-signing-name")
    assert out["changes"].get("products") and out["files"], out  # it wrote the raw zone under enforcement
    assert refused == 403
    assert client_for(st, "sts").get_caller_identity()["Arn"].split("/")[1] == settings.names.role("ingest-sales")


def test_duckdb_writes_the_lake_with_the_stage_role_and_is_refused_outside_it(settings, stage_clients):
    """The lake jobs' DuckDB (httpfs) gets the transform role's temporary credentials, so the
    same boundaries hold for it: clean yes, raw no."""
    import duckdb

    from lifecycle.clients import connect_duckdb, credentials
    from lifecycle.security.enforcement import enforced

    st = stage_clients["transform"][0]
    key_id, _, token = credentials(st)
    assert token and key_id != settings.aws.access_key_id
    with connect_duckdb(st) as con:
        with enforced(settings):
            con.execute(f"COPY (SELECT 42 AS x) TO 's3://{settings.names.bucket('clean')}/{PROBE}.parquet' (FORMAT parquet)")
            assert con.execute(f"SELECT x FROM 's3://{settings.names.bucket('clean')}/{PROBE}.parquet'").fetchall() == [(42,)]
            with pytest.raises(duckdb.Error, match="403"):
                con.execute(f"COPY (SELECT 1 AS x) TO 's3://{settings.names.bucket('raw')}/sales/{PROBE}.parquet' "
                            "(FORMAT parquet)")
