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


@lru_cache(maxsize=32)
def _stage_session(region: str, key_id: str | None, secret: str | None, sts_endpoint: str | None,
                   role_arn: str) -> boto3.session.Session:
    """A session whose credentials are the role's, assumed through STS from the base
    credentials and refreshed before they expire (botocore's own assume-role fetcher)."""
    import botocore.session
    from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

    base = _session(region, key_id, secret)
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=lambda svc, **kw: base.client(svc, endpoint_url=sts_endpoint, region_name=region, **kw),
        source_credentials=base.get_credentials(), role_arn=role_arn,
        extra_args={"RoleSessionName": role_arn.rsplit("/", 1)[-1]})
    core = botocore.session.Session()
    core._credentials = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials,
                                                       method="assume-role")
    return boto3.session.Session(botocore_session=core, region_name=region)


@lru_cache(maxsize=8)
def _account(region: str, key_id: str | None, secret: str | None, sts_endpoint: str | None) -> str:
    return _session(region, key_id, secret).client("sts", endpoint_url=sts_endpoint).get_caller_identity()["Account"]


def _role_arn(settings: Settings) -> str:
    """ARN of the settings' stage role, in the account of the base credentials."""
    account = _account(settings.region, settings.aws_access_key_id, settings.aws_secret_access_key,
                       settings.endpoint_for("sts"))
    return f"arn:aws:iam::{account}:role/{settings.role_name(settings.stage)}"


def aws(settings: Settings, service: str):
    """A boto3 client for ``service`` on the selected target (one per service, target and
    stage: creating a client costs ~50 ms, and boto3 clients are thread-safe). With
    ``settings.stage`` set (``Settings.for_stage``) it calls AWS as that stage's IAM role."""
    role = _role_arn(settings) if settings.stage else None
    return _client(settings.region, settings.aws_access_key_id, settings.aws_secret_access_key,
                   service, settings.endpoint_for(service), role, settings.endpoint_for("sts"),
                   settings.aws_max_attempts)


@lru_cache(maxsize=256)
def _client(region: str, key_id: str | None, secret: str | None, service: str, endpoint: str | None,
            role_arn: str | None = None, sts_endpoint: str | None = None, max_attempts: int = 8):
    session = (_stage_session(region, key_id, secret, sts_endpoint, role_arn) if role_arn
               else _session(region, key_id, secret))
    return session.client(service, endpoint_url=endpoint, config=_retry(max_attempts))


def credentials(settings: Settings) -> tuple[str | None, str | None, str | None]:
    """(key id, secret, session token) the settings' clients use, for tools that take keys
    rather than a boto3 session (DuckDB's httpfs secret)."""
    if not settings.stage:
        return settings.aws_access_key_id, settings.aws_secret_access_key, None
    frozen = _stage_session(settings.region, settings.aws_access_key_id, settings.aws_secret_access_key,
                            settings.endpoint_for("sts"), _role_arn(settings)).get_credentials().get_frozen_credentials()
    return frozen.access_key, frozen.secret_key, frozen.token


@contextlib.contextmanager
def pg(settings: Settings, database: str, autocommit: bool = False, role: str = "admin") -> Iterator:
    """A psycopg2 connection, logged in as ``role`` (``Settings.pg_login``), that commits on
    success and always closes."""
    import psycopg2

    conn = psycopg2.connect(settings.pg_dsn(database, role), connect_timeout=10)
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
