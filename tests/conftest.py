"""Shared fixtures: one embedded environment (pgserver + moto) for the whole test session.

The session gets its own ``LIFECYCLE_HOME`` under pytest's temp dir and free ports, so a
running ``make demo`` environment is never touched; everything is stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def settings():
    """Settings of a fresh embedded environment, with services up; torn down at the end."""
    from lifecycle import infra, services
    from lifecycle.settings import Settings

    # not under pytest's basetemp: that folder is re-permissioned to 0700 by every new pytest
    # session, and the `pgserver` OS user that runs Postgres must be able to traverse it
    home = tempfile.mkdtemp(prefix="lifecycle-test-")
    os.chmod(home, 0o755)
    env = {
        "LIFECYCLE_TARGET": "embedded",
        "LIFECYCLE_HOME": str(home),
        "LIFECYCLE_PG_PORT": str(_free_port()),
        "LIFECYCLE_MOTO_PORT": str(_free_port()),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(env)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    s = Settings.from_env()
    try:
        services.up(s)
        infra.apply(s)
        yield s
    finally:
        services.down(s)
        shutil.rmtree(home, ignore_errors=True)


def reset_environment(settings) -> None:
    """A fresh AWS (moto reset) and fresh `sales`/`warehouse` databases, infra re-applied."""
    import urllib.request

    from lifecycle import infra, services

    req = urllib.request.Request(f"{settings.aws_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=30).read()
    services.ensure_databases(settings, recreate=(settings.sales_db, settings.warehouse_db))
    infra.apply(settings)


def lifecycle_env(settings) -> dict:
    """The environment a `lifecycle` subprocess needs to act on the test environment."""
    from lifecycle.airflow_env import airflow_env

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(airflow_env(settings))
    return env
