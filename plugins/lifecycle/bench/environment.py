"""The benchmark's own embedded environment: Postgres + moto on free ports, private state.

Input: nothing but the machine (free loopback ports, ``/tmp``), and ``keep`` (leave the
services running at the end, for a look around).
Output: a context manager yielding a ``BenchEnvironment`` (on ``services.isolated_environment``, the same one the test suite uses): the ``Settings`` of a fresh
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lifecycle.services import free_port  # noqa: F401  (re-exported for the harness)
from lifecycle.settings import Settings


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
    from lifecycle.clients import aws
    from lifecycle.services import isolated_environment
    from lifecycle.sources.sales_db import ensure_schema

    with isolated_environment(prefix="lifecycle-bench-", keep=keep) as (settings, env):
        bench = BenchEnvironment(settings=settings, env=env, home=settings.home, kept=keep)
        ensure_schema(settings)
        kwargs = {"Bucket": bench.baseline_bucket}
        if settings.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.region}
        aws(settings, "s3").create_bucket(**kwargs)
        yield bench
