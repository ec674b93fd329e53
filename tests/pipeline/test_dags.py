"""DAG integrity: every DAG imports cleanly, does nothing at parse time, and follows the rules.

Parsing runs in a fresh interpreter with a Python audit hook that turns any network
connection or DNS lookup into an error, and with no Airflow metadata database, connections
or variables configured: a DAG file that touched any of them at parse time would show up as
an import error. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p.stem for p in (REPO / "dags").glob("*.py"))

PARSE_SCRIPT = r"""
import json, sys, time

def guard(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        raise RuntimeError(f"network access at DAG parse time: {event} {args[1:] if len(args) > 1 else ''}")
sys.addaudithook(guard)

t0 = time.monotonic()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v)[-2000:] for k, v in bag.import_errors.items()}, "seconds": time.monotonic() - t0, "dags": {}}
def asset_names(cond):
    if cond is None:
        return []
    if hasattr(cond, "objects"):  # AssetAny / AssetAll
        return [n for o in cond.objects for n in asset_names(o)]
    return [cond.name]

for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "schedule_assets": sorted(asset_names(getattr(dag.timetable, "asset_condition", None))),
        "outlets": sorted({a.name for t in dag.tasks for a in (t.outlets or []) if hasattr(a, "name")}),
        "fileloc": dag.fileloc,
        "owners": sorted({t.owner for t in dag.tasks}),
        "retries": sorted({t.retries for t in dag.tasks}),
        "tags": sorted(dag.tags),
        "doc_md": dag.doc_md or "",
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "n_tasks": len(dag.tasks),
        "task_ids": [t.task_id for t in dag.tasks],
        "failure_callbacks": all(t.on_failure_callback for t in dag.tasks),
    }
try:  # Airflow's plugin loader must not shadow packages with our modules (e.g. `dbt`)
    from dbt.cli.main import dbtRunner  # noqa: F401
    out["dbt_importable"] = True
except ImportError as exc:
    out["dbt_importable"] = str(exc)
print("@@JSON@@" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        # a database that does not exist: any parse-time query would fail loudly
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://nobody@127.0.0.1:1/none",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "LIFECYCLE_HOME": str(home / "lifecycle"),
    })
    proc = subprocess.run([sys.executable, "-c", PARSE_SCRIPT, str(REPO / "dags")], env=env,
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("@@JSON@@"))
    return json.loads(line[len("@@JSON@@"):])


def test_every_dag_file_imports_without_parse_time_access(parsed):
    assert parsed["errors"] == {}
    assert parsed["dbt_importable"] is True


def test_one_dag_per_file_and_dag_id_is_file_name(parsed):
    assert sorted(parsed["dags"]) == DAG_FILES
    for dag_id, d in parsed["dags"].items():
        assert Path(d["fileloc"]).stem == dag_id


@pytest.mark.parametrize("dag_id", DAG_FILES)
def test_dag_conventions(parsed, dag_id):
    d = parsed["dags"][dag_id]
    assert d["owners"] and "airflow" not in d["owners"], "owner must be set"
    assert d["tags"] and "lifecycle" in d["tags"]
    assert len(d["doc_md"].strip()) > 80, "doc_md must explain the stage"
    assert d["start_date"] == "2026-01-01T00:00:00+00:00"
    assert d["catchup"] is False
    assert d["max_active_runs"] == 1
    assert d["failure_callbacks"], "every task alerts on failure"
    if dag_id != "simulate_sales_platform":
        assert min(d["retries"]) >= 1


@pytest.mark.parametrize("dag_id", DAG_FILES)
def test_dag_is_tagged_with_its_stage_and_links_its_readme_section(parsed, dag_id):
    """The DAG list groups by `stage:*` / `undercurrent:*` tags; each DAG's doc names the README
    section and docs/ page of its stage, and both exist."""
    from lifecycle.pipeline.tags import STAGES

    d = parsed["dags"][dag_id]
    stages = [s for s in STAGES.values() if s.tag in d["tags"]]
    assert stages, f"{dag_id} has no stage:/undercurrent: tag: {d['tags']}"
    anchors = _readme_anchors()
    for stage in stages:
        assert f"README.md#{stage.readme_anchor}" in d["doc_md"], (dag_id, stage)
        assert stage.readme_anchor in anchors, f"README has no section #{stage.readme_anchor}"
        assert (REPO / stage.doc).is_file(), stage.doc
        assert stage.doc in d["doc_md"]


def _readme_anchors() -> set[str]:
    import re

    heads = re.findall(r"^#{1,6} (.+)$", (REPO / "README.md").read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_asset_graph_runs_from_the_sources_to_serving(parsed):
    """Following asset edges (outlet → DAG scheduled on it) from the simulator reaches every
    lifecycle DAG but the housekeeping on a clock (lake_maintenance, daily): the Assets view
    shows the whole lifecycle, sources to serving."""
    dags = parsed["dags"]
    consumers = {}
    for dag_id, d in dags.items():
        for name in d["schedule_assets"]:
            consumers.setdefault(name, set()).add(dag_id)
    seen, todo = set(), ["simulate_sales_platform"]
    while todo:
        dag_id = todo.pop()
        if dag_id in seen:
            continue
        seen.add(dag_id)
        for name in dags[dag_id]["outlets"]:
            todo.extend(consumers.get(name, ()))
    housekeeping = {"lake_maintenance"}
    assert not dags["lake_maintenance"]["schedule_assets"]
    assert seen == set(dags) - housekeeping, f"not reachable from the sources: {set(dags) - seen}"
    assert dags["simulate_sales_platform"]["outlets"] == [
        "source_product_reviews_dynamodb", "source_sales_rds", "source_user_activity_kinesis"]
    assert "serving" in dags["serve_publish"]["outlets"]


def test_dag_files_only_wire():
    """DAG files import no heavy libraries at module level (they belong inside tasks)."""
    heavy = ("boto3", "duckdb", "psycopg2", "pyarrow", "pandas", "sqlframe", "polars", "faker")
    for path in (REPO / "dags").glob("*.py"):
        top = [x for x in path.read_text().splitlines() if x.startswith(("import ", "from "))]
        assert not [x for x in top if any(f" {h}" in x or f"{h}." in x for h in heavy)], path.name
