"""The jobs as AWS Glue jobs: scripts in the deploy bucket, job definitions, GlueJobOperator.

Input: the session's moto environment (moto stores Glue jobs; it runs no script).
Asserts: ``glue_job_operator_kwargs`` gives arguments ``GlueJobOperator`` accepts (name,
role from infra, bookmarks on, the interval as run arguments, the settings' Glue version
and workers); ``deploy`` uploads a reproducible package and creates, then updates, one
Glue job per clean job; the entry script is small and uses ``SparkJobContext`` on ``S3Lake``.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import zipfile
from datetime import UTC, datetime

from lifecycle.clients import aws

START, END = datetime(2026, 3, 11, tzinfo=UTC), datetime(2026, 3, 12, tzinfo=UTC)


def test_operator_kwargs_are_what_glue_job_operator_takes(settings):
    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator

    from lifecycle.jobs.glue.deploy import glue_job_operator_kwargs

    s = dataclasses.replace(settings, engines=dataclasses.replace(settings.engines, glue_version="4.0", glue_workers=5))
    kwargs = glue_job_operator_kwargs(s, "clean_sales", (START, END))
    op = GlueJobOperator(task_id="op", **kwargs)
    assert op.job_name == f"{s.names.prefix}-clean_sales"
    assert op.iam_role_name == f"{s.names.prefix}-transform"
    assert op.script_args == {"--interval_start": "2026-03-11T00:00:00+00:00",
                              "--interval_end": "2026-03-12T00:00:00+00:00"}
    assert op.script_location == f"s3://{s.names.bucket('deploy')}/glue/glue_entry.py"
    job = op.create_job_kwargs
    assert (job["GlueVersion"], job["WorkerType"], job["NumberOfWorkers"]) == ("4.0", "G.1X", 5)
    args = job["DefaultArguments"]
    assert args["--job-bookmark-option"] == "job-bookmark-enable"
    assert args["--lifecycle_job"] == "clean_sales"
    assert args["--raw_bucket"] == s.names.bucket("raw") and args["--pii_salt_secret"] == s.names.pii_salt_secret
    assert all("secret" not in v.lower() or v == s.names.pii_salt_secret for v in args.values())
    # the curated zone is Iceberg in the Glue Catalog: Glue 5's switch, its database, pyiceberg
    assert args["--datalake-formats"] == "iceberg"
    assert args["--curated_database"] == s.names.curated_database
    assert args["--curated_bucket"] == s.names.bucket("curated")
    from importlib.metadata import version

    from lifecycle.jobs.glue.deploy import PYICEBERG

    assert args["--additional-python-modules"] == PYICEBERG == f"pyiceberg[glue,pyarrow]=={version('pyiceberg')}"
    # templates pass through for Airflow to render
    templ = glue_job_operator_kwargs(s, "clean_events", ("{{ data_interval_start }}", "{{ data_interval_end }}"))
    assert templ["script_args"]["--interval_start"] == "{{ data_interval_start }}"


def test_glue_engine_setting_needs_the_aws_target():
    import pytest

    from lifecycle.settings import Settings, SettingsError

    assert Settings.from_env({}).engines.jobs == "local"
    with pytest.raises(SettingsError, match="LIFECYCLE_TARGET=aws"):
        Settings.from_env({"LIFECYCLE_JOBS_ENGINE": "glue"})
    aws_env = {"LIFECYCLE_TARGET": "aws", "LIFECYCLE_PG_HOST": "db", "LIFECYCLE_JOBS_ENGINE": "glue"}
    assert Settings.from_env(aws_env).engines.jobs == "glue"


def test_deploy_uploads_and_defines_every_job(settings):
    from lifecycle.infra import apply as infra
    from lifecycle.jobs.engine.contract import JOBS
    from lifecycle.jobs.glue.deploy import deploy, package

    infra.apply_buckets(settings, infra.load_spec(settings))
    first = deploy(settings)
    assert set(first["jobs"].values()) <= {"created", "unchanged"}
    # a second deploy finds every job as defined (moto has no UpdateJob; AWS would get one
    # only for a job whose definition differs)
    assert deploy(settings)["jobs"] == {settings.names.glue_job(j): "unchanged" for j in JOBS}
    glue = aws(settings, "glue")
    account = aws(settings, "sts").get_caller_identity()["Account"]
    job = glue.get_job(JobName=settings.names.glue_job("clean_events"))["Job"]
    assert job["Role"] == f"arn:aws:iam::{account}:role/{settings.names.prefix}-transform"
    assert job["Command"]["Name"] == "glueetl"
    assert job["DefaultArguments"]["--job-bookmark-option"] == "job-bookmark-enable"
    s3 = aws(settings, "s3")
    body = s3.get_object(Bucket=settings.names.bucket("deploy"), Key="glue/lifecycle.zip")["Body"].read()
    assert body == package(), "the package is reproducible"
    names = zipfile.ZipFile(io.BytesIO(body)).namelist()
    assert {"lifecycle/jobs/engine/spark_context.py", "lifecycle/jobs/clean_sales.py", "lifecycle/lake/catalog.py",
            "lifecycle/settings.py", "lifecycle/settings_env.py", "lifecycle/clients.py"} <= set(names)
    assert not any("/bench/" in n or "__pycache__" in n for n in names)


def test_entry_script_is_thin_and_uses_the_spark_context():
    from lifecycle.jobs.glue.deploy import ENTRY_SCRIPT

    source = ENTRY_SCRIPT.read_text()
    tree = ast.parse(source)
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {"awsglue.context", "awsglue.job", "lifecycle.jobs.engine.spark_context"} <= imported
    assert "S3Lake(databases=databases)" in source and "job.commit()" in source
    assert len(source.splitlines()) < 60
