"""`make airflow` for real: the four Airflow 3 components on the embedded services.

Starts api-server, scheduler, dag-processor and triggerer exactly as `lifecycle airflow`
does (on a free port), asks the REST API for the DAGs, then stops everything and checks
that no component is left running.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request

import psutil

from lifecycle.airflow_runner import start_components, stop_components, wait_healthy
from lifecycle.services import free_port


def _get(url: str, token: str | None = None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_airflow_serves_the_ui_and_schedules_every_dag(settings):
    from dataclasses import replace

    from lifecycle.services import ensure_databases

    # its own metadata database, and no scheduled runs: this test must not act on the data
    # the other tests use (the DAGs are still unpaused and their schedules visible)
    settings = replace(settings, airflow_db="airflow_service_test")
    ensure_databases(settings)
    port = free_port()
    saved = dict(os.environ)
    os.environ["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"
    procs = start_components(settings, port)
    try:
        assert wait_healthy(port, timeout=180), "api-server never became healthy"
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        health = {}
        while time.monotonic() < deadline:
            health = _get(f"{base}/api/v2/monitor/health")
            if all(health.get(c, {}).get("status") == "healthy"
                   for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")):
                break
            time.sleep(2)
        assert health["scheduler"]["status"] == "healthy" and health["dag_processor"]["status"] == "healthy"
        token = _get(f"{base}/auth/token")["access_token"]  # simple auth manager, all admins
        dags = {}
        while time.monotonic() < deadline and len(dags) < 8:
            dags = {d["dag_id"]: d for d in _get(f"{base}/api/v2/dags?limit=100", token)["dags"]}
            time.sleep(2)
        assert {"ingest_sales", "ingest_user_activity", "ingest_reviews", "lake_clean", "warehouse_load",
                "dbt_build", "serve_publish", "simulate_sales_platform"} <= dags.keys()
        assert not any(d["is_paused"] for d in dags.values())
        assert dags["ingest_sales"]["timetable_summary"] == "0 * * * *"
        assert dags["lake_clean"]["timetable_summary"] == "Asset"
        assert _get(f"{base}/api/v2/importErrors", token)["total_entries"] == 0
        page = urllib.request.urlopen(f"{base}/", timeout=10).read().decode()
        assert "<html" in page.lower()
    finally:
        stop_components(procs)
        os.environ.clear()
        os.environ.update(saved)
    pids = {p.pid for p in procs}
    assert not [p for p in psutil.process_iter() if p.pid in pids and p.status() != psutil.STATUS_ZOMBIE]
