"""`make airflow` for real: the four Airflow 3 components on the embedded services, in a browser.

One Airflow for the whole module (starting it is the slow part): api-server, scheduler,
dag-processor and triggerer exactly as `lifecycle airflow` starts them (on a free port), with
its own metadata database and no scheduled runs, so it never acts on the data other tests use
on its own. The simple auth manager gets one user with a password, so the browser goes through
the real login form. Then:

- the REST API (`/api/v2`, JWT from `/auth/token`) lists every DAG, unpaused, without import
  errors, tagged by lifecycle stage;
- headless Chromium (Debian's package, driven by Playwright's Python client; `make browser`
  installs it, `LIFECYCLE_CHROMIUM` points elsewhere, e.g. on macOS) logs in, shows the DAG
  list grouped by stage tag and the asset graph from the sources to serving; screenshots go to
  `test-output/airflow-ui/` (git-ignored, removed by `make clean`);
- a triggered run of the lifecycle's first stages (simulate a small day into the sources, then
  replicate the sales database to the lake) succeeds under the scheduler and LocalExecutor, and
  its asset event is recorded. The environment is reset afterwards.

At the end every component is stopped and none is left running.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest
from conftest import reset_environment, tool_missing

from lifecycle.ops.airflow import start_components, stop_components, wait_healthy
from lifecycle.ops.services import free_port
from lifecycle.pipeline.tags import STAGES

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "airflow-ui"
CHROMIUM = Path(os.environ.get("LIFECYCLE_CHROMIUM") or "/usr/bin/chromium")
LIFECYCLE_DAGS = {"simulate_sales_platform", "ingest_sales", "ingest_user_activity", "ingest_reviews",
                  "lake_clean", "lake_maintenance", "warehouse_load", "dbt_build", "serve_publish", "observe"}
USER = "tour"


def _request(url: str, token: str | None = None, body: dict | None = None, form: dict | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    elif form is not None:
        data, headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def airflow(settings, tmp_path_factory):
    from dataclasses import replace

    from lifecycle.ops.services import ensure_databases

    settings = replace(settings, pg=replace(settings.pg, airflow_db="airflow_service_test"))
    ensure_databases(settings)
    password = secrets.token_urlsafe(12)
    pw_file = tmp_path_factory.mktemp("auth") / "passwords.json"
    pw_file.write_text(json.dumps({USER: password}))
    port = free_port()
    # an empty HOME: Airflow's components and task runs must write nothing outside the project
    home = tmp_path_factory.mktemp("home")
    saved = dict(os.environ)
    extra = {
        # only what this test triggers runs: the scheduler creates no scheduled or asset runs
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # a user with a password instead of the local default (everyone is admin, no login form)
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(pw_file),
        "HOME": str(home),
    }
    procs = []
    try:
        procs = start_components(settings, port, extra_env=extra)
        os.environ["HOME"] = saved.get("HOME", "")  # the components have theirs; this process keeps its own
        assert wait_healthy(port, timeout=180), "api-server never became healthy"
        base = f"http://localhost:{port}"
        deadline = time.monotonic() + 120
        health = {}
        while time.monotonic() < deadline:
            health = _request(f"{base}/api/v2/monitor/health")
            if all(health.get(c, {}).get("status") == "healthy"
                   for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")):
                break
            time.sleep(2)
        token = _request(f"{base}/auth/token", body={"username": USER, "password": password})["access_token"]
        dags = {}
        while time.monotonic() < deadline and not LIFECYCLE_DAGS <= dags.keys():
            dags = {d["dag_id"]: d for d in _request(f"{base}/api/v2/dags?limit=100", token)["dags"]}
            time.sleep(2)
        yield {"base": base, "token": token, "password": password, "health": health, "dags": dags,
               "settings": settings, "home": home}
    finally:
        stop_components(procs)
        os.environ.clear()
        os.environ.update(saved)
        pids = {p.pid for p in procs}
        left = [p for p in psutil.process_iter() if p.pid in pids and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"Airflow components left running: {left}"



def test_airflow_serves_the_ui_and_schedules_every_dag(airflow):
    base, token, dags = airflow["base"], airflow["token"], airflow["dags"]
    health = airflow["health"]
    assert health["scheduler"]["status"] == "healthy" and health["dag_processor"]["status"] == "healthy"
    assert LIFECYCLE_DAGS <= dags.keys()
    assert not any(d["is_paused"] for d in dags.values())
    # hourly, and whenever the simulator has written to the source
    assert dags["ingest_sales"]["timetable_summary"] == "Asset or 0 * * * *"
    assert dags["lake_clean"]["timetable_summary"] == "Asset"
    assert dags["lake_maintenance"]["timetable_summary"] == "0 0 * * *"  # daily
    assert _request(f"{base}/api/v2/importErrors", token)["total_entries"] == 0
    page = urllib.request.urlopen(f"{base}/", timeout=10).read().decode()
    # the React UI's page, rendered (its base URL filled in, not the template's placeholder)
    assert "<title>Airflow</title>" in page and "{{" not in page and 'id="root"' in page
    # a wrong password gets no token: 401, not another error
    with pytest.raises(urllib.error.HTTPError) as refused:
        _request(f"{base}/auth/token", body={"username": USER, "password": "wrong"})
    assert refused.value.code == 401


def test_dags_are_grouped_by_stage_tags(airflow):
    base, token = airflow["base"], airflow["token"]
    tagged: dict[str, set[str]] = {}
    for stage in STAGES.values():
        q = urllib.parse.urlencode({"tags": stage.tag, "limit": 100})
        tagged[stage.tag] = {d["dag_id"] for d in _request(f"{base}/api/v2/dags?{q}", token)["dags"]}
    assert tagged["stage:source"] == {"simulate_sales_platform"}
    assert tagged["stage:ingestion"] == {"ingest_sales", "ingest_user_activity", "ingest_reviews"}
    assert tagged["stage:transformation"] == {"lake_clean", "dbt_build"}
    assert tagged["stage:storage"] == {"lake_clean", "lake_maintenance", "warehouse_load"}
    assert tagged["stage:serving"] == {"serve_publish"}
    assert tagged["undercurrent:dataops"] == {"observe"}
    assert set().union(*tagged.values()) == LIFECYCLE_DAGS


# ---- the UI in headless Chromium ---------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_page(airflow, tmp_path_factory):
    if not CHROMIUM.exists():
        tool_missing(f"Chromium is not installed at {CHROMIUM}: run `make browser` (apt-get install chromium) "
                    "or set LIFECYCLE_CHROMIUM to a Chromium or Chrome binary")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # Chromium's profile and crash reports go to a HOME of its own, not the user's
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"],
                                    env={**os.environ, "HOME": str(tmp_path_factory.mktemp("chromium-home"))})
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_ui_login_then_the_dag_list_by_stage(airflow, browser_page):
    page, base = browser_page, airflow["base"]
    page.goto(f"{base}/")
    # not logged in: the simple auth manager's login form
    page.wait_for_selector("input[name='username']")
    _shot(page, "01-login")
    page.fill("input[name='username']", USER)
    page.fill("input[name='password']", airflow["password"])
    page.locator("button[type='submit']").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)

    page.goto(f"{base}/dags")
    for dag_id in LIFECYCLE_DAGS:
        page.get_by_text(dag_id, exact=True).first.wait_for()
    _shot(page, "02-dag-list")
    for stage in STAGES.values():
        page.goto(f"{base}/dags?{urllib.parse.urlencode({'tags': stage.tag})}")
        expected = {d for d, info in airflow["dags"].items() if stage.tag in [t["name"] for t in info["tags"]]}
        for dag_id in expected:
            page.get_by_text(dag_id, exact=True).first.wait_for()
        shown = {d for d in LIFECYCLE_DAGS if page.get_by_text(d, exact=True).count()}
        assert shown == expected, stage.tag
        _shot(page, f"03-dags-{stage.tag.replace(':', '-')}")


def test_ui_dag_page_shows_its_stage_doc(airflow, browser_page):
    page, base = browser_page, airflow["base"]
    page.goto(f"{base}/dags/ingest_sales")
    page.get_by_text("ingest_sales").first.wait_for()
    # the doc_md is behind the "Dag Docs" button
    page.get_by_role("button", name="Dag Docs").click()
    # its own doc (every stage DAG's footer names a README section; the heading is this DAG's)
    page.get_by_text("Ingest: RDS → S3 raw (DMS layout)").first.wait_for()
    page.get_by_text("README.md#ingestion").first.wait_for()
    _shot(page, "04-dag-docs-ingest_sales")


def test_ui_asset_graph_runs_from_the_sources_to_serving(airflow, browser_page):
    page, base, token = browser_page, airflow["base"], airflow["token"]
    assets = {a["name"]: a for a in _request(f"{base}/api/v2/assets?limit=100", token)["assets"]}
    assert {"source_sales_rds", "raw_sales", "lake_clean", "warehouse_landing", "warehouse_models",
            "serving"} <= assets.keys()
    page.goto(f"{base}/assets")
    page.get_by_text("serving", exact=True).first.wait_for()
    _shot(page, "05-assets")
    page.goto(f"{base}/assets/{assets['serving']['id']}")
    page.wait_for_selector(".react-flow__node")
    # the graph of the serving asset holds the whole connected lifecycle, sources first
    page.wait_for_function("document.querySelectorAll('.react-flow__node').length >= 15")
    text = " ".join(page.locator(".react-flow__node").all_inner_texts())
    for name in ("source_sales_rds", "simulate_sales_platform", "ingest_sales", "raw_sales", "lake_clean",
                 "warehouse_load", "dbt_build", "serve_publish", "serving", "observe"):
        assert name in text, f"{name} is not in the asset graph: {text[:500]}"
    _shot(page, "06-asset-graph-serving")


# ---- a triggered run, through the REST API -----------------------------------------------------


def _trigger_and_wait(base: str, token: str, dag_id: str, conf: dict | None = None, timeout: float = 180) -> dict:
    run = _request(f"{base}/api/v2/dags/{dag_id}/dagRuns", token, body={"logical_date": None, "conf": conf or {}})
    run_id = urllib.parse.quote(run["dag_run_id"], safe="")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = _request(f"{base}/api/v2/dags/{dag_id}/dagRuns/{run_id}", token)
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(2)
    raise AssertionError(f"{dag_id} run {run['dag_run_id']} still {run['state']} after {timeout} s\n"
                         + _why(base, token, dag_id, run["dag_run_id"]))


def _why(base: str, token: str, dag_id: str, run_id: str) -> str:
    """The run's task states and the end of each task's log, for a failure message."""
    rid = urllib.parse.quote(run_id, safe="")
    out = []
    try:
        tis = _request(f"{base}/api/v2/dags/{dag_id}/dagRuns/{rid}/taskInstances", token)["task_instances"]
        for ti in tis:
            out.append(f"{ti['task_id']}: {ti['state']} (try {ti['try_number']})")
            if ti["try_number"]:
                log = _request(f"{base}/api/v2/dags/{dag_id}/dagRuns/{rid}/taskInstances/{ti['task_id']}/logs/"
                               f"{ti['try_number']}?full_content=true", token)
                out.append(json.dumps(log.get("content"), default=str)[-3000:])
    except Exception as exc:  # the diagnosis is best effort; the failure stands
        out.append(f"(could not read the task logs: {exc})")
    return "\n".join(out)


def test_a_triggered_lifecycle_run_succeeds(airflow):
    base, token, settings = airflow["base"], airflow["token"], airflow["settings"]
    try:
        sim = _trigger_and_wait(base, token, "simulate_sales_platform", {"scale": 10, "seed": 7})
        assert sim["state"] == "success", _why(base, token, "simulate_sales_platform", sim["dag_run_id"])
        ingest = _trigger_and_wait(base, token, "ingest_sales")
        assert ingest["state"] == "success", _why(base, token, "ingest_sales", ingest["dag_run_id"])
        run_id = urllib.parse.quote(ingest["dag_run_id"], safe="")
        xcom = _request(f"{base}/api/v2/dags/ingest_sales/dagRuns/{run_id}/taskInstances/replicate_sales/"
                        "xcomEntries/return_value", token)["value"]
        value = xcom if isinstance(xcom, dict) else json.loads(xcom)
        assert value["rows_out"] > 0 and value["files_written"] > 0, value  # the simulated orders, in the lake
        events = _request(f"{base}/api/v2/assets/events?limit=100", token)["asset_events"]
        emitted = {(e["source_dag_id"], e["uri"]) for e in events}
        assert ("simulate_sales_platform", "lifecycle://source/sales") in emitted, emitted
        assert ("ingest_sales", "lifecycle://raw/sales") in emitted, emitted
    finally:
        reset_environment(settings)


def test_airflow_writes_nothing_in_home(airflow):
    """Runs last in this module: by now the components ran and tasks ran under LocalExecutor."""
    written = sorted(str(p.relative_to(airflow["home"])) for p in airflow["home"].rglob("*"))
    assert written == [], f"Airflow wrote under HOME: {written[:20]}"
