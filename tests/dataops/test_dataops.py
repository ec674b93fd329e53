"""DataOps pieces, quickly: monitors' statistics, the alarm rule and its evaluator, alert
deduplication, the metric trend, the Airflow wiring (remote logging, lineage, deadlines).

Pure functions run without any service; the evaluator and deduplication run against the
session's moto (infra applied), reading alerts back from the SQS subscription.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from lifecycle.dataops import monitors
from lifecycle.settings import Settings

# ---- monitors -----------------------------------------------------------------------------


def test_volume_uses_the_datasets_own_history():
    history = [400, 410, 395, 405, 402]
    assert monitors.volume(398, history).status == "ok"
    assert monitors.volume(40, history).status == "alert"  # a tenth
    assert monitors.volume(900, history).status == "alert"
    assert monitors.volume(40, history[:2]).status == "skipped"  # not enough history
    # a tiny dataset that wobbles a lot: the same relative drop is judged against its own spread
    assert monitors.volume(3, [10, 2, 14, 6, 9]).status == "ok"


def test_schema_drift_names_what_changed():
    r = monitors.schema_drift({"a": "BIGINT", "b": "VARCHAR", "c": "DOUBLE"}, {"a": "BIGINT", "b": "INTEGER", "d": "DATE"})
    assert r.status == "alert" and r.value == 3
    assert "added c DOUBLE" in r.detail and "removed d" in r.detail and "b INTEGER -> VARCHAR" in r.detail
    assert monitors.schema_drift({"a": "BIGINT"}, {"a": "BIGINT"}).status == "ok"


def test_null_rate_and_distribution_shift():
    assert monitors.null_rate("id", 0.01, [], required=True).status == "alert"
    assert monitors.null_rate("customer_id", 0.32, [0.30, 0.31, 0.29], required=False).status == "ok"
    assert monitors.null_rate("customer_id", 0.60, [0.30, 0.31, 0.29], required=False).status == "alert"
    base = [{"page_view": 0.7, "add_to_cart": 0.2, "purchase": 0.1}] * 3
    assert monitors.categorical_shift("t", {"page_view": 0.69, "add_to_cart": 0.21, "purchase": 0.1}, 500,
                                      base).status == "ok"
    shifted = monitors.categorical_shift("t", {"page_view": 0.3, "add_to_cart": 0.2, "purchase": 0.5}, 500, base)
    assert shifted.status == "alert" and "purchase" in shifted.detail
    assert monitors.numeric_shift("q", 2.0, 500, [2.1, 1.9, 2.0]).status == "ok"
    assert monitors.numeric_shift("q", 6.0, 500, [2.1, 1.9, 2.0]).status == "alert"
    assert monitors.numeric_shift("q", 6.0, 10, [2.1, 1.9, 2.0]).status == "skipped"  # too few rows


# ---- alarm rule ---------------------------------------------------------------------------


@pytest.mark.parametrize("values,missing,current,expected", [
    ([0.5], "missing", "OK", "ALARM"),
    ([0.1], "missing", "ALARM", "OK"),
    ([None], "missing", "OK", "INSUFFICIENT_DATA"),
    ([None], "ignore", "ALARM", "ALARM"),
    ([None, 0.1], "breaching", "OK", "OK"),  # 1 of 2 breaching, 2 needed
    ([None, 0.9], "breaching", "OK", "ALARM"),
    ([None, 0.9], "notBreaching", "OK", "OK"),
])
def test_alarm_rule(values, missing, current, expected):
    from lifecycle.dataops.alarms import decide

    state, reason = decide(values, 0.2, "GreaterThanThreshold", len(values), missing, current)
    assert state == expected, reason


def test_sparkline():
    from lifecycle.dataops.metrics import sparkline

    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([3, 3]) == "▅▅" and sparkline([]) == ""


# ---- Airflow wiring -----------------------------------------------------------------------


def test_airflow_ships_task_logs_to_cloudwatch_and_lineage_to_a_file():
    from lifecycle.pipeline.environment import airflow_env

    s = Settings.from_env({"LIFECYCLE_HOME": "/tmp/lifecycle-dataops-unit"})
    env = airflow_env(s)
    assert env["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "True"
    assert env["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"] == (
        "cloudwatch://arn:aws:logs:us-east-1:123456789012:log-group:/lifecycle/airflow")
    assert env["AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID"] == "aws_default"
    # the connection the remote logger uses points at the emulator
    assert json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"] == s.aws.endpoint
    transport = json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert transport == {"type": "file", "log_file_path": str(s.lineage_file), "append": True}
    marquez = Settings.from_env({"LIFECYCLE_HOME": "/tmp/lifecycle-dataops-unit",
                                 "LIFECYCLE_LINEAGE_URL": "http://marquez:5000"})
    assert json.loads(airflow_env(marquez)["AIRFLOW__OPENLINEAGE__TRANSPORT"])["type"] == "http"


def test_task_log_stream_is_the_providers_name():
    from lifecycle.dataops.logs import task_log_stream

    assert task_log_stream("d", "manual__2026-01-01T00:00:00+00:00", "t", 2) == \
        "dag_id=d/run_id=manual__2026-01-01T00_00_00+00_00/task_id=t/attempt=2.log"
    assert task_log_stream("d", "r", "t", 1, map_index=3) == "dag_id=d/run_id=r/task_id=t/map_index=3/attempt=1.log"


def test_every_dag_has_a_run_deadline():
    from lifecycle.dataops.callbacks import run_deadline, run_too_long

    d = run_deadline(30)
    assert d.interval.total_seconds() == 1800
    assert d.callback.path == f"{run_too_long.__module__}.{run_too_long.__qualname__}"
    from pathlib import Path

    from lifecycle.pipeline.tasks import dag_args

    assert dag_args("source", doc="")["deadline"].interval == run_deadline().interval
    for path in (Path(__file__).resolve().parents[2] / "dags").glob("*.py"):
        assert "**dag_args(" in path.read_text(), path.name  # dag_args carries the deadline


def test_lineage_map_uses_the_settings():
    from lifecycle.dataops.lineage import datasets

    s = Settings.from_env({"LIFECYCLE_NAME_PREFIX": "acme"})
    inputs, outputs = datasets(s, "lake_clean", "run_clean_jobs")
    assert "s3://acme-raw/events" in inputs and "s3://acme-clean/orders" in outputs
    assert datasets(s, "nope", "nope") == ([], [])


# ---- against moto ---------------------------------------------------------------------------


def test_alarms_are_evaluated_and_alert_once_on_the_transition(settings):
    from lifecycle.clients import aws
    from lifecycle.dataops.alarms import alarms, evaluate
    from lifecycle.dataops.alerts import read_alerts

    names = {a["AlarmName"] for a in alarms(settings)}
    prefix = settings.names.prefix
    assert {f"{prefix}-freshness-events", f"{prefix}-quarantine-rate", f"{prefix}-cdc-lag",
            f"{prefix}-failed-tasks"} <= names
    read_alerts(settings)
    cw = aws(settings, "cloudwatch")
    for name in names:  # whatever earlier tests left: start from "no data yet"
        cw.set_alarm_state(AlarmName=name, StateValue="INSUFFICIENT_DATA", StateReason="test start")
    cw.put_metric_data(Namespace=settings.names.metrics_namespace, MetricData=[
        {"MetricName": "QuarantineRate", "Value": 0.45, "Unit": "None", "Timestamp": datetime.now(UTC),
         "Dimensions": [{"Name": "Source", "Value": "events"}, {"Name": "Target", "Value": settings.target}]},
        {"MetricName": "CdcLagSeconds", "Value": 3.0, "Unit": "Seconds", "Timestamp": datetime.now(UTC),
         "Dimensions": [{"Name": "Slot", "Value": "lifecycle_dms"}, {"Name": "Phase", "Value": "before"},
                        {"Name": "Target", "Value": settings.target}]}])
    first = {a["alarm"]: a for a in evaluate(settings)}
    assert first[f"{prefix}-quarantine-rate"]["state"] == "ALARM" and first[f"{prefix}-quarantine-rate"]["alerted"]
    assert first[f"{prefix}-cdc-lag"]["state"] == "OK"
    states = {a["AlarmName"]: a["StateValue"] for a in alarms(settings)}
    assert states[f"{prefix}-quarantine-rate"] == "ALARM" and states[f"{prefix}-cdc-lag"] == "OK"
    (alert,) = read_alerts(settings)
    assert alert["kind"] == "alarm" and alert["alarm"] == f"{prefix}-quarantine-rate"
    assert "0.45" in alert["error"] and alert["runbook"]
    # still in ALARM on the next evaluation: no transition, no second alert
    again = {a["alarm"]: a for a in evaluate(settings)}
    assert not again[f"{prefix}-quarantine-rate"]["changed"]
    assert read_alerts(settings) == []


def test_a_failure_reported_twice_alerts_once(settings):
    from lifecycle.dataops.alerts import build_alert, publish, read_alerts

    read_alerts(settings)
    alert = build_alert(dag_id="d", task_id="t", run_id=f"r-{datetime.now(UTC).timestamp()}", try_number=3,
                        interval="a/b", error="E: x", log_url=None, target=settings.target)
    assert publish(settings, alert) is not None
    assert publish(settings, alert) is None
    assert len(read_alerts(settings)) == 1


def test_the_deadline_callback_alerts_once_per_run(settings):
    import asyncio

    from lifecycle.dataops.alerts import read_alerts
    from lifecycle.dataops.callbacks import run_too_long

    read_alerts(settings)
    # what Airflow passes: the run as the REST API shows it, and the deadline
    context = {"dag_run": {"dag_id": "lake_clean", "dag_run_id": "scheduled__2026-11-26T00:00:00+00:00",
                           "state": "running", "queued_at": "2026-11-26T00:00:05+00:00",
                           "data_interval_start": "2026-11-25T00:00:00+00:00",
                           "data_interval_end": "2026-11-26T00:00:00+00:00"},
               "deadline": {"id": "x", "deadline_time": "2026-11-26T02:00:05+00:00"}}
    asyncio.run(run_too_long(context=context, minutes=120))
    asyncio.run(run_too_long(context=context, minutes=120))
    (alert,) = read_alerts(settings)
    assert alert["kind"] == "run_too_long" and alert["dag_id"] == "lake_clean"
    assert "still running" in alert["error"] and alert["runbook"]
