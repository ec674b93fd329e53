"""The settings of each target and the rules they keep (endpoints, limits, no literals elsewhere).

No services: ``Settings.from_env`` on dict environments; the repo's source read as text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle.settings import Settings, SettingsError

REPO = Path(__file__).resolve().parents[1]


def test_embedded_is_the_default_and_points_everything_at_loopback():
    s = Settings.from_env({"LIFECYCLE_MOTO_PORT": "5999", "LIFECYCLE_PG_PORT": "6000"})
    assert s.target == "embedded"
    assert s.aws.endpoint_for("s3") == "http://127.0.0.1:5999"
    assert s.pg.host == "127.0.0.1" and s.pg.port == 6000
    assert s.names.bucket("raw") == "lifecycle-raw"
    assert "dbname=sales" in s.pg_dsn(s.pg.sales_db)


def test_compose_routes_glue_to_moto_and_the_rest_to_localstack():
    s = Settings.from_env({"LIFECYCLE_TARGET": "compose", "AWS_ENDPOINT_URL": "http://localstack:4566",
                           "AWS_ENDPOINT_URL_GLUE": "http://moto:5000"})
    assert s.aws.endpoint_for("glue") == "http://moto:5000"
    assert s.aws.endpoint_for("kinesis") == "http://localstack:4566"
    assert s.pg.host == "postgres" and s.pg.port == 5432


def test_sales_can_live_on_its_own_server():
    s = Settings.from_env({"LIFECYCLE_TARGET": "compose", "AWS_ENDPOINT_URL": "http://localstack:4566",
                           "LIFECYCLE_PG_PASSWORD": "wh", "LIFECYCLE_SALES_PG_HOST": "sales-db",
                           "LIFECYCLE_SALES_PG_PORT": "6543", "LIFECYCLE_SALES_PG_PASSWORD": "src"})
    assert s.pg_dsn(s.pg.sales_db) == "host=sales-db port=6543 dbname=sales user=postgres password=src"
    assert s.pg_dsn(s.pg.warehouse_db) == "host=postgres port=5432 dbname=warehouse user=postgres password=wh"
    assert s.pg_url(s.pg.airflow_db).endswith("@postgres:5432/airflow")
    # unset: one server for all databases, as on the embedded target
    one = Settings.from_env({"LIFECYCLE_PG_PORT": "6000"})
    assert one.pg.server(one.pg.sales_db) == one.pg.server(one.pg.warehouse_db)


def test_aws_target_has_no_emulator_endpoints():
    s = Settings.from_env({"LIFECYCLE_TARGET": "aws", "LIFECYCLE_PG_HOST": "db.example.internal",
                           "AWS_ENDPOINT_URL_GLUE": "http://should-be-ignored"})
    assert s.aws.endpoint_for("s3") is None and s.aws.endpoint_for("glue") is None
    assert s.aws.s3_host_port() == (None, True)


@pytest.mark.parametrize("env, message", [
    ({"LIFECYCLE_TARGET": "azure"}, "unknown"),
    ({"LIFECYCLE_TARGET": "compose"}, "AWS_ENDPOINT_URL"),
    ({"LIFECYCLE_TARGET": "aws"}, "LIFECYCLE_PG_HOST"),
    ({"LIFECYCLE_PG_PORT": "fivefourthreetwo"}, "LIFECYCLE_PG_PORT.*whole number"),
    ({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": "2 apples"}, "LIFECYCLE_DUCKDB_MEMORY_LIMIT.*memory size.*none"),
    ({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": "2048"}, "LIFECYCLE_DUCKDB_MEMORY_LIMIT"),  # DuckDB: no unit, an error
    ({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": "0"}, "LIFECYCLE_DUCKDB_MEMORY_LIMIT"),
    ({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": "2KB"}, "LIFECYCLE_DUCKDB_MEMORY_LIMIT.*at least 128MB"),
])
def test_bad_settings_say_what_to_do(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_duckdb_memory_is_bounded_by_default():
    assert Settings().engines.duckdb_memory_limit == Settings.from_env({}).engines.duckdb_memory_limit == "2GB"
    assert Settings.from_env({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": ""}).engines.duckdb_memory_limit == "2GB"
    assert Settings.from_env({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": " 4GiB "}).engines.duckdb_memory_limit == "4GiB"
    assert Settings.from_env({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": "512 MB"}).engines.duckdb_memory_limit == "512 MB"
    # none: no memory_limit is set, DuckDB keeps its own (80 % of RAM)
    assert Settings.from_env({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": "None"}).engines.duckdb_memory_limit is None


@pytest.mark.parametrize("value, expected", [(None, "1.8 GiB"), ("4GiB", "4.0 GiB"), ("none", "")])
def test_duckdb_connection_gets_the_memory_limit(tmp_path, value, expected):
    import duckdb

    from lifecycle import clients

    env = {"LIFECYCLE_HOME": str(tmp_path)} | ({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": value} if value else {})
    con = clients.connect_duckdb(Settings.from_env(env))
    try:
        got = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    finally:
        con.close()
    own = duckdb.connect()
    try:
        assert got == (expected or own.execute("SELECT current_setting('memory_limit')").fetchone()[0])
    finally:
        own.close()


def test_no_endpoint_or_bucket_literals_outside_settings():
    import re

    pattern = re.compile(r"(localhost|127\.0\.0\.1):\d{2,5}|s3://[a-z0-9-]+/|https?://[a-z0-9.-]+:\d+")
    allowed = {"settings.py"}
    offenders = []
    for path in list((REPO / "plugins").rglob("*.py")) + list((REPO / "dags").glob("*.py")):
        if path.name in allowed:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and not line.strip().startswith("#"):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == []
