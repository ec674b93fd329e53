"""Preflight: check the settings and connections before a run, and name the setting at fault.

Input: ``Settings`` (or the environment, for ``check_env``). Output: ``check`` returns the
list of what it verified, or raises ``PreflightError`` whose message names the setting
(environment variable) to fix and what was wrong: an unknown target, an unreachable AWS
endpoint, missing or rejected credentials, a missing bucket (infra not applied, or a wrong
``LIFECYCLE_NAME_PREFIX``), an unreachable Postgres, a missing database.

Why: without it, such a mistake surfaces as a stack trace deep inside the first task that
touches the service, after its retries and their backoff (minutes later). ``lifecycle run``
and ``lifecycle preflight`` call it first; the calls here do not retry and time out fast.
"""

from __future__ import annotations

from lifecycle.settings import Settings, SettingsError


class PreflightError(RuntimeError):
    """A setting or connection is wrong; the message names it."""


def _aws_setting(settings: Settings) -> str:
    if settings.target == "embedded":
        return "AWS_ENDPOINT_URL (or LIFECYCLE_MOTO_PORT)"
    if settings.target == "compose":
        return "AWS_ENDPOINT_URL"
    return "the AWS region/network (AWS_DEFAULT_REGION)"


def check_aws(settings: Settings) -> str:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    session = boto3.session.Session(aws_access_key_id=settings.aws.access_key_id,
                                    aws_secret_access_key=settings.aws.secret_access_key,
                                    region_name=settings.aws.region)
    if session.get_credentials() is None:
        raise PreflightError("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                             "(or AWS_PROFILE / an instance role on the aws target)")
    s3 = session.client("s3", endpoint_url=settings.aws.endpoint_for("s3"),
                        config=Config(retries={"max_attempts": 1, "mode": "standard"},
                                      connect_timeout=3, read_timeout=10))
    bucket = settings.names.bucket("raw")
    endpoint = settings.aws.endpoint_for("s3") or "AWS"
    try:
        s3.head_bucket(Bucket=bucket)
    except EndpointConnectionError as exc:
        raise PreflightError(f"cannot reach the AWS endpoint {endpoint}: check {_aws_setting(settings)} "
                             f"(is the emulator running? `lifecycle services status`)") from exc
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code"))
        if code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken"):
            raise PreflightError(f"the AWS credentials were rejected by {endpoint} ({code}): check "
                                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from exc
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise PreflightError(f"bucket {bucket} not found at {endpoint}: run `lifecycle infra apply`, "
                                 f"or check LIFECYCLE_NAME_PREFIX={settings.names.prefix!r}") from exc
        raise PreflightError(f"AWS endpoint {endpoint} answered {code} for bucket {bucket}: check "
                             f"{_aws_setting(settings)}") from exc
    except BotoCoreError as exc:
        raise PreflightError(f"AWS endpoint {endpoint}: {exc}; check {_aws_setting(settings)}") from exc
    return f"aws: {endpoint} reachable, bucket {bucket} exists"


def check_postgres(settings: Settings) -> list[str]:
    import psycopg2

    done = []
    for database, var in ((settings.pg.sales_db, "LIFECYCLE_SALES_DB"),
                          (settings.pg.warehouse_db, "LIFECYCLE_WAREHOUSE_DB")):
        try:
            psycopg2.connect(settings.pg_dsn(database), connect_timeout=3).close()
        except psycopg2.OperationalError as exc:
            text = str(exc).strip()
            if "does not exist" in text and "database" in text:
                raise PreflightError(f"database {database!r} does not exist on {settings.pg.host}:"
                                     f"{settings.pg.port}: check {var}") from exc
            if "authentication" in text or "password" in text:
                raise PreflightError(f"Postgres refused user {settings.pg.user!r}: check LIFECYCLE_PG_USER "
                                     f"and LIFECYCLE_PG_PASSWORD ({text.splitlines()[0]})") from exc
            raise PreflightError(f"cannot connect to Postgres at {settings.pg.host}:{settings.pg.port}: "
                                 f"check LIFECYCLE_PG_HOST and LIFECYCLE_PG_PORT "
                                 f"({text.splitlines()[0] if text else type(exc).__name__})") from exc
        done.append(f"postgres: {database} on {settings.pg.host}:{settings.pg.port}")
    return done


def check(settings: Settings) -> list[str]:
    """Every check, in order; raises ``PreflightError`` at the first failure."""
    return [check_aws(settings), *check_postgres(settings)]


def check_env(env: dict[str, str] | None = None) -> tuple[Settings, list[str]]:
    """``Settings.from_env`` then ``check``: a wrong setting raises ``PreflightError``."""
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        raise PreflightError(str(exc)) from exc
    return settings, check(settings)


def preflight_command() -> None:
    """Check the settings and the connections (AWS endpoint, credentials, buckets, Postgres).

    Names the setting at fault and exits 2; `lifecycle run` and `recover` run it first.

    \b
    Example:
      lifecycle preflight
      LIFECYCLE_TARGET=compose lifecycle preflight
    """
    import typer

    try:
        _, done = check_env()
    except PreflightError as exc:
        typer.secho(f"preflight: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    for line in done:
        typer.echo(f"ok  {line}")


def require(settings: Settings) -> None:
    """For commands: run ``check`` and exit 2 with the message (no stack trace) on failure."""
    import typer

    try:
        check(settings)
    except PreflightError as exc:
        typer.secho(f"preflight: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
