"""The compose target's code path, run here without Docker: its services on loopback.

Input: the Airflow environment of ``docker-compose.yml`` (the ``airflow-scheduler`` service,
interpolated with ``.env.example``), the init script ``docker/airflow-init.sh`` and the
warehouse's init SQL ``docker/postgres/initdb/``.
Output: assertions that, with ``LIFECYCLE_TARGET=compose`` and exactly that environment,
``airflow-init`` succeeds and the whole lifecycle runs once (``lifecycle run``), the serving
tables have data and the reconciliation passes, and that each database and AWS service was
reached where the compose file routes it.

Each compose service is replaced by the same software on a free loopback port:
``postgres`` and ``sales-db`` by two servers from pgserver's bundled PostgreSQL 16 binaries,
``localstack`` and ``moto`` by two moto servers (moto in place of LocalStack; the second one
serves Glue and Lake Formation, routed by ``AWS_ENDPOINT_URL_GLUE`` / ``_LAKEFORMATION`` as in
the stack). The only rewrites of the environment: ``host:port`` of a compose service becomes
``127.0.0.1:<free port>``, and the three container paths (``/opt/...``) become local ones.
So the remaining untested difference is the container images.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from datetime import date
from pathlib import Path
from unittest import mock

import pytest
from compose_files import airflow_env, compose_services, env_example, service_env

from lifecycle.ops import services
from lifecycle.settings import AwsSettings, PostgresSettings, Services, Settings

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DAY = date(2026, 11, 20)
# compose services replaced by loopback processes here
PG_SERVICES = ("postgres", "sales-db")
MOTO_SERVICES = ("localstack", "moto")


def _container_port(service: str) -> int:
    (mapping,) = compose_services()[service]["ports"]
    return int(str(mapping).rsplit(":", 1)[1])


def _to_loopback(env: dict[str, str], ports: dict[str, int], home: Path) -> dict[str, str]:
    """The compose environment with each service's host:port moved to loopback."""
    out = {}
    for key, value in env.items():
        for service, port in ports.items():
            value = re.sub(rf"(?<=[/@]){re.escape(service)}:{_container_port(service)}\b",
                           f"127.0.0.1:{port}", value)
        out[key] = value
    # *_HOST / *_PORT pairs naming a service (LIFECYCLE_PG_*, LIFECYCLE_SALES_PG_*)
    for key, value in env.items():
        if key.endswith("_HOST") and value in ports:
            out[key] = "127.0.0.1"
            out[key[: -len("HOST")] + "PORT"] = str(ports[value])
    # container paths
    out["LIFECYCLE_HOME"] = str(home)
    out["AIRFLOW__COSMOS__CACHE_DIR"] = str(home / "cosmos_cache")
    out["DBT_EXECUTABLE"] = str(VENV_BIN / "dbt")
    assert not [k for k, v in out.items() if "/opt/" in v], "a container path is left"
    return out


def _run_init_sql(dsn_for, sql_dir: Path) -> None:
    """The warehouse's docker-entrypoint-initdb.d SQL, with psql's ``\\connect`` honoured."""
    import psycopg2

    database = "postgres"
    for path in sorted(sql_dir.glob("*.sql")):
        chunk: list[str] = []
        for line in [*path.read_text().splitlines(), "\\connect -"]:
            if line.startswith("\\connect"):
                statements = [s for s in "\n".join(chunk).split(";") if s.strip()]
                conn = psycopg2.connect(dsn_for(database))
                conn.autocommit = True  # CREATE DATABASE refuses a transaction
                with conn.cursor() as cur:
                    for statement in statements:
                        cur.execute(statement)
                conn.close()
                chunk, database = [], line.split()[1]
            elif not line.startswith("--"):
                chunk.append(line)


@pytest.fixture(scope="module")
def stack():
    home = Path(tempfile.mkdtemp(prefix="lifecycle-compose-"))
    os.chmod(home, 0o755)  # the `pgserver` OS user must traverse it
    ports = {name: services.free_port() for name in (*PG_SERVICES, *MOTO_SERVICES)}
    example = env_example()
    # one embedded-style Settings per replaced service, only to start/stop its process
    procs = {
        "postgres": Settings(home=home / "postgres",
                             pg=PostgresSettings(port=ports["postgres"], user=example["POSTGRES_USER"])),
        "sales-db": Settings(home=home / "sales-db",
                             pg=PostgresSettings(port=ports["sales-db"], user=example["SALES_DB_USER"])),
        **{name: Settings(home=home / name, services=Services(moto_port=ports[name]),
                          aws=AwsSettings(endpoint=f"http://127.0.0.1:{ports[name]}")) for name in MOTO_SERVICES},
    }
    try:
        for name in PG_SERVICES:
            services.start_postgres(procs[name])
        # moto with the account the compose file gives moto (LocalStack's), for both
        moto_env = service_env(compose_services()["moto"])
        with mock.patch.dict(os.environ, {"MOTO_ACCOUNT_ID": moto_env["MOTO_ACCOUNT_ID"]}):
            for name in MOTO_SERVICES:
                services.start_moto(procs[name])

        def dsn(name, database):
            return replace(procs[name], pg=replace(procs[name].pg, host="127.0.0.1")).pg_dsn(database)

        # what the two Postgres images do on first start
        init_mount = next(v for v in compose_services()["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v)
        _run_init_sql(lambda db: dsn("postgres", db), REPO / init_mount.split(":", 1)[0])
        _run_init_sql(lambda db: dsn("sales-db", db), _write_sql(home, service_env(compose_services()["sales-db"])))

        env = _to_loopback(airflow_env(), ports, home / "lifecycle")
        env.update(PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", HOME=str(home),
                   XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", f"/tmp/lifecycle-xdg-{os.getuid()}"),
                   # what the image sets (docker/airflow.Dockerfile) and compose does not
                   AIRFLOW_HOME=str(home / "lifecycle" / "airflow"),
                   AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"))
        yield {"env": env, "ports": ports, "dsn": dsn, "home": home}
    finally:
        for name in MOTO_SERVICES:
            with contextlib.suppress(Exception):
                services.stop_moto(procs[name])
        for name in PG_SERVICES:
            with contextlib.suppress(Exception):
                services.stop_postgres(procs[name])
        shutil.rmtree(home, ignore_errors=True)


def _write_sql(home: Path, pg_env: dict[str, str]) -> Path:
    """The official postgres image's POSTGRES_DB, as init SQL."""
    folder = home / "sales-db-initdb"
    folder.mkdir()
    (folder / "00-db.sql").write_text(f"CREATE DATABASE {pg_env['POSTGRES_DB']};\n")
    return folder


def _run(stack, *cmd, timeout=600):
    proc = subprocess.run(cmd, env=stack["env"], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.fixture(scope="module")
def lifecycle_ran(stack):
    _run(stack, "bash", str(REPO / "docker" / "airflow-init.sh"))
    _run(stack, sys.executable, "-m", "lifecycle.cli", "simulate", "--date", DAY.isoformat(),
         "--scale", "30", "--bad-rate", "0.1")
    _run(stack, sys.executable, "-m", "lifecycle.cli", "run")
    return stack


def test_the_compose_environment_selects_the_compose_target(stack):
    s = Settings.from_env(stack["env"])
    assert s.target == "compose"
    assert s.aws.endpoint_for("s3") == f"http://127.0.0.1:{stack['ports']['localstack']}"
    assert s.aws.endpoint_for("glue") == f"http://127.0.0.1:{stack['ports']['moto']}"
    assert s.pg.server(s.pg.sales_db)[:2] == ("127.0.0.1", stack["ports"]["sales-db"])
    assert s.pg.server(s.pg.warehouse_db)[:2] == ("127.0.0.1", stack["ports"]["postgres"])


def test_the_lifecycle_runs_on_the_compose_target(lifecycle_ran):
    import psycopg2

    stack = lifecycle_ran
    conn = psycopg2.connect(stack["dsn"]("postgres", "warehouse"))
    with conn, conn.cursor() as cur:
        for table in ("daily_sales", "funnel_daily", "product_performance"):
            cur.execute(f"SELECT count(*) FROM serving.{table}")
            assert cur.fetchone()[0] > 0, f"serving.{table} is empty"
    conn.close()
    _run(stack, sys.executable, "-m", "lifecycle.cli", "reconcile")  # exit 1 on any mismatch


def test_each_database_and_service_was_reached_where_compose_routes_it(lifecycle_ran):
    import boto3
    import psycopg2

    stack = lifecycle_ran
    # CDC's replication slot is on sales-db; the warehouse server has no `sales` at all
    conn = psycopg2.connect(stack["dsn"]("sales-db", "sales"))
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_replication_slots WHERE database = 'sales'")
        assert cur.fetchone()[0] == 1
    conn.close()
    conn = psycopg2.connect(stack["dsn"]("postgres", "postgres"))
    with conn, conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1")
        assert [r[0] for r in cur.fetchall()] == ["airflow", "postgres", "warehouse"]
    conn.close()

    def client(service, name):
        return boto3.client(service, endpoint_url=f"http://127.0.0.1:{stack['ports'][name]}",
                            region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")

    s = Settings.from_env(stack["env"])
    # Glue Catalog on `moto`, the lake on `localstack`, and not the other way round
    assert s.names.clean_database in {d["Name"] for d in client("glue", "moto").get_databases()["DatabaseList"]}
    assert client("glue", "localstack").get_databases()["DatabaseList"] == []
    assert client("s3", "localstack").list_objects_v2(Bucket=s.names.bucket("clean"), MaxKeys=1)["KeyCount"] == 1
    assert client("s3", "moto").list_buckets()["Buckets"] == []
    # the account of the compose stack is in the ARNs
    assert client("sts", "localstack").get_caller_identity()["Account"] == s.aws.account_id
