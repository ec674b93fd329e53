"""Shared fixtures: one embedded environment (pgserver + moto) for the whole test session.

The session gets its own ``LIFECYCLE_HOME`` under pytest's temp dir and free ports, so a
running ``make demo`` environment is never touched; everything is stopped at the end.
"""

from __future__ import annotations

import os

import pytest

# fixtures that start services (Postgres, moto, Airflow): a test that uses one, directly or
# through another fixture, gets the `services` marker; `make test-unit` runs the others
SERVICE_FIXTURES = {
    "settings",  # the session's embedded Postgres + moto
    "parsed",  # tests/pipeline/test_dags.py: Airflow parses the DAG folder in a subprocess
    "report", "scaling",  # tests/bench/test_bench.py: a benchmark environment of its own
    "stack", "lifecycle_ran",  # tests/ops/test_compose_target.py: the compose target's services
    "airflow",  # tests/chaos/test_airflow_scheduler.py: a real scheduler
    "pg_env",  # tests/chaos/test_postgres_restart.py: a Postgres it restarts
}


def tool_missing(reason: str) -> None:
    """A test's tool (Chromium, Java) is missing: skip it, except under ``CI=true``, where the
    machine is meant to have it (``.ci/run`` installs it) and a skip would hide a test not run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def settings():
    """Settings of a fresh embedded environment, with services up; torn down at the end.
    Its variables are put in ``os.environ`` so subprocesses (dbt, Airflow) use it too."""
    from lifecycle.ops.services import isolated_environment

    with isolated_environment(prefix="lifecycle-test-") as (s, env):
        os.environ.update(env)
        os.environ.pop("AWS_ENDPOINT_URL", None)
        yield s


def reset_environment(settings) -> None:
    """A fresh AWS (moto reset) and fresh `sales`/`warehouse` databases, infra re-applied."""
    import urllib.request

    from lifecycle.infra import apply as infra
    from lifecycle.ops import services

    req = urllib.request.Request(f"{settings.aws.endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=30).read()
    services.ensure_databases(settings, recreate=(settings.pg.sales_db, settings.pg.warehouse_db))
    infra.apply(settings)


def lifecycle_env(settings) -> dict:
    """The environment a `lifecycle` subprocess needs to act on the test environment."""
    from lifecycle.pipeline.environment import airflow_env

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(airflow_env(settings))
    return env


def reset_lake(settings) -> None:
    """Empty what the lake jobs read and write: raw sources, clean and curated tables, job
    bookmarks, quarantine."""
    from lifecycle.clients import aws
    from lifecycle.lake.catalog import CLEAN_TABLES, CURATED_TABLES

    prefixes = {"raw": ["sales/", "events/", "events-errors/", "reviews/"],
                # _lifecycle/: the job bookmarks go with the tables they describe
                "clean": [f"{name}/" for name in CLEAN_TABLES] + ["_lifecycle/job-bookmarks/"],
                "curated": [f"{name}/" for name in CURATED_TABLES],
                "quarantine": ["events/", "_lifecycle/"]}
    s3, glue = aws(settings, "s3"), aws(settings, "glue")
    # the Iceberg tables go with their files (a Glue entry naming a deleted metadata file)
    for database, names in ((settings.names.clean_database, CLEAN_TABLES),
                            (settings.names.curated_database, CURATED_TABLES)):
        for name in names:
            try:
                glue.delete_table(DatabaseName=database, Name=name)
            except glue.exceptions.EntityNotFoundException:
                pass
    for zone, zone_prefixes in prefixes.items():
        bucket = settings.names.bucket(zone)
        for prefix in zone_prefixes:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
