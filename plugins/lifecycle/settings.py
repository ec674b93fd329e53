"""The one settings object: which target we run on, and every endpoint, bucket and host.

Input: the process environment (read when ``Settings.from_env()`` is called, i.e. at task
run time, never at DAG parse time).
Output: a frozen ``Settings`` value that every other module takes as an argument.

Targets:
- ``embedded`` (default): pgserver Postgres on 127.0.0.1 and a moto server on loopback,
  state under ``LIFECYCLE_HOME`` (default ``<repo>/.lifecycle``).
- ``compose``: the docker compose stack (LocalStack + moto for Glue/Lake Formation,
  Postgres service); endpoints come from ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``.
- ``aws``: real AWS; no endpoint overrides, credentials from the default boto3 chain
  (instance role, SSO, env), Postgres host from ``LIFECYCLE_PG_HOST`` (RDS / Redshift).

The source database ``sales`` may live on its own server (``LIFECYCLE_SALES_PG_HOST`` /
``_PORT`` / ``_USER`` / ``_PASSWORD``, each defaulting to the ``LIFECYCLE_PG_*`` value): the
compose stack runs it as the ``sales-db`` service on the ``sources`` network, and on AWS it
is the RDS instance while the warehouse is another endpoint. ``pg_dsn(db)`` picks the server
by database name, so callers never choose.

No module outside this one may contain an endpoint, bucket or host literal.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

TARGETS = ("embedded", "compose", "aws")

REPO_ROOT = Path(__file__).resolve().parents[2]

# Services that boto3 lets us point at an emulator one by one (AWS_ENDPOINT_URL_<SERVICE>).
AWS_SERVICES = (
    "s3", "kinesis", "firehose", "dynamodb", "dynamodbstreams", "sns", "sqs", "cloudwatch",
    "logs", "glue", "lakeformation", "iam", "sts", "secretsmanager", "athena",
)

EMBEDDED_DEFAULTS = {
    "pg_port": 55432,
    "moto_port": 55000,
}


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and what to do."""


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a whole number (a port or a number of seconds)") from exc


def _env_rate(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a number between 0 and 1") from exc
    if not 0 <= value <= 1:
        raise SettingsError(f"{name}={raw!r} is not a number between 0 and 1")
    return value


def _env_choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or choices[0]).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name}={value!r}: use one of {', '.join(choices)}")
    return value


DUCKDB_MEMORY_LIMIT = "2GB"
# what DuckDB's memory_limit accepts: a number and a unit (a bare number is an error there);
# K, KB, kilobyte... are powers of 1000, KiB... of 1024
_MEMORY_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:(i)b|b)?|(kilo|mega|giga|tera)bytes?|b|bytes?)",
                          re.IGNORECASE)
# below this a lake job cannot even start (DuckDB needs a few MB per thread)
_MEMORY_MIN = 128 * 10**6


def parse_memory_limit(raw: str | None, name: str, default: str = DUCKDB_MEMORY_LIMIT) -> str | None:
    """A DuckDB memory size (``2GB``, ``512MB``, ``4GiB``) of at least 128MB; None or empty:
    ``default``; ``none``: None, DuckDB's own limit (80 % of RAM). ``name`` is the setting (or
    option) the value came from, for the error."""
    raw = (raw or "").strip()
    if not raw:
        return default
    if raw.lower() == "none":
        return None
    size = _MEMORY_SIZE.fullmatch(raw)
    if size:
        unit, binary = (size.group(2) or size.group(4) or " ")[0].lower(), bool(size.group(3))
        power = " kmgt".index(unit)
        if float(size.group(1)) * (1024 if binary else 1000) ** power >= _MEMORY_MIN:
            return raw
    raise SettingsError(f"{name}={raw!r} is not a memory size of at least 128MB such as 2GB, 512MB or "
                        "4GiB (none: DuckDB's own limit, 80 % of RAM)")


def _jobs_engine(env: dict[str, str], target: str) -> str:
    engine = _env_choice(env, "LIFECYCLE_JOBS_ENGINE", ("local", "glue"))
    if engine == "glue" and target != "aws":
        raise SettingsError("LIFECYCLE_JOBS_ENGINE=glue needs LIFECYCLE_TARGET=aws (AWS Glue runs the jobs); "
                            "use local elsewhere")
    return engine


def _warehouse_engine(env: dict[str, str], target: str) -> str:
    engine = _env_choice(env, "LIFECYCLE_WAREHOUSE_ENGINE", ("postgres", "redshift"))
    if engine == "redshift" and target != "aws":
        raise SettingsError("LIFECYCLE_WAREHOUSE_ENGINE=redshift needs LIFECYCLE_TARGET=aws; use postgres elsewhere")
    if engine == "redshift" and not env.get("LIFECYCLE_REDSHIFT_COPY_ROLE_ARN"):
        raise SettingsError("LIFECYCLE_WAREHOUSE_ENGINE=redshift needs LIFECYCLE_REDSHIFT_COPY_ROLE_ARN "
                            "(the IAM role Redshift assumes to read the clean bucket)")
    return engine


@dataclass(frozen=True)
class Settings:
    target: str = "embedded"
    home: Path = REPO_ROOT / ".lifecycle"
    region: str = "us-east-1"
    name_prefix: str = "lifecycle"
    # AWS
    aws_endpoint: str | None = None
    service_endpoints: dict[str, str] = field(default_factory=dict)
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    # per-stage AWS credentials (lifecycle.security, docs/security.md): with stage_roles on, a
    # stage's code (``settings.for_stage(...)``) calls AWS as the stage's IAM role, assumed
    # through STS from the process's own credentials. Default on for the aws target.
    stage_roles: bool = False
    stage: str | None = None
    # Postgres (RDS stand-in `sales`, Redshift stand-in `warehouse`, Airflow metadata `airflow`)
    pg_host: str = "127.0.0.1"
    pg_port: int = EMBEDDED_DEFAULTS["pg_port"]
    pg_user: str = "postgres"
    pg_password: str = "postgres"
    sales_db: str = "sales"
    warehouse_db: str = "warehouse"
    # the server of `sales` when it is not the warehouse's (None: the same as pg_*)
    sales_pg_host: str | None = None
    sales_pg_port: int | None = None
    sales_pg_user: str | None = None
    sales_pg_password: str | None = None
    airflow_db: str = "airflow"
    # the read-only BI role (Metabase, QuickSight): reads schema `serving` of the warehouse only
    bi_reader_user: str = "bi_reader"
    bi_reader_password: str | None = None
    # one login per pipeline stage (lifecycle.security.pg_roles; passwords only from the env,
    # None = no password, as on the embedded Postgres that trusts loopback)
    cdc_user: str = "lifecycle_cdc"  # REPLICATION, CONNECT on `sales`, SELECT on the published tables
    cdc_password: str | None = None
    loader_user: str = "lifecycle_loader"  # owns and writes schema `landing` of the warehouse only
    loader_password: str | None = None
    dbt_user: str = "lifecycle_dbt"  # reads `landing`, owns the models' schemas
    dbt_password: str | None = None
    # Metabase (compose `bi` profile, or one you run): where its API is, its first admin
    metabase_url: str = "http://localhost:3000"
    metabase_admin_email: str = "admin@lifecycle.local"
    metabase_admin_password: str | None = None
    # embedded services
    moto_port: int = EMBEDDED_DEFAULTS["moto_port"]
    airflow_port: int = 8080
    # operations thresholds
    cdc_lag_alert_seconds: int = 7200
    quarantine_alert_rate: float = 0.2
    firehose_compression: str = "none"
    # Glue's --job-bookmark-option for the lake jobs (lifecycle.jobs.engine.bookmarks)
    job_bookmark_option: str = "job-bookmark-enable"
    # Athena (ad hoc lake SQL on the aws target; lifecycle.lake.query)
    athena_workgroup: str = "primary"
    athena_output: str | None = None
    # where the Glue-style jobs run: local (DuckDB through SQLFrame) or glue (AWS Glue jobs,
    # aws target only; lifecycle.jobs.glue.deploy)
    jobs_engine: str = "local"
    # the warehouse: postgres (embedded, compose, RDS) or redshift (aws target only; the load
    # becomes a Redshift COPY from S3, lifecycle.warehouse.redshift)
    warehouse_engine: str = "postgres"
    redshift_copy_role_arn: str | None = None
    glue_version: str = "5.0"
    glue_worker_type: str = "G.1X"
    glue_workers: int = 2
    # DataOps
    aws_account_id: str = "123456789012"  # moto's and LocalStack's account; on AWS from the env
    run_deadline_minutes: int = 120
    # attempts of every AWS call (botocore's adaptive retry mode, exponential backoff with
    # jitter): an endpoint that is away for a while is waited for before a task fails
    aws_max_attempts: int = 8
    lineage_url: str | None = None  # Marquez (compose profile `lineage`); None: a local file
    # Amazon MWAA: the environment's source bucket `lifecycle deploy` syncs to
    mwaa_bucket: str | None = None
    # DuckDB's memory_limit for the lake jobs and the load: past it DuckDB spills to its temp
    # directory (or fails). 2GB held at 1M and 10M orders (docs/bench.md, "Bounded memory");
    # None (LIFECYCLE_DUCKDB_MEMORY_LIMIT=none): DuckDB's own, 80 % of RAM
    duckdb_memory_limit: str | None = DUCKDB_MEMORY_LIMIT
    # how the warehouse load writes into Postgres (lifecycle.warehouse.load): binary (DuckDB's
    # postgres extension, binary COPY), pipe or file (CSV into psycopg2's COPY)
    load_method: str = "binary"

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        target = env.get("LIFECYCLE_TARGET", "embedded").strip().lower() or "embedded"
        if target not in TARGETS:
            raise SettingsError(
                f"LIFECYCLE_TARGET={target!r} is unknown; use one of {', '.join(TARGETS)}"
            )
        home = Path(env.get("LIFECYCLE_HOME") or REPO_ROOT / ".lifecycle").resolve()
        moto_port = _env_int(env, "LIFECYCLE_MOTO_PORT", EMBEDDED_DEFAULTS["moto_port"])
        pg_port = _env_int(
            env, "LIFECYCLE_PG_PORT", EMBEDDED_DEFAULTS["pg_port"] if target == "embedded" else 5432
        )
        service_endpoints = {
            svc: env[f"AWS_ENDPOINT_URL_{svc.upper()}"]
            for svc in AWS_SERVICES
            if env.get(f"AWS_ENDPOINT_URL_{svc.upper()}")
        }
        if target == "embedded":
            aws_endpoint = env.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{moto_port}"
            key_id = env.get("AWS_ACCESS_KEY_ID") or "testing"
            secret = env.get("AWS_SECRET_ACCESS_KEY") or "testing"
            pg_host = env.get("LIFECYCLE_PG_HOST") or "127.0.0.1"
        elif target == "compose":
            aws_endpoint = env.get("AWS_ENDPOINT_URL")
            if not aws_endpoint:
                raise SettingsError(
                    "LIFECYCLE_TARGET=compose needs AWS_ENDPOINT_URL (LocalStack), see .env.example"
                )
            key_id = env.get("AWS_ACCESS_KEY_ID") or "test"
            secret = env.get("AWS_SECRET_ACCESS_KEY") or "test"
            pg_host = env.get("LIFECYCLE_PG_HOST") or "postgres"
        else:  # aws: the default credential chain; no emulator
            aws_endpoint = None
            service_endpoints = {}
            key_id = env.get("AWS_ACCESS_KEY_ID")
            secret = env.get("AWS_SECRET_ACCESS_KEY")
            pg_host = env.get("LIFECYCLE_PG_HOST") or ""
            if not pg_host:
                raise SettingsError("LIFECYCLE_TARGET=aws needs LIFECYCLE_PG_HOST (the RDS endpoint)")
        return cls(
            target=target,
            home=home,
            region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1",
            name_prefix=env.get("LIFECYCLE_NAME_PREFIX") or "lifecycle",
            aws_endpoint=aws_endpoint,
            service_endpoints=service_endpoints,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            pg_host=pg_host,
            pg_port=pg_port,
            pg_user=env.get("LIFECYCLE_PG_USER") or "postgres",
            pg_password=env.get("LIFECYCLE_PG_PASSWORD") or "postgres",
            sales_db=env.get("LIFECYCLE_SALES_DB") or "sales",
            sales_pg_host=env.get("LIFECYCLE_SALES_PG_HOST") or None,
            sales_pg_port=_env_int(env, "LIFECYCLE_SALES_PG_PORT", 0) or None,
            sales_pg_user=env.get("LIFECYCLE_SALES_PG_USER") or None,
            sales_pg_password=env.get("LIFECYCLE_SALES_PG_PASSWORD") or None,
            warehouse_db=env.get("LIFECYCLE_WAREHOUSE_DB") or "warehouse",
            airflow_db=env.get("LIFECYCLE_AIRFLOW_DB") or "airflow",
            bi_reader_user=env.get("LIFECYCLE_BI_READER_USER") or "bi_reader",
            bi_reader_password=env.get("LIFECYCLE_BI_READER_PASSWORD") or None,
            stage_roles=_env_choice(env, "LIFECYCLE_STAGE_ROLES",
                                    ("true", "false") if target == "aws" else ("false", "true")) == "true",
            cdc_user=env.get("LIFECYCLE_PG_CDC_USER") or "lifecycle_cdc",
            cdc_password=env.get("LIFECYCLE_PG_CDC_PASSWORD") or None,
            loader_user=env.get("LIFECYCLE_PG_LOADER_USER") or "lifecycle_loader",
            loader_password=env.get("LIFECYCLE_PG_LOADER_PASSWORD") or None,
            dbt_user=env.get("LIFECYCLE_PG_DBT_USER") or "lifecycle_dbt",
            dbt_password=env.get("LIFECYCLE_PG_DBT_PASSWORD") or None,
            metabase_url=(env.get("LIFECYCLE_METABASE_URL")
                          or ("http://metabase:3000" if target == "compose" else "http://localhost:3000")),
            metabase_admin_email=env.get("LIFECYCLE_METABASE_ADMIN_EMAIL") or "admin@lifecycle.local",
            metabase_admin_password=env.get("LIFECYCLE_METABASE_ADMIN_PASSWORD") or None,
            moto_port=moto_port,
            airflow_port=_env_int(env, "LIFECYCLE_AIRFLOW_PORT", 8080),
            cdc_lag_alert_seconds=_env_int(env, "LIFECYCLE_CDC_LAG_ALERT_SECONDS", 7200),
            quarantine_alert_rate=_env_rate(env, "LIFECYCLE_QUARANTINE_ALERT_RATE", 0.2),
            firehose_compression=_env_choice(env, "LIFECYCLE_FIREHOSE_COMPRESSION", ("none", "gzip")),
            job_bookmark_option=_env_choice(env, "LIFECYCLE_JOB_BOOKMARK_OPTION", (
                "job-bookmark-enable", "job-bookmark-disable", "job-bookmark-pause")),
            athena_workgroup=env.get("LIFECYCLE_ATHENA_WORKGROUP") or "primary",
            athena_output=env.get("LIFECYCLE_ATHENA_OUTPUT") or None,
            jobs_engine=_jobs_engine(env, target),
            warehouse_engine=_warehouse_engine(env, target),
            redshift_copy_role_arn=env.get("LIFECYCLE_REDSHIFT_COPY_ROLE_ARN") or None,
            glue_version=env.get("LIFECYCLE_GLUE_VERSION") or "5.0",
            glue_worker_type=env.get("LIFECYCLE_GLUE_WORKER_TYPE") or "G.1X",
            glue_workers=_env_int(env, "LIFECYCLE_GLUE_WORKERS", 2),
            aws_account_id=env.get("LIFECYCLE_AWS_ACCOUNT_ID") or "123456789012",
            run_deadline_minutes=_env_int(env, "LIFECYCLE_RUN_DEADLINE_MINUTES", 120),
            aws_max_attempts=max(1, _env_int(env, "LIFECYCLE_AWS_MAX_ATTEMPTS", 8)),
            lineage_url=env.get("LIFECYCLE_LINEAGE_URL") or None,
            mwaa_bucket=env.get("LIFECYCLE_MWAA_BUCKET") or None,
            duckdb_memory_limit=parse_memory_limit(env.get("LIFECYCLE_DUCKDB_MEMORY_LIMIT"),
                                                   "LIFECYCLE_DUCKDB_MEMORY_LIMIT"),
            load_method=_env_choice(env, "LIFECYCLE_LOAD_METHOD", ("binary", "pipe", "file")),
        )

    # ---- AWS names ----------------------------------------------------------------------
    def bucket(self, zone: str) -> str:
        """Bucket of a lake zone: raw, clean, quarantine, curated, serving, deploy."""
        return f"{self.name_prefix}-{zone}"

    @property
    def stream_name(self) -> str:
        return "user-activity"

    @property
    def reviews_table(self) -> str:
        return "product_reviews"

    @property
    def checkpoint_table(self) -> str:
        return f"{self.name_prefix}-kinesis-checkpoints"

    @property
    def alert_topic(self) -> str:
        return f"{self.name_prefix}-alerts"

    @property
    def alert_queue(self) -> str:
        return f"{self.name_prefix}-alerts-inbox"

    @property
    def metrics_namespace(self) -> str:
        return "Lifecycle"

    @property
    def log_group(self) -> str:
        """CloudWatch Logs group of Airflow's task logs and the pipeline's JSON log lines."""
        return f"/{self.name_prefix}/airflow"

    @property
    def log_group_arn(self) -> str:
        return f"arn:aws:logs:{self.region}:{self.aws_account_id}:log-group:{self.log_group}"

    @property
    def alert_dedupe_table(self) -> str:
        return f"{self.name_prefix}-alert-dedupe"

    @property
    def observability_schema(self) -> str:
        return "observability"

    @property
    def lineage_file(self) -> Path:
        """OpenLineage events (one JSON a line) when no lineage backend URL is set."""
        return self.home / "lineage" / "openlineage.jsonl"

    @property
    def observability_page(self) -> Path:
        return self.home / "observability.html"

    @property
    def glue_database(self) -> str:
        return "lake_clean"

    @property
    def curated_glue_database(self) -> str:
        """Glue database of the curated zone (ML features, training data)."""
        return "lake_curated"

    @property
    def athena_output_location(self) -> str:
        """Where Athena writes query results (LIFECYCLE_ATHENA_OUTPUT, default the serving
        bucket's ``athena-results/``)."""
        return self.athena_output or f"s3://{self.bucket('serving')}/athena-results/"

    def glue_job_name(self, job: str) -> str:
        return f"{self.name_prefix}-{job}"

    def role_name(self, stage: str) -> str:
        """IAM role of a pipeline stage (infra/iam/<stage>.json)."""
        return f"{self.name_prefix}-{stage}"

    def for_stage(self, stage: str) -> Settings:
        """These settings as seen by a pipeline stage: its AWS clients use the stage's IAM role
        when ``stage_roles`` is on (``lifecycle.clients.aws``), else nothing changes."""
        from dataclasses import replace

        return replace(self, stage=stage) if self.stage_roles else self

    @property
    def pii_salt_secret(self) -> str:
        return f"{self.name_prefix}/pii-salt"

    def endpoint_for(self, service: str) -> str | None:
        return self.service_endpoints.get(service) or self.aws_endpoint

    def s3_host_port(self) -> tuple[str | None, bool]:
        """(host:port, use_ssl) of the S3 endpoint for DuckDB's httpfs; (None, True) on AWS."""
        url = self.endpoint_for("s3")
        if not url:
            return None, True
        scheme, _, rest = url.partition("://")
        return rest.rstrip("/"), scheme == "https"

    @property
    def airflow_url(self) -> str:
        return f"http://localhost:{self.airflow_port}"

    # ---- Postgres -----------------------------------------------------------------------
    def pg_server(self, database: str) -> tuple[str, int, str, str]:
        """(host, port, admin user, admin password) of the server holding ``database``: the
        sales server for ``sales_db``, the warehouse server (which also holds Airflow's
        metadata) otherwise."""
        if database == self.sales_db:
            return (self.sales_pg_host or self.pg_host, self.sales_pg_port or self.pg_port,
                    self.sales_pg_user or self.pg_user, self.sales_pg_password or self.pg_password)
        return self.pg_host, self.pg_port, self.pg_user, self.pg_password

    PG_ROLES = ("admin", "cdc", "loader", "dbt", "bi_reader")

    def pg_login(self, role: str = "admin", database: str | None = None) -> tuple[str, str | None]:
        """(user, password) of a Postgres role: ``admin`` (setup, operations; the admin of the
        server holding ``database``), ``cdc``, ``loader``, ``dbt``, ``bi_reader``. On Redshift
        the loader and dbt use the admin login (the roles are created by the cluster's admin
        there, docs/security.md). Off the embedded target a stage role without a password set
        uses the admin login."""
        if role not in self.PG_ROLES:
            raise SettingsError(f"unknown Postgres role {role!r}; use one of {', '.join(self.PG_ROLES)}")
        admin = self.pg_server(database or (self.sales_db if role == "cdc" else self.warehouse_db))[2:]
        if role == "admin" or (self.warehouse_engine == "redshift" and role in ("loader", "dbt")):
            return admin
        user, password = {"cdc": (self.cdc_user, self.cdc_password),
                          "loader": (self.loader_user, self.loader_password),
                          "dbt": (self.dbt_user, self.dbt_password),
                          "bi_reader": (self.bi_reader_user, self.bi_reader_password)}[role]
        if password is None and self.target != "embedded" and role != "bi_reader":
            # a server that checks passwords and no password set for this stage's role yet:
            # the stage keeps the admin login (docs/security.md, "Postgres roles")
            return admin
        return user, password

    def pg_dsn(self, database: str, role: str = "admin") -> str:
        """libpq keyword DSN (works for psycopg2 and psycopg 3), logged in as ``role``."""
        host, port = self.pg_server(database)[:2]
        user, password = self.pg_login(role, database)
        dsn = f"host={host} port={port} dbname={database} user={user}"
        return f"{dsn} password={password}" if password else dsn

    def pg_url(self, database: str, driver: str = "postgresql") -> str:
        host, port, user, password = self.pg_server(database)
        return f"{driver}://{user}:{password}@{host}:{port}/{database}"

    @property
    def sales_dsn(self) -> str:
        return self.pg_dsn(self.sales_db)

    @property
    def warehouse_dsn(self) -> str:
        return self.pg_dsn(self.warehouse_db)

    # ---- embedded state -----------------------------------------------------------------
    @property
    def pg_data_dir(self) -> Path:
        return self.home / "pgdata"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def dashboard_path(self) -> Path:
        return self.home / "dashboard.html"
