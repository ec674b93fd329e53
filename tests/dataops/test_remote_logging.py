"""Task logs in CloudWatch Logs, shipped by the Amazon provider's remote logging, for real.

`dag.test()` runs tasks in-process and writes no task log file, so nothing would be shipped;
here the task runs the way it does in production: Airflow's scheduler (LocalExecutor) hands
it to the task supervisor, which talks to the api-server's execution API, writes the task
log and streams it to the CloudWatch log group configured by `airflow_env`
(`remote_base_log_folder = cloudwatch://<log group ARN>`, `remote_log_conn_id = aws_default`,
whose endpoint is moto's). The run is triggered through the REST API. Then the log is read
back from CloudWatch Logs, the way `lifecycle logs <dag> <task>` does, with the pipeline's
own JSON line for the same run.

(An earlier version used `dag.test(use_executor=True)` against a lone api-server: it hung
now and then in CI with its LocalExecutor worker idle and its own database session idle in
transaction, a path Airflow does not support well: apache/airflow#59074.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

from conftest import lifecycle_env

from lifecycle.ops.airflow import start_components, stop_components, wait_healthy
from lifecycle.ops.services import ensure_databases, free_port

REPO = Path(__file__).resolve().parents[2]


def _api(url: str, token: str | None = None, body: dict | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, headers=headers, data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _run_log_probe(settings) -> str:
    """Trigger `log_probe` through the REST API of a real Airflow (scheduler + api-server) and
    return its run id once the run has succeeded."""
    # its own metadata database: the scheduler must not act on the other tests' data
    settings = replace(settings, pg=replace(settings.pg, airflow_db="airflow_logging_test"))
    ensure_databases(settings)
    port = free_port()
    saved = dict(os.environ)
    procs = []
    try:
        procs = start_components(settings, port,
                                 extra_env={"AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "tests" / "dags")})
        assert wait_healthy(port, timeout=180), "api-server never became healthy"
        base = f"http://127.0.0.1:{port}"
        token = _api(f"{base}/auth/token")["access_token"]  # simple auth manager, all admins
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # the dag-processor parses the DAG folder first
            try:
                _api(f"{base}/api/v2/dags/log_probe", token)
                break
            except urllib.error.HTTPError:
                time.sleep(2)
        run = _api(f"{base}/api/v2/dags/log_probe/dagRuns", token, {"logical_date": None})
        run_id, state = run["dag_run_id"], run["state"]
        while time.monotonic() < deadline and state not in ("success", "failed"):
            time.sleep(2)
            state = _api(f"{base}/api/v2/dags/log_probe/dagRuns/{run_id}", token)["state"]
        if state != "success":
            logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                             for p in sorted((settings.home / "airflow").glob("*.log")))
            raise AssertionError(f"log_probe run {run_id} ended {state}\n{logs}")
        return run_id
    finally:
        stop_components(procs)
        os.environ.clear()
        os.environ.update(saved)


def test_task_logs_are_retrievable_from_cloudwatch_logs(settings):
    from lifecycle.dataops.logs import pipeline_lines, task_logs

    run_id = _run_log_probe(settings)
    found = task_logs(settings, "log_probe", "say_hello", run_id)
    assert found["stream"] == f"dag_id=log_probe/run_id={run_id}/task_id=say_hello/attempt=1.log".replace(":", "_")
    text = "\n".join(found["lines"])
    assert f"hello from the log probe, run {run_id}" in text
    # the pipeline's own structured line for the same run, in the same log group
    (line,) = [x for x in pipeline_lines(settings, "log_probe", "say_hello", run_id) if x["event"] == "task_succeeded"]
    assert line["dag_id"] == "log_probe" and line["rows_out"] == 7
    # and the command a person uses
    cli = subprocess.run([sys.executable, "-m", "lifecycle.cli", "logs", "log_probe", "say_hello", "--run-id", run_id],
                         env=lifecycle_env(settings), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert cli.returncode == 0 and "hello from the log probe" in cli.stdout, cli.stderr[-2000:]
