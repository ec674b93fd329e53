"""AWS and Postgres clients built from the one ``Settings`` object.

Input: a ``Settings``. Output: boto3 clients pointed at the selected target (moto,
LocalStack, or AWS) and psycopg2 connections to the ``sales`` / ``warehouse`` databases.

boto3's own per-service endpoint support does what ``localstack-client`` would: the
settings carry the base endpoint and per-service overrides, so one code path serves all
three targets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache

import boto3
from botocore.config import Config

from lifecycle.settings import Settings


def _retry(max_attempts: int) -> Config:
    return Config(retries={"max_attempts": max_attempts, "mode": "adaptive"}, connect_timeout=5, read_timeout=60)


@lru_cache(maxsize=64)
def _session(region: str, key_id: str | None, secret: str | None) -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=region
    )


def aws(settings: Settings, service: str):
    """A boto3 client for ``service`` on the selected target (one per service and target:
    creating a client costs ~50 ms, and boto3 clients are thread-safe)."""
    return _client(settings.region, settings.aws_access_key_id, settings.aws_secret_access_key,
                   service, settings.endpoint_for(service), settings.aws_max_attempts)


@lru_cache(maxsize=128)
def _client(region: str, key_id: str | None, secret: str | None, service: str, endpoint: str | None,
            max_attempts: int = 8):
    return _session(region, key_id, secret).client(service, endpoint_url=endpoint, config=_retry(max_attempts))


@contextlib.contextmanager
def pg(settings: Settings, database: str, autocommit: bool = False) -> Iterator:
    """A psycopg2 connection that commits on success and always closes."""
    import psycopg2

    conn = psycopg2.connect(settings.pg_dsn(database), connect_timeout=10)
    conn.autocommit = autocommit
    try:
        yield conn
        if not autocommit:
            conn.commit()
    except BaseException:
        if not autocommit:
            conn.rollback()
        raise
    finally:
        conn.close()
