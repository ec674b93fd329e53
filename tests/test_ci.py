"""CI/CD configuration: the GitHub Actions workflow, pre-commit, yamllint and sqlfluff.

Input: ``.github/workflows/ci.yml``, ``.ci/run``, ``Makefile``, ``.pre-commit-config.yaml``,
``.yamllint``, ``dbt_project/.sqlfluff`` and the files they name.
Output: assertions that the workflow parses and names only make targets and files that
exist, that its test jobs together run every test file once (as ``make test`` in
``.ci/run`` does), that the pre-commit config is valid and runs the tools of the venv, and
that yamllint and sqlfluff pass on the repository as it is.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
VENV_BIN = Path(sys.executable).parent
JOBS = {"lint", "unit", "dag-integrity", "e2e-embedded", "dbt-build", "chaos", "compose", "airflow-image"}


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _runs(job: dict) -> list[str]:
    return [" ".join(step["run"].split()) for step in job["steps"] if "run" in step]


def _make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", (ROOT / "Makefile").read_text(), re.M))


def _called_make_targets(text: str) -> set[str]:
    return {t for m in re.finditer(r"\bmake((?:[ \t]+[a-z][\w-]*)+)", text) for t in m.group(1).split()}


def test_workflow_has_the_jobs_and_runs_on_push_and_pull_requests():
    wf = _workflow()
    assert set(wf["jobs"]) == JOBS
    # PyYAML reads the `on:` key as the boolean True (YAML 1.1)
    triggers = wf.get("on", wf.get(True))
    assert {"push", "pull_request"} <= set(triggers)
    for name, job in wf["jobs"].items():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w-]+/[\w-]+@v\d+", step["uses"]), f"{name}: pin {step['uses']}"


def test_every_make_target_and_file_the_workflow_names_exists():
    targets = _make_targets()
    called, files = set(), set()
    for job in _workflow()["jobs"].values():
        for run in _runs(job):
            called |= _called_make_targets(run)
            files |= {w.split("=", 1)[-1] for w in shlex.split(run.replace("$", ""))
                      if re.search(r"\.(py|yml|yaml|example|Dockerfile)$|^(tests|docker|\.ci)/", w.split("=", 1)[-1])}
        for step in job["steps"]:
            with_ = step.get("with") or {}
            if "file" in with_:
                files.add(with_["file"])
    assert called, "the workflow calls no make target"
    assert called <= targets, f"missing make targets: {called - targets}"
    missing = sorted(f for f in files if not (ROOT / f).exists())
    assert not missing, missing
    # .ci/run's targets are all covered (its `make test` is split into the test jobs)
    ci_run = _called_make_targets((ROOT / ".ci" / "run").read_text())
    assert ci_run - {"test"} <= called and "test" in ci_run


def test_the_test_jobs_together_run_every_test_file_once():
    all_tests = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py")}
    explicit: list[str] = []
    ignored: set[str] = set()
    catch_all = []
    for name, job in _workflow()["jobs"].items():
        for run in _runs(job):
            if "pytest" not in run:
                continue
            words = shlex.split(run)
            files = [w for w in words if w.startswith("tests/")]
            ignores = {w.split("=", 1)[1] for w in words if w.startswith("--ignore=")}
            if ignores:
                catch_all.append(name)
                ignored |= ignores
            else:
                assert files, f"{name}: pytest without files runs everything twice"
                explicit += files
    assert len(catch_all) == 1, catch_all
    assert len(explicit) == len(set(explicit)), "a test file runs in two jobs"
    assert set(explicit) == ignored, "the catch-all job must ignore exactly the files other jobs run"
    assert set(explicit) <= all_tests


def test_compose_job_validates_every_profile():
    (job,) = [j for n, j in _workflow()["jobs"].items() if n == "compose"]
    config = next(r for r in _runs(job) if r.startswith("docker compose"))
    profiles = set(re.findall(r"--profile (\S+)", config))
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    declared = {p for svc in compose["services"].values() for p in svc.get("profiles", [])}
    assert profiles == declared


def test_pre_commit_config_is_valid_and_local():
    path = ROOT / ".pre-commit-config.yaml"
    proc = subprocess.run([str(VENV_BIN / "pre-commit"), "validate-config", str(path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = yaml.safe_load(path.read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert {r["repo"] for r in config["repos"]} == {"local"}, "no hook repository to download"
    assert {"ruff", "sqlfluff", "yamllint", "detect-secrets"} <= set(hooks)
    assert all(h["language"] == "system" for h in hooks.values())
    assert "--baseline .secrets.baseline" in hooks["detect-secrets"]["entry"]
    # every hook runs a tool of the project's venv (pinned in requirements.lock)
    for hook in hooks.values():
        tools = re.findall(r"(?:^|\s|/)\.venv/bin/([\w-]+)", hook["entry"])
        assert tools, hook["id"]
        for tool in tools:
            assert (VENV_BIN / tool).exists(), f"{hook['id']}: {tool} not in the venv"


def test_yamllint_passes_on_the_repository():
    proc = subprocess.run([str(VENV_BIN / "yamllint"), "-f", "parsable", "."], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:]
    # Control: it does report an error.
    bad = subprocess.run([str(VENV_BIN / "yamllint"), "-c", str(ROOT / ".yamllint"), "-"], input="a: 1\na: 2\n",
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode != 0 and "duplication" in bad.stdout


@pytest.mark.timeout(600)
def test_sqlfluff_passes_on_the_dbt_models():
    # --processes 0: one process per core (the models are linted independently)
    proc = subprocess.run([str(VENV_BIN / "sqlfluff"), "lint", "models", "--processes", "0"],
                          capture_output=True, text=True,
                          timeout=600, cwd=ROOT / "dbt_project")
    assert proc.returncode == 0, proc.stdout[-6000:]
    # every model was linted (none skipped by a templating failure)
    assert "TMP" not in proc.stdout and "PRS" not in proc.stdout
    # Control: a finding fails it.
    bad = subprocess.run([str(VENV_BIN / "sqlfluff"), "lint", "-"], input="SELECT a  FROM t\n",
                         capture_output=True, text=True, timeout=300, cwd=ROOT / "dbt_project")
    assert bad.returncode != 0
