"""Cases 7 and 8 through the real Airflow 3 scheduler (test_backfill.py and
test_concurrent_runs.py call the stages directly; these prove what Airflow itself adds).

In a dedicated embedded environment (its own Postgres, moto and Airflow metadata database),
the four components run as ``lifecycle airflow`` starts them, with no scheduled or asset
runs (``USE_JOB_SCHEDULE=False``): only what a case triggers through the REST API runs.

- Case 8: ``simulate_sales_platform`` (keyed by its interval: a day is simulated once) runs
  for two past days (manual runs with an explicit logical date), a third day arrives, then
  an Airflow 3 backfill (``POST /api/v2/backfills``, ``reprocess_behavior=completed``) runs the
  two past intervals again. Expected: each backfilled run returns what the original returned,
  the source databases are unchanged, no other run was created, and everything reconciles
  once the rest of the pipeline has run (stages called directly).
- Case 7: two ``ingest_sales`` runs triggered at once. Expected: the scheduler runs them one
  after the other (``max_active_runs=1``: one ends before the other starts, by the API's
  dates), both succeed, nothing doubled (reconciled).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import pytest

from chaos.harness import assert_reconciled, reconcile, run_in_process

SIM = "simulate_sales_platform"
CONF = {"scale": 12, "seed": 7, "bad_rate": 0.0, "late_rate": 0.0}
WAIT = 600  # 2 cores shared with other work: Airflow is slow to start and to schedule


def _api(base: str, path: str, token: str | None = None, body: dict | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"{base}{path}", headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{req.method} {path}: {exc.code} {exc.read()[:2000]!r}") from exc


@pytest.fixture(scope="module")
def airflow():
    from lifecycle.ops.airflow import start_components, stop_components, wait_healthy
    from lifecycle.ops.services import ensure_databases, free_port, isolated_environment

    with isolated_environment(prefix="lifecycle-chaos-airflow-") as (settings, _env):
        ensure_databases(settings)
        port, saved, procs = free_port(), dict(os.environ), []
        try:
            procs = start_components(settings, port,
                                     extra_env={"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"})
            assert wait_healthy(port, timeout=WAIT), "api-server never became healthy"
            base = f"http://127.0.0.1:{port}"
            token = _api(base, "/auth/token")["access_token"]  # simple auth manager, all admins
            deadline = time.monotonic() + WAIT
            dags: set[str] = set()
            while time.monotonic() < deadline and not {SIM, "ingest_sales"} <= dags:
                time.sleep(3)  # the dag-processor parses the DAG folder first
                dags = {d["dag_id"] for d in _api(base, "/api/v2/dags?limit=100", token)["dags"]}
            assert {SIM, "ingest_sales"} <= dags, f"DAGs never parsed: {dags}"
            yield {"base": base, "token": token, "settings": settings}
        finally:
            stop_components(procs)
            os.environ.clear()
            os.environ.update(saved)


def _q(run_id: str) -> str:
    return urllib.parse.quote(run_id, safe="")


def _trigger(af, dag_id: str, logical_date: datetime | None = None, conf: dict | None = None) -> str:
    body: dict = {"logical_date": logical_date.isoformat() if logical_date else None, "conf": conf or {}}
    if logical_date:  # a manual run's interval is the day before run_after (lifecycle.pipeline.context)
        body["run_after"] = logical_date.isoformat()
    return _api(af["base"], f"/api/v2/dags/{dag_id}/dagRuns", af["token"], body)["dag_run_id"]


def _wait(af, dag_id: str, run_id: str, run_type: str | None = None) -> dict:
    deadline = time.monotonic() + WAIT
    while True:
        run = _api(af["base"], f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}", af["token"])
        if run["state"] in ("success", "failed") and (run_type is None or run["run_type"] == run_type):
            assert run["state"] == "success", f"{dag_id} {run_id} failed:\n{_why(af, dag_id, run_id)}"
            return run
        assert time.monotonic() < deadline, f"{dag_id} {run_id} still {run['state']} after {WAIT} s"
        time.sleep(3)


def _why(af, dag_id: str, run_id: str) -> str:
    out = []
    try:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances"
        for ti in _api(af["base"], path, af["token"])["task_instances"]:
            out.append(f"{ti['task_id']}: {ti['state']} (try {ti['try_number']})")
            if ti["try_number"]:
                log = _api(af["base"], f"{path}/{ti['task_id']}/logs/{ti['try_number']}?full_content=true",
                           af["token"])
                out.append(json.dumps(log.get("content"), default=str)[-3000:])
    except Exception as exc:  # the diagnosis is best effort; the failure stands
        out.append(f"(could not read the task logs: {exc})")
    return "\n".join(out)


def _xcom(af, dag_id: str, run_id: str, task_id: str) -> dict:
    value = _api(af["base"], f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}/"
                 "xcomEntries/return_value", af["token"])["value"]
    return value if isinstance(value, dict) else json.loads(value)


def _sources(settings) -> dict:
    """Every source table of the sales database: rows and a hash of their content."""
    from lifecycle.clients import pg

    out = {}
    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        for table in ("public.products", "public.customers", "public.orders", "public.order_items",
                      "simulator.runs"):
            cur.execute(f"SELECT count(*), coalesce(sum(hashtextextended(to_jsonb(t)::text, 0)), 0) "
                        f"FROM {table} t")
            out[table] = cur.fetchone()
    return out


def _dt(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


@pytest.mark.chaos_slow
def test_airflow_backfill_of_past_intervals_after_new_data(airflow, chaos_case):
    af, settings = airflow, airflow["settings"]
    chaos_case.fault = ("Airflow 3 backfill (REST API, reprocess completed) of 2 past daily intervals "
                        "after a 3rd day of data arrived")
    # the original runs: logical date D runs the interval [D - 1 day, D)
    past = [datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC)]
    original = {}
    for logical in past:
        run_id = _trigger(af, SIM, logical, CONF)
        _wait(af, SIM, run_id)
        original[logical] = (run_id, _xcom(af, SIM, run_id, "simulate_day"))
    assert [v["business_date"] for _, v in original.values()] == ["2026-11-20", "2026-11-21"]
    assert not any(v.get("already_simulated") for _, v in original.values())
    new_run = _trigger(af, SIM, datetime(2026, 11, 23, tzinfo=UTC), CONF)  # new data arrives
    _wait(af, SIM, new_run)
    before = _sources(settings)

    backfill = _api(af["base"], "/api/v2/backfills", af["token"], {
        "dag_id": SIM, "from_date": past[0].isoformat(), "to_date": past[-1].isoformat(),
        "reprocess_behavior": "completed", "max_active_runs": 1, "dag_run_conf": CONF})
    deadline = time.monotonic() + WAIT
    while _api(af["base"], f"/api/v2/backfills/{backfill['id']}", af["token"])["completed_at"] is None:
        assert time.monotonic() < deadline, f"backfill {backfill['id']} not completed after {WAIT} s"
        time.sleep(3)
    runs = _api(af["base"], f"/api/v2/dags/{SIM}/dagRuns?limit=100", af["token"])["dag_runs"]
    backfilled = sorted((r for r in runs if r["run_type"] == "backfill"), key=lambda r: r["logical_date"])
    assert [_dt(r["logical_date"]) for r in backfilled] == past, (
        backfill, [(r["dag_run_id"], r["run_type"], r["state"], r["logical_date"]) for r in runs],
        _api(af["base"], "/api/v2/backfills/dry_run", af["token"], {
            "dag_id": SIM, "from_date": past[0].isoformat(), "to_date": past[-1].isoformat(),
            "reprocess_behavior": "completed"}))
    assert len(runs) == 3, f"the backfill created runs of its own: {[r['dag_run_id'] for r in runs]}"
    for run, logical in zip(backfilled, past, strict=True):
        run = _wait(af, SIM, run["dag_run_id"], run_type="backfill")
        again = _xcom(af, SIM, run["dag_run_id"], "simulate_day")
        assert again.pop("already_simulated", None) is True, f"interval {logical} simulated again: {again}"
        assert again == original[logical][1], f"interval {logical}: {again} != {original[logical][1]}"
    after = _sources(settings)
    assert after == before, f"the backfill changed the sources: {before} -> {after}"
    run_in_process(settings, "ingest_sales", "ingest_events", "ingest_reviews", "lake", "warehouse")
    report = reconcile(settings, chaos_case)
    assert_reconciled(report)
    chaos_case.outcome = (f"backfill {backfill['id']}: {len(backfilled)} runs succeeded under the scheduler, "
                          "each returned its original result; sources unchanged; no extra run; reconciled")


@pytest.mark.chaos_slow
def test_airflow_runs_two_triggered_runs_one_after_the_other(airflow, chaos_case):
    af, settings = airflow, airflow["settings"]
    chaos_case.fault = "two ingest_sales runs triggered at once through the REST API (max_active_runs=1)"
    sim = _trigger(af, SIM, datetime(2026, 11, 25, tzinfo=UTC), CONF)  # a day of new data
    _wait(af, SIM, sim)
    ids = [_trigger(af, "ingest_sales"), _trigger(af, "ingest_sales")]
    runs = sorted((_wait(af, "ingest_sales", i) for i in ids), key=lambda r: r["start_date"])
    first, second = runs
    assert _dt(first["end_date"]) <= _dt(second["start_date"]), (
        f"the scheduler ran them at once: {first['start_date']}..{first['end_date']} and "
        f"{second['start_date']}..{second['end_date']}")
    results = [_xcom(af, "ingest_sales", r["dag_run_id"], "replicate_sales") for r in runs]
    assert results[0]["rows_out"] > 0, results  # the first replicated the new day
    assert results[1]["rows_out"] == 0, results  # the second found nothing left to replicate
    listed = _api(af["base"], "/api/v2/dags/ingest_sales/dagRuns?limit=100", af["token"])["dag_runs"]
    assert sorted(r["dag_run_id"] for r in listed) == sorted(ids), "a run the test did not trigger"
    run_in_process(settings, "ingest_events", "ingest_reviews", "lake", "warehouse")
    report = reconcile(settings, chaos_case)
    assert_reconciled(report)
    chaos_case.outcome = (f"2 of 2 succeeded, one after the other (rows out: {results[0]['rows_out']}, then "
                          f"{results[1]['rows_out']}); reconciled")
