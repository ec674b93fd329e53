"""Task logs in CloudWatch Logs, shipped by the Amazon provider's remote logging, for real.

`dag.test()` runs tasks in-process and writes no task log file, so nothing would be shipped;
here the task runs the way the scheduler runs it: Airflow's LocalExecutor hands it to the
task supervisor (`supervise_task`), which talks to a real api-server's execution API, writes
the task log and streams it to the CloudWatch log group configured by `airflow_env`
(`remote_base_log_folder = cloudwatch://<log group ARN>`, `remote_log_conn_id = aws_default`,
whose endpoint is moto's). Then the log is read back from CloudWatch Logs, the way
`lifecycle logs <dag> <task>` does, with the pipeline's own JSON line for the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import lifecycle_env

from lifecycle.airflow_runner import wait_healthy
from lifecycle.services import free_port

REPO = Path(__file__).resolve().parents[1]


def test_task_logs_are_retrievable_from_cloudwatch_logs(settings):
    from lifecycle.airflow_env import airflow_env
    from lifecycle.dataops.logs import pipeline_lines, task_logs
    from lifecycle.orchestrate import migrate_metadata

    migrate_metadata(settings)
    port = free_port()
    env = {**lifecycle_env(settings), **airflow_env(settings, api_port=port),
           "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "tests" / "dags")}
    log = open(settings.home / "api-server-logs-test.log", "ab")
    api = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--port", str(port)], env=env,
                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_healthy(port, timeout=180), "api-server never became healthy"
        code = ("from airflow.dag_processing.dagbag import DagBag; "
                f"bag = DagBag(dag_folder={str(REPO / 'tests' / 'dags')!r}); "
                "dr = bag.dags['log_probe'].test(use_executor=True); print('RUN', dr.run_id, dr.state)")
        # Twice at most: a run of dag.test(use_executor=True) has been seen to hang in CI with
        # its LocalExecutor worker idle (cause unknown); the hung process group is killed,
        # and the second hang fails with what the run and the api-server said.
        for attempt in (1, 2):
            child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True)
            try:
                out, err = child.communicate(timeout=240)
                break
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, 9)
                out, err = child.communicate()
                if attempt == 2:
                    log.flush()
                    server = (settings.home / "api-server-logs-test.log").read_text(errors="replace")
                    raise AssertionError(f"dag.test(use_executor=True) hung twice\n--- run output (tail)\n"
                                         f"{(out or '')[-3000:]}\n{(err or '')[-2000:]}\n"
                                         f"--- api-server log (tail)\n{server[-5000:]}") from None
        proc = subprocess.CompletedProcess(child.args, child.returncode, out, err)
        assert "RUN " in proc.stdout, proc.stderr[-4000:]
        run_id, state = proc.stdout.split("RUN ", 1)[1].split()[:2]
        assert state == "success", proc.stderr[-4000:]
    finally:
        os.killpg(api.pid, 15)
        api.wait(timeout=60)
        log.close()

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
