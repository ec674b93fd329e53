"""AWS and Postgres clients built from the one ``Settings`` object.

Input: a ``Settings``. Output: boto3 clients pointed at the selected target (moto,
LocalStack, or AWS), psycopg2 connections to the ``sales`` / ``warehouse`` databases, and
``connect_duckdb``: a DuckDB connection that reads and writes the lake (httpfs, avro and
iceberg from the extension wheels, an S3 secret from the settings, UTC session).

boto3's own per-service endpoint support does what ``localstack-client`` would: the
settings carry the base endpoint and per-service overrides, so one code path serves all
three targets.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import os
from collections.abc import Iterator
from functools import lru_cache

import boto3
from botocore.config import Config

from lifecycle.settings import Settings
from lifecycle.sql import literal


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


def role_arn(settings: Settings, role: str) -> str:
    """ARN of the IAM role ``role`` of ``infra/iam`` (``analyst``, a stage's), in the account of
    the base credentials."""
    account = _account(settings.aws.region, settings.aws.access_key_id, settings.aws.secret_access_key,
                       settings.aws.endpoint_for("sts"))
    return f"arn:aws:iam::{account}:role/{settings.names.role(role)}"


def _role_arn(settings: Settings) -> str:
    return role_arn(settings, settings.stage)


def forget_clients() -> None:
    """Drop every cached boto3 session and client (a test that starts an in-process moto
    after a session was made: the old session lacks moto's hook)."""
    for cached in (_session, _stage_session, _account, _client):
        cached.cache_clear()


def aws(settings: Settings, service: str):
    """A boto3 client for ``service`` on the selected target (one per service, target and
    stage: creating a client costs ~50 ms, and boto3 clients are thread-safe). With
    ``settings.stage`` set (``Settings.for_stage``) it calls AWS as that stage's IAM role."""
    role = _role_arn(settings) if settings.stage else None
    return _client(settings.aws.region, settings.aws.access_key_id, settings.aws.secret_access_key,
                   service, settings.aws.endpoint_for(service), role, settings.aws.endpoint_for("sts"),
                   settings.aws.max_attempts)


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
        return settings.aws.access_key_id, settings.aws.secret_access_key, None
    frozen = _stage_session(settings.aws.region, settings.aws.access_key_id, settings.aws.secret_access_key,
                            settings.aws.endpoint_for("sts"), _role_arn(settings)).get_credentials().get_frozen_credentials()
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


# ---- DuckDB: the engine of the lake jobs, the lake's ad hoc SQL and the warehouse load ----

def extension_path(name: str) -> str:
    """The DuckDB extension ``name`` shipped in the ``duckdb-extension-<name>`` wheel (no
    download: DuckDB's extension repository is not reachable everywhere this runs)."""
    import duckdb

    package = importlib.import_module(f"duckdb_extension_{name}")
    base = os.path.join(os.path.dirname(package.__file__), "extensions")
    wanted = os.path.join(base, f"v{duckdb.__version__}", f"{name}.duckdb_extension")
    if os.path.exists(wanted):
        return wanted
    found = sorted(glob.glob(os.path.join(base, "*", f"{name}.duckdb_extension")))
    if not found:
        raise RuntimeError(f"no {name} extension under {base}; reinstall duckdb-extension-{name} "
                           f"matching duckdb {duckdb.__version__}")
    return found[-1]


def load_extension(con, name: str) -> None:
    """INSTALL (from the wheel's file) and LOAD a DuckDB extension on ``con``."""
    con.execute(f"INSTALL {literal(extension_path(name))}")
    con.execute(f"LOAD {name}")


def attach_postgres(con, settings: Settings, database: str, alias: str, role: str = "admin",
                    isolation: str | None = None) -> None:
    """Attach Postgres ``database`` to DuckDB ``con`` as ``alias`` (postgres extension), logged
    in as ``role``; a DuckDB secret carries the login, so the password is in no DSN, log or
    error message. ``isolation``: the extension's ISOLATION_LEVEL (its default is REPEATABLE
    READ). Attaching an alias that is attached already does nothing."""
    if con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [alias]).fetchone()[0]:
        return
    load_extension(con, "postgres")
    host, port = settings.pg.server(database)[:2]
    user, password = settings.pg_login(role, database)
    # HOST is a name, an address or a Unix socket directory (libpq decides)
    parts = [f"HOST {literal(str(host))}", f"PORT {int(port)}", f"DATABASE {literal(database)}",
             f"USER {literal(user)}"]
    if password:
        parts.append(f"PASSWORD {literal(password)}")
    secret = f"lifecycle_pg_{alias}"
    options = ["TYPE postgres", f"SECRET {secret}"] + ([f"ISOLATION_LEVEL {literal(isolation)}"] if isolation else [])
    try:
        con.execute(f"CREATE OR REPLACE SECRET {secret} (TYPE postgres, {', '.join(parts)})")
        con.execute(f"ATTACH '' AS {alias} ({', '.join(options)})")
    except Exception as exc:
        message = str(exc).replace(password, "***") if password else str(exc)
        raise RuntimeError(f"attaching {database} to DuckDB failed: {message}") from None


def configure_s3(con, settings: Settings) -> None:
    """(Re)create the connection's S3 secret from the settings."""
    host_port, use_ssl = settings.aws.s3_host_port()
    parts = ["TYPE s3", f"REGION {literal(settings.aws.region)}"]
    key_id, secret, token = credentials(settings)  # the stage role's, when it has one
    if key_id and secret:
        parts += [f"KEY_ID {literal(key_id)}", f"SECRET {literal(secret)}"]
        if token:
            parts.append(f"SESSION_TOKEN {literal(token)}")
    else:  # aws target without static keys: the instance role / SSO chain
        parts.append("PROVIDER credential_chain")
    if host_port:
        parts += [f"ENDPOINT {literal(host_port)}", "URL_STYLE 'path'"]
    parts.append(f"USE_SSL {'true' if use_ssl else 'false'}")
    con.execute(f"CREATE OR REPLACE SECRET lifecycle_s3 ({', '.join(parts)})")


def connect_duckdb(settings: Settings):
    """A DuckDB connection that reads and writes the lake of ``settings`` (UTC session)."""
    import duckdb

    # INSTALL copies the extension into extension_directory (default ~/.duckdb): keep it, and
    # DuckDB's spill files, under LIFECYCLE_HOME so nothing is written outside the project
    ext_dir = settings.home / "duckdb" / "extensions"
    ext_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "extension_directory": str(ext_dir)})
    load_extension(con, "httpfs")
    # the lake's Iceberg tables (iceberg_scan); the iceberg extension needs avro for manifests
    load_extension(con, "avro")
    load_extension(con, "iceberg")
    con.execute("SET TimeZone = 'UTC'")
    # overwritten objects keep their key; never serve an older copy from the cache
    con.execute("SET enable_external_file_cache = false")
    tmp = settings.home / "duckdb" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET temp_directory = {literal(str(tmp))}")
    # an S3 upload buffers one multipart part per open file, of max_filesize / 10,000 parts:
    # ~80 MB by default, and a partitioned write keeps a file open per partition (30 days of
    # orders: 2.3 GB). 50GB makes parts of 5 MB, S3's minimum, and still allows 50 GB objects
    con.execute("SET s3_uploader_max_filesize = '50GB'")
    # 2GB unless LIFECYCLE_DUCKDB_MEMORY_LIMIT says otherwise (none: DuckDB's own, 80 % of
    # RAM): past it DuckDB spills to temp_directory, or fails
    if settings.engines.duckdb_memory_limit:
        con.execute(f"SET memory_limit = {literal(settings.engines.duckdb_memory_limit)}")
    configure_s3(con, settings)
    return con
