"""Unit tests of the package's logic, without Airflow and without services."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lifecycle.settings import Settings, SettingsError

REPO = Path(__file__).resolve().parents[1]


# ---- settings -----------------------------------------------------------------------------

def test_embedded_is_the_default_and_points_everything_at_loopback():
    s = Settings.from_env({"LIFECYCLE_MOTO_PORT": "5999", "LIFECYCLE_PG_PORT": "6000"})
    assert s.target == "embedded"
    assert s.endpoint_for("s3") == "http://127.0.0.1:5999"
    assert s.pg_host == "127.0.0.1" and s.pg_port == 6000
    assert s.bucket("raw") == "lifecycle-raw"
    assert "dbname=sales" in s.sales_dsn


def test_compose_routes_glue_to_moto_and_the_rest_to_localstack():
    s = Settings.from_env({"LIFECYCLE_TARGET": "compose", "AWS_ENDPOINT_URL": "http://localstack:4566",
                           "AWS_ENDPOINT_URL_GLUE": "http://moto:5000"})
    assert s.endpoint_for("glue") == "http://moto:5000"
    assert s.endpoint_for("kinesis") == "http://localstack:4566"
    assert s.pg_host == "postgres" and s.pg_port == 5432


def test_sales_can_live_on_its_own_server():
    s = Settings.from_env({"LIFECYCLE_TARGET": "compose", "AWS_ENDPOINT_URL": "http://localstack:4566",
                           "LIFECYCLE_PG_PASSWORD": "wh", "LIFECYCLE_SALES_PG_HOST": "sales-db",
                           "LIFECYCLE_SALES_PG_PORT": "6543", "LIFECYCLE_SALES_PG_PASSWORD": "src"})
    assert s.sales_dsn == "host=sales-db port=6543 dbname=sales user=postgres password=src"
    assert s.warehouse_dsn == "host=postgres port=5432 dbname=warehouse user=postgres password=wh"
    assert s.pg_url(s.airflow_db).endswith("@postgres:5432/airflow")
    # unset: one server for all databases, as on the embedded target
    one = Settings.from_env({"LIFECYCLE_PG_PORT": "6000"})
    assert one.pg_server(one.sales_db) == one.pg_server(one.warehouse_db)


def test_aws_target_has_no_emulator_endpoints():
    s = Settings.from_env({"LIFECYCLE_TARGET": "aws", "LIFECYCLE_PG_HOST": "db.example.internal",
                           "AWS_ENDPOINT_URL_GLUE": "http://should-be-ignored"})
    assert s.endpoint_for("s3") is None and s.endpoint_for("glue") is None
    assert s.s3_host_port() == (None, True)


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
    assert Settings().duckdb_memory_limit == Settings.from_env({}).duckdb_memory_limit == "2GB"
    assert Settings.from_env({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": ""}).duckdb_memory_limit == "2GB"
    assert Settings.from_env({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": " 4GiB "}).duckdb_memory_limit == "4GiB"
    assert Settings.from_env({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": "512 MB"}).duckdb_memory_limit == "512 MB"
    # none: no memory_limit is set, DuckDB keeps its own (80 % of RAM)
    assert Settings.from_env({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": "None"}).duckdb_memory_limit is None


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


# ---- pgoutput decoder ---------------------------------------------------------------------

def _tuple(*values):
    out = struct.pack("!h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        else:
            b = str(v).encode()
            out += b"t" + struct.pack("!i", len(b)) + b
    return out


def test_pgoutput_decodes_relation_insert_update_with_old_key_and_delete():
    from lifecycle.ingest.pgoutput import Change, Commit, Relation, decode

    rel = decode(b"R" + struct.pack("!I", 16385) + b"public\x00orders\x00" + b"d" + struct.pack("!h", 2)
                 + b"\x01order_id\x00" + struct.pack("!Ii", 20, -1)
                 + b"\x00status\x00" + struct.pack("!Ii", 25, -1))
    assert isinstance(rel, Relation) and rel.name == "orders"
    assert [(c.name, c.is_key) for c in rel.columns] == [("order_id", True), ("status", False)]

    ins = decode(b"I" + struct.pack("!I", 16385) + b"N" + _tuple(7, "placed"))
    assert isinstance(ins, Change) and ins.op == "I" and ins.new == ["7", "placed"]

    upd = decode(b"U" + struct.pack("!I", 16385) + b"K" + _tuple(7, None) + b"N" + _tuple(8, "paid"))
    assert upd.op == "U" and upd.old == ["7", None] and upd.old_kind == "K" and upd.new == ["8", "paid"]

    dele = decode(b"D" + struct.pack("!I", 16385) + b"K" + _tuple(8, None))
    assert dele.op == "D" and dele.old == ["8", None]

    commit = decode(b"C\x00" + struct.pack("!qqq", 100, 200, 86_400_000_000))
    assert isinstance(commit, Commit) and commit.end_lsn == 200
    assert commit.commit_ts == datetime(2000, 1, 2, tzinfo=UTC)


def test_pgoutput_refuses_unchanged_toast_instead_of_writing_nulls():
    from lifecycle.ingest.pgoutput import UnchangedToast, decode

    with pytest.raises(UnchangedToast):
        decode(b"U" + struct.pack("!I", 1) + b"N" + struct.pack("!h", 1) + b"u")


def test_lsn_round_trip():
    from lifecycle.ingest.pgoutput import lsn_to_str, str_to_lsn

    assert lsn_to_str(str_to_lsn("16/B374D848")) == "16/B374D848"


# ---- infra: least privilege ---------------------------------------------------------------

WILDCARD_RESOURCE_ALLOWED = {"cloudwatch:PutMetricData", "cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics",
                             "cloudwatch:ListMetrics", "cloudwatch:DescribeAlarms",
                             # no resource-level permissions: Lake Formation decides per table
                             "lakeformation:GetDataAccess"}


def test_iam_policies_grant_no_wildcard_actions_and_scope_resources():
    from lifecycle.infra.apply import load_spec, policy_document

    s = Settings.from_env({})
    spec = load_spec(s)
    for stage in spec["iam_roles"]:
        doc = policy_document(s, stage, "123456789012")
        for st in doc["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert all("*" not in a for a in actions), (stage, actions)
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            if "*" in resources:
                assert set(actions) <= WILDCARD_RESOURCE_ALLOWED, (stage, actions)
            assert "${" not in json.dumps(st), "unfilled placeholder"


def test_ingest_roles_cannot_touch_the_clean_zone():
    from lifecycle.infra.apply import policy_document

    s = Settings.from_env({})
    for stage in ("ingest-sales", "ingest-activity"):
        text = json.dumps(policy_document(s, stage, "123456789012"))
        assert s.bucket("clean") not in text and "s3:DeleteObject" not in text


# ---- Airflow context → interval ---------------------------------------------------------

def test_interval_uses_the_data_interval_when_there_is_one():
    from lifecycle.pipeline.context import interval

    a, b = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
    assert interval({"data_interval_start": a, "data_interval_end": b}) == (a, b)


def test_interval_of_an_asset_triggered_run_is_the_previous_utc_day():
    from lifecycle.pipeline.context import interval

    class Run:
        run_after = datetime(2026, 3, 2, 5, 30, tzinfo=UTC)

    start, end = interval({"dag_run": Run(), "data_interval_start": Run.run_after,
                           "data_interval_end": Run.run_after})
    assert (start, end) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    assert end - start == timedelta(days=1)


# ---- alerts -------------------------------------------------------------------------------

def test_alert_message_says_what_where_when_and_what_to_do():
    from lifecycle.dataops.alerts import build_alert

    a = build_alert(dag_id="d", task_id="t", run_id="r", try_number=3, interval="x/y",
                    error="ValueError: boom" + "!" * 5000, log_url="http://ui/log", target="embedded")
    assert {"dag_id", "task_id", "run_id", "try_number", "data_interval", "error", "log_url",
            "runbook"} <= a.keys()
    assert len(a["error"]) <= 2000 and "rerun is safe" in a["runbook"]


# ---- CLI ----------------------------------------------------------------------------------

def test_cli_help_and_settings_errors():
    from typer.testing import CliRunner

    from lifecycle.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["--help"]).exit_code == 0
    res = runner.invoke(app, ["services", "status"], env={"LIFECYCLE_TARGET": "nowhere"})
    assert res.exit_code == 2
