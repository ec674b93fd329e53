"""dbt helpers: where the dbt project is, its target, manifest and command line.

Input: the environment, read when a function is called (for Cosmos at DAG parse time):
``DBT_TARGET`` (profiles.yml target, default ``embedded``), optionally
``LIFECYCLE_DBT_PROJECT_DIR`` (default ``<repo>/dbt_project``) and
``LIFECYCLE_DBT_MANIFEST`` (default ``<project>/target/manifest.json``).
Output: path constants, the ``dbt`` executable of this Python environment and
``dbt_command``; ``lifecycle.pipeline.cosmos`` builds the Cosmos configs from these.

The DAG is rendered from a pre-built manifest (``LoadMode.DBT_MANIFEST``): parsing the DAG
never runs dbt nor touches the warehouse. Produce the manifest with
``dbt parse --project-dir dbt_project --profiles-dir dbt_project`` (no database needed)
whenever the dbt project changes. Credentials come from ``profiles.yml`` through
``env_var()``; nothing here reads a connection or a Variable.

``build_lock`` serialises whole-project builds. Importing this module does nothing but compute
paths.
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from lifecycle.settings import REPO_ROOT, Settings

DBT_PROJECT_DIR = Path(os.environ.get("LIFECYCLE_DBT_PROJECT_DIR") or REPO_ROOT / "dbt_project")
PROFILES_YML = DBT_PROJECT_DIR / "profiles.yml"
MANIFEST_PATH = DBT_PROJECT_DIR / "target" / "manifest.json"
PROJECT_NAME = "lifecycle"
PROFILE_NAME = "lifecycle"
DEFAULT_TARGET = "embedded"

# The serving models dbt builds into SERVING_SCHEMA (what serve_publish swaps into `serving`).
SERVING_MODELS = ("daily_sales", "product_performance", "funnel_daily")
SERVING_SCHEMA = "serving_next"  # serve_publish swaps it into `serving`


def dbt_target() -> str:
    """The profiles.yml target: env ``DBT_TARGET``, default ``embedded``."""
    return os.environ.get("DBT_TARGET") or DEFAULT_TARGET


def manifest_path() -> Path:
    """The manifest the DAG renders from: env ``LIFECYCLE_DBT_MANIFEST`` or ``MANIFEST_PATH``."""
    return Path(os.environ.get("LIFECYCLE_DBT_MANIFEST") or MANIFEST_PATH)


def dbt_executable() -> str:
    """``DBT_EXECUTABLE`` if set (the compose image keeps dbt in its own venv), else the
    ``dbt`` next to this interpreter (the venv's), else the one on PATH."""
    override = os.environ.get("DBT_EXECUTABLE")
    if override:
        return override
    candidate = Path(sys.executable).parent / "dbt"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("dbt")
    if not found:
        raise FileNotFoundError(
            f"no dbt executable next to {sys.executable} nor on PATH; "
            "install the project (pip install -e .) which pulls dbt-core and dbt-postgres"
        )
    return found


def dbt_command(*args: str, target: str | None = None, target_path: str | Path | None = None) -> list[str]:
    """argv of a dbt command on this project, e.g. ``dbt_command("parse")``.

    ``target`` defaults to ``dbt_target()``; ``target_path`` (dbt's output dir) to the
    project's ``target/``.
    """
    cmd = [dbt_executable(), *args, "--project-dir", str(DBT_PROJECT_DIR),
           "--profiles-dir", str(DBT_PROJECT_DIR), "--target", target or dbt_target()]
    if target_path is not None:
        cmd += ["--target-path", str(target_path)]
    return cmd


@contextmanager
def build_lock(settings: Settings):
    """Held by a whole-project ``dbt build`` (the stage runner's, for the CLI, chaos and bench):
    a second build started meanwhile waits on this session advisory lock (released when the
    process ends, even by a kill) instead of dropping and re-creating the tables the first one
    is writing. Under Airflow the Cosmos tasks are one DAG run at a time (``max_active_runs=1``)."""
    from lifecycle.clients import pg

    with pg(settings, settings.pg.warehouse_db, autocommit=True) as lock, lock.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtext('lifecycle:dbt_build'))")
        yield
