"""The Makefile as a new user meets it: `make help` lists every target, `make clean` removes every
state the project created, and the project writes nothing outside its folder (but pip/uv caches).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.ops.services import free_port

REPO = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _phony() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return {t for line in re.findall(r"^\.PHONY:(.*)$", text, flags=re.M) for t in line.split()}


def test_make_help_lists_every_phony_target_with_a_description():
    out = subprocess.run([MAKE, "-s", "help"], cwd=REPO, capture_output=True, text=True, timeout=60).stdout
    listed = dict(re.findall(r"^  make (\S+)\s+(.+)$", out, flags=re.M))
    missing = _phony() - listed.keys()
    assert not missing, f"targets without a `## description` on their line: {sorted(missing)}"
    assert all(len(d) > 10 for d in listed.values()), listed
    assert {"demo", "test", "clean", "airflow"} <= listed.keys()


def test_make_clean_removes_every_state_the_project_created(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("Makefile", "requirements.lock", "requirements-spark.lock", "pyproject.toml"):
        shutil.copy(REPO / name, repo / name)
    kept = ["bench/results/committed.json", "plugins/lifecycle/cli/__init__.py", "dbt_project/models/x.sql", ".env"]
    created = [".venv/bin/python", ".lifecycle/pgdata/PG_VERSION", ".lifecycle/airflow/airflow.cfg",
               "dbt_project/target/manifest.json", "dbt_project/logs/dbt.log", "dbt_project/dbt_packages/p/x",
               "logs/x.log", "test-output/airflow-ui/01-login.png", ".pytest_cache/v/x", ".ruff_cache/x",
               "plugins/lifecycle/__pycache__/cli.cpython-311.pyc", "tests/__pycache__/x.pyc",
               "lifecycle.egg-info/PKG-INFO", "bench/results/20990101T000000Z.json"]
    for rel in kept + created:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("x")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "Makefile", "bench/results/committed.json", "plugins", "dbt_project/models"],
                   cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    proc = subprocess.run([MAKE, "-s", "clean"], cwd=repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    left = [rel for rel in created if (repo / rel).exists()]
    assert not left, f"make clean left {left}"
    assert all((repo / rel).exists() for rel in kept), "make clean removed a file it did not create"


@pytest.mark.services  # starts the embedded services itself (`lifecycle services up`)
def test_nothing_is_written_outside_the_project(tmp_path):
    """Services, infra, a simulated day, a full load into the lake, the lake jobs, a lake query: with
    HOME an empty folder, it stays empty (state goes to LIFECYCLE_HOME). Airflow's four components
    and its task runs get the same check in tests/pipeline/test_airflow_service.py."""
    home, state = tmp_path / "home", tmp_path / "state"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "LIFECYCLE_", "AWS_", "XDG_", "DBT_"))}
    env.update({"HOME": str(home), "LIFECYCLE_HOME": str(state), "LIFECYCLE_PG_PORT": str(free_port()),
                "LIFECYCLE_MOTO_PORT": str(free_port()), "NO_COLOR": "1"})
    state.mkdir()
    state.chmod(0o755)  # the `pgserver` OS user must traverse it when we run as root
    tmp_path.chmod(0o755)

    def cli(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "lifecycle.cli", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"lifecycle {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout

    try:
        cli("services", "up")
        cli("infra", "apply")
        cli("simulate", "--scale", "5", "--date", "2026-11-20")
        cli("cdc", "resnapshot", "--yes")  # the sales database into the raw zone (DMS full load)
        cli("jobs", "run", "all")
        out = cli("query", "--lake", "-o", str(tmp_path / "orders.csv"),
                  "select count(*) as orders from lake_clean.orders")
        assert int((tmp_path / "orders.csv").read_text().splitlines()[1]) > 0, out
    finally:
        subprocess.run([sys.executable, "-m", "lifecycle.cli", "services", "down"], env=env, cwd=REPO,
                       capture_output=True, timeout=120)
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert written == [], f"written under HOME: {written[:20]}"


def test_no_linux_only_paths_or_commands_in_the_code():
    """The embedded target runs on macOS too: no /proc, /dev/shm, /usr/bin/…, /tmp literals, no
    `ss`/`ip`/`free` commands in plugins/ and dags/ (process facts come from psutil; temporary
    files from tempfile or LIFECYCLE_HOME)."""
    pattern = re.compile(r"""/proc/|/dev/shm|["'](/usr/bin/|/tmp/|/var/)|\[\s*["'](ss|ip|free|nproc|lsblk)["']""")
    hits = []
    for path in [*(REPO / "plugins").rglob("*.py"), *(REPO / "dags").glob("*.py")]:
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line):
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not hits, hits
