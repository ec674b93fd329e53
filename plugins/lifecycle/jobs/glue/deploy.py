"""The Glue-style jobs as AWS Glue jobs (``aws`` target): scripts to S3, job definitions,
and the arguments of the Amazon provider's ``GlueJobOperator``.

Input: ``Settings`` (deploy bucket, Glue version / worker type / workers, the transform
stage's IAM role ``<prefix>-transform`` of ``infra/iam``) and a job name of
``runner.JOBS``.
Output:
- ``package`` / ``upload``: ``s3://<deploy>/glue/glue_entry.py`` (the entry script,
  ``lifecycle/jobs/glue/entry.py``) and ``s3://<deploy>/glue/lifecycle.zip`` (the package,
  for ``--extra-py-files``), byte-identical for identical sources;
- ``job_definition``: the ``glue.create_job`` arguments of a job (``glueetl``, the role ARN,
  ``--job-bookmark-option job-bookmark-enable`` and the lake's buckets as DefaultArguments);
- ``deploy``: uploads, then creates every job or updates it where it differs (idempotent);
- ``glue_job_operator_kwargs``: keyword arguments for ``GlueJobOperator`` (the DAG
  ``lake_clean`` on ``LIFECYCLE_JOBS_ENGINE=glue``; docs/glue-jobs.md).

The jobs write the lake: each commit of an Iceberg table registers its snapshot in the Glue
Catalog (``--clean_database``/``--curated_database``), so nothing is registered afterwards.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from lifecycle.clients import aws
from lifecycle.settings import Settings

PACKAGE_DIR = Path(__file__).resolve().parents[2]  # plugins/lifecycle
ENTRY_SCRIPT = Path(__file__).with_name("entry.py")
PREFIX = "glue/"
# a zip entry's time is part of its bytes; a fixed one makes the archive reproducible
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
# the package's parts a Glue job imports (the jobs, the contract, settings, clients)
_SKIP_DIRS = {"__pycache__", "bench", "serve", "warehouse", "dataops", "ingest", "sources"}


def script_location(settings: Settings) -> str:
    return f"s3://{settings.names.bucket('deploy')}/{PREFIX}glue_entry.py"


def package_location(settings: Settings) -> str:
    return f"s3://{settings.names.bucket('deploy')}/{PREFIX}lifecycle.zip"


def package() -> bytes:
    """``lifecycle.zip``: the package's Python files a job needs, reproducibly zipped."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(PACKAGE_DIR.rglob("*.py")):
            rel = path.relative_to(PACKAGE_DIR.parent)
            if _SKIP_DIRS & set(rel.parts[1:-1]):
                continue
            info = zipfile.ZipInfo(str(rel).replace("\\", "/"), date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def upload(settings: Settings) -> dict[str, str]:
    s3, bucket = aws(settings, "s3"), settings.names.bucket("deploy")
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}glue_entry.py", Body=ENTRY_SCRIPT.read_bytes())
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}lifecycle.zip", Body=package())
    return {"script": script_location(settings), "package": package_location(settings)}


# what the Glue job installs for its Iceberg commits (the version this project locks)
PYICEBERG = "pyiceberg[glue,pyarrow]==0.12.0"


def default_arguments(settings: Settings, job_name: str) -> dict[str, str]:
    """The job's DefaultArguments: Glue's own switches and the job's Glue-style arguments
    (the run adds ``--interval_start/--interval_end``); no secrets, only the secret's name."""
    return {
        "--job-bookmark-option": "job-bookmark-enable",
        "--extra-py-files": package_location(settings),
        "--lifecycle_job": job_name,
        "--raw_bucket": settings.names.bucket("raw"),
        "--clean_bucket": settings.names.bucket("clean"),
        "--quarantine_bucket": settings.names.bucket("quarantine"),
        "--curated_bucket": settings.names.bucket("curated"),
        "--clean_database": settings.names.clean_database,
        "--curated_database": settings.names.curated_database,
        "--pii_salt_secret": settings.names.pii_salt_secret,
        # the clean and curated zones are Iceberg: Glue 5 loads its Iceberg libraries with this switch, and
        # the jobs commit through pyiceberg (the same code as locally), installed by pip
        "--datalake-formats": "iceberg",
        "--additional-python-modules": PYICEBERG,
        "--enable-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
        "--enable-glue-datacatalog": "true",
        "--TempDir": f"s3://{settings.names.bucket('deploy')}/{PREFIX}tmp/",
    }


def _command(settings: Settings) -> dict:
    return {"Name": "glueetl", "ScriptLocation": script_location(settings), "PythonVersion": "3"}


def job_definition(settings: Settings, job_name: str, account: str) -> dict:
    """``glue.create_job`` arguments of one job."""
    from lifecycle.jobs.engine.contract import JOBS

    if job_name not in JOBS:
        raise ValueError(f"unknown job {job_name!r}; jobs: {', '.join(JOBS)}")
    return {
        "Name": settings.names.glue_job(job_name),
        "Description": f"lifecycle Glue-style job {job_name} (lifecycle.jobs.{job_name})",
        "Role": f"arn:aws:iam::{account}:role/{settings.names.role('transform')}",
        "Command": _command(settings),
        "DefaultArguments": default_arguments(settings, job_name),
        "ExecutionProperty": {"MaxConcurrentRuns": 1},
        "MaxRetries": 0,
        "Timeout": 60,
        "GlueVersion": settings.engines.glue_version,
        "WorkerType": settings.engines.glue_worker_type,
        "NumberOfWorkers": settings.engines.glue_workers,
    }


def deploy(settings: Settings, account: str | None = None) -> dict:
    """Upload the scripts, then create or update the Glue job of every clean job."""
    from lifecycle.jobs.engine.contract import JOBS

    if account is None:
        account = aws(settings, "sts").get_caller_identity()["Account"]
    uploaded = upload(settings)
    glue = aws(settings, "glue")
    jobs = {}
    for job in JOBS:
        definition = job_definition(settings, job, account)
        name = definition.pop("Name")
        try:
            existing = glue.get_job(JobName=name)["Job"]
        except glue.exceptions.EntityNotFoundException:
            glue.create_job(Name=name, **definition)
            jobs[name] = "created"
        else:
            if all(existing.get(k) == v for k, v in definition.items()):
                jobs[name] = "unchanged"
            else:
                glue.update_job(JobName=name, JobUpdate=definition)
                jobs[name] = "updated"
    return {**uploaded, "jobs": jobs}


def _iso(value) -> str:
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.isoformat()
    return str(value)  # e.g. a Jinja template string, rendered by Airflow


def glue_job_operator_kwargs(settings: Settings, job_name: str, interval) -> dict:
    """Keyword arguments of ``GlueJobOperator`` (add ``task_id``) running ``job_name`` on
    AWS Glue for ``interval`` = (start, end) datetimes (or template strings).

    The operator creates the job, or with ``update_config`` converges it, to the same
    definition as ``job_definition`` (role by name: the hook resolves its ARN), starts a
    run with the interval as run arguments and waits for it.
    """
    definition = job_definition(settings, job_name, account="0")
    start, end = interval
    return {
        "job_name": definition["Name"],
        "job_desc": definition["Description"],
        "script_location": script_location(settings),
        "s3_bucket": settings.names.bucket("deploy"),
        "iam_role_name": settings.names.role("transform"),
        "concurrent_run_limit": 1,
        "retry_limit": 0,
        "script_args": {"--interval_start": _iso(start), "--interval_end": _iso(end)},
        "create_job_kwargs": {k: definition[k] for k in (
            "Command", "DefaultArguments", "GlueVersion", "WorkerType", "NumberOfWorkers", "Timeout")},
        "update_config": True,
        "wait_for_completion": True,
        "verbose": False,
        "aws_conn_id": "aws_default",
        "region_name": settings.aws.region,
    }
