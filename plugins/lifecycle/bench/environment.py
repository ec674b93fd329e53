"""The benchmark's own embedded environment: Postgres + moto on free ports, private state.

Input: nothing but the machine (free loopback ports, ``/tmp``), and ``keep`` (leave the
services running at the end, for a look around).
Output: a context manager yielding a ``BenchEnvironment`` (on ``services.isolated_environment``, the same one the test suite uses): the ``Settings`` of a fresh
embedded target (``LIFECYCLE_HOME`` under ``/tmp/lifecycle-bench-*``), its environment
variables (for subprocesses such as dbt) and a bucket for baseline outputs
(``settings.names.bucket("bench")``). Services are started with ``services.up``, the
infrastructure with ``infra.apply`` and the source schema with ``sales_db.ensure_schema``,
exactly as the test suite's session fixture does; a running ``make demo`` environment is
never touched. On exit both services are stopped and the folder deleted (unless ``keep``).

``separate_source`` (the default) puts the source database ``sales`` on a second Postgres
server, as it is on AWS (RDS apart from the warehouse) and under compose (``sales-db``).
On one shared server, logical decoding of ``sales`` reads the whole cluster's WAL, the
warehouse load's and dbt's gigabytes included: measured at 1M orders, capturing 10,000
changes after a full load and dbt build took 4.3 s, most of it reading the warehouse's WAL
(1.9 s for 1.9 GB with no change of ``sales`` in it). ``separate_source=False`` keeps the
embedded default's single server.

The process environment is not modified: the settings are built from an explicit dict.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lifecycle.ops.services import free_port  # noqa: F401  (re-exported for the harness)
from lifecycle.settings import PostgresSettings, Settings


@dataclass
class BenchEnvironment:
    settings: Settings
    env: dict[str, str]
    home: Path
    kept: bool = False
    notes: list[str] = field(default_factory=list)
    source: Settings | None = None  # the source server's own embedded settings, if separate

    @property
    def baseline_bucket(self) -> str:
        """Where the baselines write (never a bucket a lifecycle stage reads)."""
        return self.settings.names.bucket("bench")

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        """``os.environ`` plus this environment's variables (the ones profiles.yml reads)."""
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LIFECYCLE_", "AWS_ENDPOINT_URL"))}
        env.update(self.env)
        env.update({
            "LIFECYCLE_PG_HOST": s.pg.host,
            "LIFECYCLE_PG_PORT": str(s.pg.port),
            "LIFECYCLE_PG_USER": s.pg.user,
            "LIFECYCLE_PG_PASSWORD": s.pg.password,
            "LIFECYCLE_WAREHOUSE_DB": s.pg.warehouse_db,
            "LIFECYCLE_SALES_DB": s.pg.sales_db,
        })
        if s.pg.sales_port:
            env.update({"LIFECYCLE_SALES_PG_HOST": s.pg.sales_host or s.pg.host,
                        "LIFECYCLE_SALES_PG_PORT": str(s.pg.sales_port),
                        "LIFECYCLE_SALES_PG_USER": s.pg.sales_user or s.pg.user,
                        "LIFECYCLE_SALES_PG_PASSWORD": s.pg.sales_password or s.pg.password})
        env.update(extra)
        return env


@contextlib.contextmanager
def bench_environment(keep: bool = False, separate_source: bool = True) -> Iterator[BenchEnvironment]:
    """Start a private embedded environment; stop and delete it at the end unless ``keep``."""
    from lifecycle.clients import aws
    from lifecycle.ops.services import isolated_environment
    from lifecycle.sources.sales_db import ensure_schema

    with isolated_environment(prefix="lifecycle-bench-", keep=keep) as (settings, env):
        source = None
        try:
            if separate_source:
                source, settings = _start_source_server(settings, env)
            bench = BenchEnvironment(settings=settings, env=env, home=settings.home, kept=keep, source=source)
            ensure_schema(settings)
            kwargs = {"Bucket": bench.baseline_bucket}
            if settings.aws.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.aws.region}
            aws(settings, "s3").create_bucket(**kwargs)
            yield bench
        finally:
            if source is not None and not keep:
                from lifecycle.ops.services import stop_postgres

                with contextlib.suppress(Exception):
                    stop_postgres(source)


def _start_source_server(settings: Settings, env: dict[str, str]) -> tuple[Settings, Settings]:
    """A second Postgres for ``sales`` (state under ``<home>/sales-db``); returns its own
    embedded settings and ``settings`` pointed at it (``LIFECYCLE_SALES_PG_*`` added to
    ``env``). The ``sales`` database the first server got is dropped, so nothing can use it."""
    from dataclasses import replace

    from lifecycle.clients import pg
    from lifecycle.ops.services import start_postgres
    from lifecycle.security import pg_roles

    source = Settings(home=settings.home / "sales-db",
                      pg=PostgresSettings(port=free_port(), user=settings.pg.user, password=settings.pg.password))
    start_postgres(source)
    for server, sql in ((source, f'CREATE DATABASE "{settings.pg.sales_db}"'),
                        (settings, f'DROP DATABASE IF EXISTS "{settings.pg.sales_db}" WITH (FORCE)')):
        with pg(server, "postgres", autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(sql)
    env.update({"LIFECYCLE_SALES_PG_HOST": source.pg.host, "LIFECYCLE_SALES_PG_PORT": str(source.pg.port)})
    settings = replace(settings, pg=replace(settings.pg, sales_host=source.pg.host, sales_port=source.pg.port))
    pg_roles.apply_sales(settings)  # the CDC role and its grants, on the source server
    return source, settings
