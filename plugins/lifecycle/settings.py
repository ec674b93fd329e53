"""The one settings object: which target we run on, and every endpoint, bucket and host.

Input: the process environment (read when ``Settings.from_env()`` is called, i.e. at task
run time, never at DAG parse time).
Output: a frozen ``Settings`` value that every other module takes as an argument: the target,
the state folder and the stage, with one group per concern (``aws``, ``pg``, ``names``,
``engines``, ``thresholds``, ``maintenance``, ``services``); what combines groups (``pg_dsn``) is on ``Settings``.

Targets:
- ``embedded`` (default): pgserver Postgres on 127.0.0.1 and a moto server on loopback,
  state under ``LIFECYCLE_HOME`` (default ``<repo>/.lifecycle``).
- ``compose``: the docker compose stack (LocalStack + moto for Glue/Lake Formation,
  Postgres service); endpoints come from ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``.
- ``aws``: real AWS; no endpoint overrides, credentials from the default boto3 chain
  (instance role, SSO, env), Postgres host from ``LIFECYCLE_PG_HOST`` (RDS / Redshift).

The source database ``sales`` may live on its own server (``LIFECYCLE_SALES_PG_*``, each
defaulting to the ``LIFECYCLE_PG_*`` value: compose's ``sales-db``, the RDS instance on AWS);
``pg_dsn(db)`` picks the server by database name, so callers never choose.

No module outside this one may contain an endpoint, bucket or host literal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lifecycle.settings_env import (
    DUCKDB_MEMORY_LIMIT,
    SettingsError,
    env_choice,
    env_int,
    env_rate,
    parse_memory_limit,
)

TARGETS = ("embedded", "compose", "aws")

REPO_ROOT = Path(__file__).resolve().parents[2]

# Services that boto3 lets us point at an emulator one by one (AWS_ENDPOINT_URL_<SERVICE>).
AWS_SERVICES = (
    "s3", "kinesis", "firehose", "dynamodb", "dynamodbstreams", "sns", "sqs", "cloudwatch",
    "logs", "glue", "lakeformation", "iam", "sts", "secretsmanager", "athena",
)

EMBEDDED_PG_PORT, EMBEDDED_MOTO_PORT = 55432, 55000


@dataclass(frozen=True)
class AwsSettings:
    """Where and as whom the AWS APIs are called: the region, the emulator's endpoints (none on
    AWS), the static keys (none on AWS: the default credential chain), the account, retries,
    Athena's workgroup and result location, the MWAA source bucket."""

    region: str = "us-east-1"
    endpoint: str | None = None
    service_endpoints: dict[str, str] = field(default_factory=dict)
    access_key_id: str | None = None
    secret_access_key: str | None = None
    account_id: str = "123456789012"  # moto's and LocalStack's account; on AWS from the env
    max_attempts: int = 8  # of every AWS call (botocore's adaptive retries): an outage is waited out
    # Athena (ad hoc lake SQL on the aws target; lifecycle.lake.query); output None: the
    # serving bucket's athena-results/ (Settings.athena_output_location)
    athena_workgroup: str = "primary"
    athena_output: str | None = None
    mwaa_bucket: str | None = None  # Amazon MWAA's source bucket `lifecycle deploy` syncs to

    @classmethod
    def from_env(cls, env: dict[str, str], target: str, moto_port: int) -> AwsSettings:
        """``moto_port``: the embedded moto server's (``Services.moto_port``), the default endpoint."""
        if target == "embedded":
            endpoint = env.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{moto_port}"
            default_key = "testing"
        elif target == "compose":
            endpoint = env.get("AWS_ENDPOINT_URL")
            if not endpoint:
                raise SettingsError("LIFECYCLE_TARGET=compose needs AWS_ENDPOINT_URL (LocalStack), see .env.example")
            default_key = "test"
        else:  # aws: the default credential chain; no emulator
            endpoint, default_key = None, None
        return cls(
            region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1",
            endpoint=endpoint,
            service_endpoints={} if target == "aws" else {
                svc: env[f"AWS_ENDPOINT_URL_{svc.upper()}"]
                for svc in AWS_SERVICES if env.get(f"AWS_ENDPOINT_URL_{svc.upper()}")},
            access_key_id=env.get("AWS_ACCESS_KEY_ID") or default_key,
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or default_key,
            account_id=env.get("LIFECYCLE_AWS_ACCOUNT_ID") or "123456789012",
            max_attempts=max(1, env_int(env, "LIFECYCLE_AWS_MAX_ATTEMPTS", 8)),
            athena_workgroup=env.get("LIFECYCLE_ATHENA_WORKGROUP") or "primary",
            athena_output=env.get("LIFECYCLE_ATHENA_OUTPUT") or None,
            mwaa_bucket=env.get("LIFECYCLE_MWAA_BUCKET") or None,
        )

    def endpoint_for(self, service: str) -> str | None:
        return self.service_endpoints.get(service) or self.endpoint

    def s3_host_port(self) -> tuple[str | None, bool]:
        """(host:port, use_ssl) of the S3 endpoint for DuckDB's httpfs; (None, True) on AWS."""
        url = self.endpoint_for("s3")
        if not url:
            return None, True
        scheme, _, rest = url.partition("://")
        return rest.rstrip("/"), scheme == "https"


@dataclass(frozen=True)
class PostgresSettings:
    """The Postgres servers and logins: the warehouse server (Redshift/RDS stand-in, also
    Airflow's metadata), the `sales` source (RDS stand-in) when it has a server of its own,
    and one login per pipeline stage (lifecycle.security.pg_roles; passwords only from the env,
    None = no password, as on the embedded Postgres that trusts loopback)."""

    host: str = "127.0.0.1"
    port: int = EMBEDDED_PG_PORT
    user: str = "postgres"
    password: str = "postgres"
    sales_db: str = "sales"
    warehouse_db: str = "warehouse"
    airflow_db: str = "airflow"
    # the server of `sales` when it is not the warehouse's (None: the same as host/port/...)
    sales_host: str | None = None
    sales_port: int | None = None
    sales_user: str | None = None
    sales_password: str | None = None
    # the read-only BI role (Metabase, QuickSight): reads schema `serving` of the warehouse only
    bi_reader_user: str = "bi_reader"
    bi_reader_password: str | None = None
    cdc_user: str = "lifecycle_cdc"  # REPLICATION, CONNECT on `sales`, SELECT on the published tables
    cdc_password: str | None = None
    loader_user: str = "lifecycle_loader"  # owns and writes schema `landing` of the warehouse only
    loader_password: str | None = None
    dbt_user: str = "lifecycle_dbt"  # reads `landing`, owns the models' schemas
    dbt_password: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str], target: str) -> PostgresSettings:
        host = env.get("LIFECYCLE_PG_HOST") or {"embedded": "127.0.0.1", "compose": "postgres"}.get(target, "")
        if not host:
            raise SettingsError("LIFECYCLE_TARGET=aws needs LIFECYCLE_PG_HOST (the RDS endpoint)")
        return cls(
            host=host,
            port=env_int(env, "LIFECYCLE_PG_PORT", EMBEDDED_PG_PORT if target == "embedded" else 5432),
            user=env.get("LIFECYCLE_PG_USER") or "postgres",
            password=env.get("LIFECYCLE_PG_PASSWORD") or "postgres",
            sales_db=env.get("LIFECYCLE_SALES_DB") or "sales",
            warehouse_db=env.get("LIFECYCLE_WAREHOUSE_DB") or "warehouse",
            airflow_db=env.get("LIFECYCLE_AIRFLOW_DB") or "airflow",
            sales_port=env_int(env, "LIFECYCLE_SALES_PG_PORT", 0) or None,
            **{f"sales_{part}": env.get(f"LIFECYCLE_SALES_PG_{part.upper()}") or None
               for part in ("host", "user", "password")},
            bi_reader_user=env.get("LIFECYCLE_BI_READER_USER") or "bi_reader",
            bi_reader_password=env.get("LIFECYCLE_BI_READER_PASSWORD") or None,
            # LIFECYCLE_PG_<ROLE>_USER / _PASSWORD of each stage login
            **{f"{role}_{part}": env.get(f"LIFECYCLE_PG_{role.upper()}_{part.upper()}") or default
               for role in ("cdc", "loader", "dbt") for part, default in (("user", f"lifecycle_{role}"),
                                                                          ("password", None))},
        )

    def server(self, database: str) -> tuple[str, int, str, str]:
        """(host, port, admin user, admin password) of the server holding ``database``: the
        sales server for ``sales_db``, the warehouse server (which also holds Airflow's
        metadata) otherwise."""
        if database == self.sales_db:
            return (self.sales_host or self.host, self.sales_port or self.port,
                    self.sales_user or self.user, self.sales_password or self.password)
        return self.host, self.port, self.user, self.password


@dataclass(frozen=True)
class Names:
    """Every resource name, written once: infra/ gets them through its ``${...}`` placeholders
    (lifecycle.infra.spec), the code from here (tests/test_settings.py checks both agree).
    Only the prefix is set from the environment (LIFECYCLE_NAME_PREFIX)."""

    prefix: str = "lifecycle"
    stream: str = "user-activity"
    reviews_table: str = "product_reviews"
    metrics_namespace: str = "Lifecycle"
    observability_schema: str = "observability"
    clean_database: str = "lake_clean"  # Glue database of the clean zone
    curated_database: str = "lake_curated"  # of the curated zone (ML features, training data)

    def bucket(self, zone: str) -> str:
        """Bucket of a lake zone: raw, clean, quarantine, curated, serving, deploy."""
        return f"{self.prefix}-{zone}"

    def glue_job(self, job: str) -> str:
        return f"{self.prefix}-{job}"

    def role(self, stage: str) -> str:
        """IAM role of a pipeline stage (infra/iam/<stage>.json)."""
        return f"{self.prefix}-{stage}"

    @property
    def checkpoint_table(self) -> str:
        return f"{self.prefix}-kinesis-checkpoints"

    @property
    def alert_topic(self) -> str:
        return f"{self.prefix}-alerts"

    @property
    def alert_queue(self) -> str:
        return f"{self.prefix}-alerts-inbox"

    @property
    def alert_dedupe_table(self) -> str:
        return f"{self.prefix}-alert-dedupe"

    @property
    def log_group(self) -> str:
        """CloudWatch Logs group of Airflow's task logs and the pipeline's JSON log lines."""
        return f"/{self.prefix}/airflow"

    @property
    def pii_salt_secret(self) -> str:
        return f"{self.prefix}/pii-salt"


@dataclass(frozen=True)
class Engines:
    """What runs each heavy step and how: the lake jobs (local DuckDB through SQLFrame, or AWS
    Glue), the warehouse (postgres or redshift) and its load method, DuckDB's memory limit,
    Glue's job options, Firehose's compression."""

    # local (DuckDB through SQLFrame) or glue (AWS Glue jobs, aws target only; lifecycle.jobs.glue.deploy)
    jobs: str = "local"
    # postgres (embedded, compose, RDS) or redshift (aws target only; the load becomes a
    # Redshift COPY from S3, lifecycle.warehouse.redshift)
    warehouse: str = "postgres"
    redshift_copy_role_arn: str | None = None
    # how the warehouse load writes into Postgres (lifecycle.warehouse.load): binary (DuckDB's
    # postgres extension, binary COPY), pipe or file (CSV into psycopg2's COPY)
    load_method: str = "binary"
    # DuckDB's memory_limit for the lake jobs and the load: past it DuckDB spills to its temp
    # directory (or fails). 2GB held at 1M and 10M orders (docs/bench.md, "Bounded memory");
    # None (LIFECYCLE_DUCKDB_MEMORY_LIMIT=none): DuckDB's own, 80 % of RAM
    duckdb_memory_limit: str | None = DUCKDB_MEMORY_LIMIT
    # Glue's --job-bookmark-option for the lake jobs (lifecycle.jobs.engine.bookmarks)
    job_bookmark_option: str = "job-bookmark-enable"
    glue_version: str = "5.0"
    glue_worker_type: str = "G.1X"
    glue_workers: int = 2
    firehose_compression: str = "none"

    @classmethod
    def from_env(cls, env: dict[str, str], target: str) -> Engines:
        jobs = env_choice(env, "LIFECYCLE_JOBS_ENGINE", ("local", "glue"))
        if jobs == "glue" and target != "aws":
            raise SettingsError("LIFECYCLE_JOBS_ENGINE=glue needs LIFECYCLE_TARGET=aws (AWS Glue runs the jobs); "
                                "use local elsewhere")
        warehouse = env_choice(env, "LIFECYCLE_WAREHOUSE_ENGINE", ("postgres", "redshift"))
        if warehouse == "redshift" and target != "aws":
            raise SettingsError("LIFECYCLE_WAREHOUSE_ENGINE=redshift needs LIFECYCLE_TARGET=aws; use postgres elsewhere")
        if warehouse == "redshift" and not env.get("LIFECYCLE_REDSHIFT_COPY_ROLE_ARN"):
            raise SettingsError("LIFECYCLE_WAREHOUSE_ENGINE=redshift needs LIFECYCLE_REDSHIFT_COPY_ROLE_ARN "
                                "(the IAM role Redshift assumes to read the clean bucket)")
        return cls(
            jobs=jobs,
            warehouse=warehouse,
            redshift_copy_role_arn=env.get("LIFECYCLE_REDSHIFT_COPY_ROLE_ARN") or None,
            load_method=env_choice(env, "LIFECYCLE_LOAD_METHOD", ("binary", "pipe", "file")),
            duckdb_memory_limit=parse_memory_limit(env.get("LIFECYCLE_DUCKDB_MEMORY_LIMIT"),
                                                   "LIFECYCLE_DUCKDB_MEMORY_LIMIT"),
            job_bookmark_option=env_choice(env, "LIFECYCLE_JOB_BOOKMARK_OPTION", (
                "job-bookmark-enable", "job-bookmark-disable", "job-bookmark-pause")),
            glue_version=env.get("LIFECYCLE_GLUE_VERSION") or "5.0",
            glue_worker_type=env.get("LIFECYCLE_GLUE_WORKER_TYPE") or "G.1X",
            glue_workers=env_int(env, "LIFECYCLE_GLUE_WORKERS", 2),
            firehose_compression=env_choice(env, "LIFECYCLE_FIREHOSE_COMPRESSION", ("none", "gzip")),
        )


@dataclass(frozen=True)
class Thresholds:
    """When DataOps alerts or gives up (lifecycle.dataops)."""

    cdc_lag_alert_seconds: int = 7200
    quarantine_alert_rate: float = 0.2
    run_deadline_minutes: int = 120

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Thresholds:
        return cls(
            cdc_lag_alert_seconds=env_int(env, "LIFECYCLE_CDC_LAG_ALERT_SECONDS", 7200),
            quarantine_alert_rate=env_rate(env, "LIFECYCLE_QUARANTINE_ALERT_RATE", 0.2),
            run_deadline_minutes=env_int(env, "LIFECYCLE_RUN_DEADLINE_MINUTES", 120),
        )


@dataclass(frozen=True)
class Maintenance:
    """How the lake's Iceberg tables are kept (lifecycle.jobs.maintenance, DAG lake_maintenance):
    compaction past a file count per partition, snapshot expiry, orphan files. The ages are
    Iceberg's own defaults (``history.expire.max-snapshot-age-ms`` 5 days; Spark's
    ``remove_orphan_files`` 3 days: a file younger than that may be a commit under way)."""

    max_files_per_partition: int = 8
    snapshots_kept: int = 20  # the newest snapshots of a table are kept whatever their age
    snapshot_max_age_hours: int = 120
    orphan_min_age_hours: int = 72

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Maintenance:
        return cls(
            max_files_per_partition=max(1, env_int(env, "LIFECYCLE_LAKE_MAX_FILES_PER_PARTITION", 8)),
            snapshots_kept=max(1, env_int(env, "LIFECYCLE_LAKE_SNAPSHOTS_KEPT", 20)),
            snapshot_max_age_hours=env_int(env, "LIFECYCLE_LAKE_SNAPSHOT_MAX_AGE_HOURS", 120),
            orphan_min_age_hours=env_int(env, "LIFECYCLE_LAKE_ORPHAN_MIN_AGE_HOURS", 72),
        )


@dataclass(frozen=True)
class Services:
    """The services beside the pipeline: the embedded moto and Airflow ports, Metabase (compose
    `bi` profile, or one you run) with its first admin, the lineage backend (Marquez, compose
    profile `lineage`; None: a local file)."""

    moto_port: int = EMBEDDED_MOTO_PORT
    airflow_port: int = 8080
    metabase_url: str = "http://localhost:3000"
    metabase_admin_email: str = "admin@lifecycle.local"
    metabase_admin_password: str | None = None
    lineage_url: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str], target: str) -> Services:
        return cls(
            moto_port=env_int(env, "LIFECYCLE_MOTO_PORT", EMBEDDED_MOTO_PORT),
            airflow_port=env_int(env, "LIFECYCLE_AIRFLOW_PORT", 8080),
            metabase_url=(env.get("LIFECYCLE_METABASE_URL")
                          or ("http://metabase:3000" if target == "compose" else "http://localhost:3000")),
            metabase_admin_email=env.get("LIFECYCLE_METABASE_ADMIN_EMAIL") or "admin@lifecycle.local",
            metabase_admin_password=env.get("LIFECYCLE_METABASE_ADMIN_PASSWORD") or None,
            lineage_url=env.get("LIFECYCLE_LINEAGE_URL") or None,
        )

    @property
    def airflow_url(self) -> str:
        return f"http://localhost:{self.airflow_port}"


@dataclass(frozen=True)
class Settings:
    """The target, the state folder, the stage a process acts as, and one group per concern:
    ``aws``, ``pg``, ``names``, ``engines``, ``thresholds``, ``maintenance``, ``services``."""

    target: str = "embedded"
    home: Path = REPO_ROOT / ".lifecycle"
    # per-stage AWS credentials (lifecycle.security, docs/security.md): with stage_roles on, a
    # stage's code (``settings.for_stage(...)``) calls AWS as the stage's IAM role, assumed
    # through STS from the process's own credentials. Default on for the aws target.
    stage_roles: bool = False
    stage: str | None = None
    aws: AwsSettings = field(default_factory=AwsSettings)
    pg: PostgresSettings = field(default_factory=PostgresSettings)
    names: Names = field(default_factory=Names)
    engines: Engines = field(default_factory=Engines)
    thresholds: Thresholds = field(default_factory=Thresholds)
    maintenance: Maintenance = field(default_factory=Maintenance)
    services: Services = field(default_factory=Services)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        target = env.get("LIFECYCLE_TARGET", "embedded").strip().lower() or "embedded"
        if target not in TARGETS:
            raise SettingsError(
                f"LIFECYCLE_TARGET={target!r} is unknown; use one of {', '.join(TARGETS)}"
            )
        services = Services.from_env(env, target)
        return cls(
            target=target,
            home=Path(env.get("LIFECYCLE_HOME") or REPO_ROOT / ".lifecycle").resolve(),
            stage_roles=env_choice(env, "LIFECYCLE_STAGE_ROLES",
                                    ("true", "false") if target == "aws" else ("false", "true")) == "true",
            aws=AwsSettings.from_env(env, target, services.moto_port),
            pg=PostgresSettings.from_env(env, target),
            names=Names(prefix=env.get("LIFECYCLE_NAME_PREFIX") or "lifecycle"),
            engines=Engines.from_env(env, target),
            thresholds=Thresholds.from_env(env),
            maintenance=Maintenance.from_env(env),
            services=services,
        )

    # ---- AWS ----------------------------------------------------------------------------
    @property
    def log_group_arn(self) -> str:
        return f"arn:aws:logs:{self.aws.region}:{self.aws.account_id}:log-group:{self.names.log_group}"

    @property
    def athena_output_location(self) -> str:
        """Where Athena writes query results (LIFECYCLE_ATHENA_OUTPUT, default the serving
        bucket's ``athena-results/``)."""
        return self.aws.athena_output or f"s3://{self.names.bucket('serving')}/athena-results/"

    def for_stage(self, stage: str) -> Settings:
        """These settings as seen by a pipeline stage: its AWS clients use the stage's IAM role
        when ``stage_roles`` is on (``lifecycle.clients.aws``), else nothing changes."""
        from dataclasses import replace

        return replace(self, stage=stage) if self.stage_roles else self

    # ---- Postgres -----------------------------------------------------------------------
    PG_ROLES = ("admin", "cdc", "loader", "dbt", "bi_reader")

    def pg_login(self, role: str = "admin", database: str | None = None) -> tuple[str, str | None]:
        """(user, password) of a Postgres role: ``admin`` (setup, operations; the admin of the
        server holding ``database``), ``cdc``, ``loader``, ``dbt``, ``bi_reader``. On Redshift
        the loader and dbt use the admin login (the roles are created by the cluster's admin
        there, docs/security.md). Off the embedded target a stage role without a password set
        uses the admin login."""
        if role not in self.PG_ROLES:
            raise SettingsError(f"unknown Postgres role {role!r}; use one of {', '.join(self.PG_ROLES)}")
        pg = self.pg
        admin = pg.server(database or (pg.sales_db if role == "cdc" else pg.warehouse_db))[2:]
        if role == "admin" or (self.engines.warehouse == "redshift" and role in ("loader", "dbt")):
            return admin
        user, password = {"cdc": (pg.cdc_user, pg.cdc_password),
                          "loader": (pg.loader_user, pg.loader_password),
                          "dbt": (pg.dbt_user, pg.dbt_password),
                          "bi_reader": (pg.bi_reader_user, pg.bi_reader_password)}[role]
        if password is None and self.target != "embedded" and role != "bi_reader":
            # a server that checks passwords and no password set for this stage's role yet:
            # the stage keeps the admin login (docs/security.md, "Postgres roles")
            return admin
        return user, password

    def pg_dsn(self, database: str, role: str = "admin") -> str:
        """libpq keyword DSN (works for psycopg2 and psycopg 3), logged in as ``role``."""
        host, port = self.pg.server(database)[:2]
        user, password = self.pg_login(role, database)
        dsn = f"host={host} port={port} dbname={database} user={user}"
        return f"{dsn} password={password}" if password else dsn

    def pg_url(self, database: str, driver: str = "postgresql") -> str:
        host, port, user, password = self.pg.server(database)
        return f"{driver}://{user}:{password}@{host}:{port}/{database}"

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

    @property
    def lineage_file(self) -> Path:
        """OpenLineage events (one JSON a line) when no lineage backend URL is set."""
        return self.home / "lineage" / "openlineage.jsonl"

    @property
    def observability_page(self) -> Path:
        return self.home / "observability.html"
