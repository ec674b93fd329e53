"""Run Airflow 3 for real on the embedded services: api-server, scheduler, dag-processor, triggerer.

Input: ``Settings`` (services up) and the UI port. Output: four Airflow processes with the
lifecycle's environment, logs in ``<home>/airflow/*.log``; the DAGs are scheduled (not
paused). Blocks until Ctrl-C / SIGTERM, then stops every component (each one first, so none
is orphaned) and returns the exit code.

We start the components ourselves instead of ``airflow standalone``: standalone is meant
for a quick look and orphans children when it alone gets SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

from lifecycle.ops.dag_runs import build_dbt_manifest, migrate_metadata
from lifecycle.pipeline.environment import airflow_env
from lifecycle.settings import Settings

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def wait_healthy(port: int, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


def start_components(settings: Settings, port: int, extra_env: dict[str, str] | None = None
                     ) -> list[subprocess.Popen]:
    """Start the four components; ``extra_env`` overrides the derived Airflow configuration
    (tests: the auth manager's users, another DAG folder)."""
    env = {**os.environ, **airflow_env(settings, api_port=port), **(extra_env or {})}
    os.environ.update(env)
    migrate_metadata(settings)
    build_dbt_manifest()
    logdir = settings.home / "airflow"
    logdir.mkdir(parents=True, exist_ok=True)
    procs = []
    for comp in COMPONENTS:
        args = [sys.executable, "-m", "airflow", comp]
        if comp == "api-server":
            args += ["--port", str(port)]
        log = open(logdir / f"{comp}.log", "ab")
        procs.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True))
    return procs


def stop_components(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for p in procs:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)  # reaped before we return: callers check nothing is left


def run_airflow(settings: Settings, port: int) -> int:
    procs = start_components(settings, port)
    stop = {"flag": False}

    def _handler(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    if wait_healthy(port):
        print(f"Airflow is up: {airflow_env(settings, port)['AIRFLOW__API__BASE_URL']}  "
              "(simple auth manager: every user is admin)")
        print(f"logs: {settings.home / 'airflow'}/*.log   stop: Ctrl-C")
    else:
        print(f"Airflow API server did not become healthy; see {settings.home / 'airflow' / 'api-server.log'}")
        stop["flag"] = True
    code = 0
    while not stop["flag"]:
        for comp, p in zip(COMPONENTS, procs, strict=True):
            if p.poll() is not None:
                print(f"airflow {comp} exited with {p.returncode}; stopping the rest")
                stop["flag"], code = True, 1
        time.sleep(1)
    stop_components(procs)
    return code
