"""The environment Airflow runs with, derived from the one ``Settings`` object.

Input: ``Settings``. Output: a dict of environment variables: ``AIRFLOW_HOME`` and
``AIRFLOW__*`` configuration (metadata in the ``airflow`` database of the same Postgres,
DAG and plugin folders of this repo), the connections ``aws_default``, ``sales_db`` and
``warehouse_db`` as ``AIRFLOW_CONN_*`` (endpoint overrides for emulators in the AWS
connection's extras), and the ``LIFECYCLE_*`` settings themselves so tasks see the same
target. Nothing secret is written to disk: these live only in the process environment.

DataOps wiring: task logs go to CloudWatch Logs through the Amazon provider's remote
logging (``cloudwatch://<log group ARN>`` over the ``aws_default`` connection, so the same
endpoint override reaches moto or LocalStack; the supervisor of every real task run streams
to it, local files are kept too), and OpenLineage events go to a local JSON-lines file, or
to Marquez when ``LIFECYCLE_LINEAGE_URL`` is set.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

from lifecycle.settings import REPO_ROOT, Settings


def airflow_env(settings: Settings, api_port: int | None = None) -> dict[str, str]:
    home = settings.home / "airflow"
    api_port = api_port or settings.services.airflow_port
    aws_extra = {"region_name": settings.aws.region}
    if settings.aws.endpoint:
        aws_extra["endpoint_url"] = settings.aws.endpoint
    for svc, url in settings.aws.service_endpoints.items():
        aws_extra.setdefault("service_config", {})[svc] = {"endpoint_url": url}
    aws_conn = {"conn_type": "aws", "extra": aws_extra}
    if settings.aws.access_key_id:
        aws_conn.update(login=settings.aws.access_key_id, password=settings.aws.secret_access_key)

    def pg_conn(db: str) -> str:
        host, port, user, password = settings.pg.server(db)
        return json.dumps({"conn_type": "postgres", "host": host, "port": port,
                           "login": user, "password": password, "schema": db})

    if settings.services.lineage_url:
        lineage_transport = {"type": "http", "url": settings.services.lineage_url, "endpoint": "api/v1/lineage"}
    else:
        lineage_transport = {"type": "file", "log_file_path": str(settings.lineage_file), "append": True}
        settings.lineage_file.parent.mkdir(parents=True, exist_ok=True)

    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": settings.pg_url(settings.pg.airflow_db, "postgresql+psycopg2"),
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": replace(settings.services, airflow_port=api_port).airflow_url,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__COSMOS__CACHE_DIR": str(settings.home / "cosmos_cache"),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "lifecycle",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(lineage_transport),
        # emit from a thread of the task process instead of a fork of it (dag.test runs in-process)
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
        "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": f"cloudwatch://{settings.log_group_arn}",
        "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_default",
        "AIRFLOW__LOGGING__DELETE_LOCAL_LOGS": "False",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws_conn),
        "AIRFLOW_CONN_SALES_DB": pg_conn(settings.pg.sales_db),
        "AIRFLOW_CONN_WAREHOUSE_DB": pg_conn(settings.pg.warehouse_db),
        "DBT_TARGET": os.environ.get("DBT_TARGET", "embedded" if settings.target == "embedded" else settings.target),
        "LIFECYCLE_TARGET": settings.target,
        "LIFECYCLE_HOME": str(settings.home),
        "LIFECYCLE_PG_HOST": settings.pg.host,
        "LIFECYCLE_PG_PORT": str(settings.pg.port),
        "LIFECYCLE_PG_USER": settings.pg.user,
        "LIFECYCLE_PG_PASSWORD": settings.pg.password,
        "LIFECYCLE_MOTO_PORT": str(settings.services.moto_port),
        "LIFECYCLE_AIRFLOW_PORT": str(api_port),
        "LIFECYCLE_NAME_PREFIX": settings.names.prefix,
        "LIFECYCLE_AWS_ACCOUNT_ID": settings.aws.account_id,
        "LIFECYCLE_RUN_DEADLINE_MINUTES": str(settings.thresholds.run_deadline_minutes),
        "LIFECYCLE_STAGE_ROLES": "true" if settings.stage_roles else "false",
        "AWS_DEFAULT_REGION": settings.aws.region,
        # local endpoints only: never route the emulator or the execution API through a proxy
        "NO_PROXY": "*",
    }
    if settings.aws.endpoint:
        env["AWS_ENDPOINT_URL"] = settings.aws.endpoint
    if settings.aws.access_key_id:
        env["AWS_ACCESS_KEY_ID"] = settings.aws.access_key_id
        env["AWS_SECRET_ACCESS_KEY"] = settings.aws.secret_access_key or ""
    for svc, url in settings.aws.service_endpoints.items():
        env[f"AWS_ENDPOINT_URL_{svc.upper()}"] = url
    if settings.services.lineage_url:
        env["LIFECYCLE_LINEAGE_URL"] = settings.services.lineage_url
    # a source database on its own server (compose's sales-db, RDS, the benchmark's source)
    for name in ("host", "port", "user", "password"):
        value = getattr(settings.pg, f"sales_{name}")
        if value:
            env[f"LIFECYCLE_SALES_PG_{name.upper()}"] = str(value)
    # the stage logins of lifecycle.security.pg_roles (tasks and dbt connect as these)
    pg = settings.pg
    for var, value in (("LIFECYCLE_PG_CDC_USER", pg.cdc_user), ("LIFECYCLE_PG_CDC_PASSWORD", pg.cdc_password),
                       ("LIFECYCLE_PG_LOADER_USER", pg.loader_user), ("LIFECYCLE_PG_LOADER_PASSWORD", pg.loader_password),
                       ("LIFECYCLE_PG_DBT_USER", pg.dbt_user), ("LIFECYCLE_PG_DBT_PASSWORD", pg.dbt_password),
                       ("LIFECYCLE_BI_READER_USER", pg.bi_reader_user),
                       ("LIFECYCLE_BI_READER_PASSWORD", pg.bi_reader_password)):
        if value:
            env[var] = value
    return env
