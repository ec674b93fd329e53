"""The benchmark's own embedded environment: Postgres + moto on free ports, private state.

Input: nothing but the machine (free loopback ports, ``/tmp``), and ``keep`` (leave the
services running at the end, for a look around).
Output: a context manager yielding a ``BenchEnvironment``: the ``Settings`` of a fresh
embedded target (``LIFECYCLE_HOME`` under ``/tmp/lifecycle-bench-*``), its environment
variables (for subprocesses such as dbt) and a bucket for baseline outputs
(``settings.bucket("bench")``). Services are started with ``services.up``, the
infrastructure with ``infra.apply`` and the source schema with ``sales_db.ensure_schema``,
exactly as the test suite's session fixture does; a running ``make demo`` environment is
never touched. On exit both services are stopped and the folder deleted (unless ``keep``).

The process environment is not modified: the settings are built from an explicit dict.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lifecycle.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class BenchEnvironment:
    settings: Settings
    env: dict[str, str]
    home: Path
    kept: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def baseline_bucket(self) -> str:
        """Where the baselines write (never a bucket a lifecycle stage reads)."""
        return self.settings.bucket("bench")

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        """``os.environ`` plus this environment's variables (the ones profiles.yml reads)."""
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LIFECYCLE_", "AWS_ENDPOINT_URL"))}
        env.update(self.env)
        env.update({
            "LIFECYCLE_PG_HOST": s.pg_host,
            "LIFECYCLE_PG_PORT": str(s.pg_port),
            "LIFECYCLE_PG_USER": s.pg_user,
            "LIFECYCLE_PG_PASSWORD": s.pg_password,
            "LIFECYCLE_WAREHOUSE_DB": s.warehouse_db,
            "LIFECYCLE_SALES_DB": s.sales_db,
        })
        env.update(extra)
        return env


@contextlib.contextmanager
def bench_environment(keep: bool = False) -> Iterator[BenchEnvironment]:
    """Start a private embedded environment; stop and delete it at the end unless ``keep``."""
    from lifecycle import infra, services
    from lifecycle.clients import aws
    from lifecycle.sources.sales_db import ensure_schema

    # not under a 0700 folder: the `pgserver` OS user that runs Postgres must traverse it
    home = Path(tempfile.mkdtemp(prefix="lifecycle-bench-"))
    os.chmod(home, 0o755)
    env = {
        "LIFECYCLE_TARGET": "embedded",
        "LIFECYCLE_HOME": str(home),
        "LIFECYCLE_PG_PORT": str(free_port()),
        "LIFECYCLE_MOTO_PORT": str(free_port()),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    settings = Settings.from_env(env)
    bench = BenchEnvironment(settings=settings, env=env, home=home, kept=keep)
    try:
        services.up(settings)
        infra.apply(settings)
        ensure_schema(settings)
        s3 = aws(settings, "s3")
        kwargs = {"Bucket": bench.baseline_bucket}
        if settings.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.region}
        s3.create_bucket(**kwargs)
        yield bench
    finally:
        if not keep:
            with contextlib.suppress(Exception):
                services.down(settings)
            shutil.rmtree(home, ignore_errors=True)
