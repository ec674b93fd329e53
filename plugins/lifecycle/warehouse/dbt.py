"""dbt helpers: where the dbt project is, and the Cosmos configuration that renders it.

Input: the environment, read when ``cosmos_configs()`` is called (DAG parse time):
``DBT_TARGET`` (profiles.yml target, default ``embedded``), optionally
``LIFECYCLE_DBT_PROJECT_DIR`` (default ``<repo>/dbt_project``) and
``LIFECYCLE_DBT_MANIFEST`` (default ``<project>/target/manifest.json``).
Output: path constants, the ``dbt`` executable of this Python environment, and the four
Cosmos config objects (``ProjectConfig``, ``ProfileConfig``, ``ExecutionConfig``,
``RenderConfig``) that ``dags/dbt_build.py`` passes to a ``DbtTaskGroup``.

The DAG is rendered from a pre-built manifest (``LoadMode.DBT_MANIFEST``): parsing the DAG
never runs dbt nor touches the warehouse. Produce the manifest with
``dbt parse --project-dir dbt_project --profiles-dir dbt_project`` (no database needed)
whenever the dbt project changes. Credentials come from ``profiles.yml`` through
``env_var()``; nothing here reads a connection or a Variable.

Importing this module does nothing but compute paths; Cosmos is imported inside
``cosmos_configs()``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from lifecycle.settings import REPO_ROOT

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


def cosmos_configs(manifest: str | Path | None = None) -> dict[str, Any]:
    """Cosmos configs for the lifecycle project, as keyword arguments of ``DbtTaskGroup``.

    Returns ``{"project_config", "profile_config", "execution_config", "render_config"}``.
    Rendering: from the manifest, one task per model, ``<model>_model_build``, running
    ``dbt build --select <model>``: the model, then its data tests and unit tests
    (``TestBehavior.BUILD``; measured here: 25 tasks, ~26 s under ``dag.test()``, against
    42 tasks and ~39 s with ``AFTER_EACH``'s separate run and test tasks); tests with
    several parents (relationships) get their own task after both parents, so they never
    run against a model that is not built yet. ``emit_datasets=False``: the DAG emits the
    lifecycle's own assets (Cosmos' per-table asset URIs would carry the database host).
    """
    from cosmos import ExecutionConfig, LoadMode, ProfileConfig, ProjectConfig, RenderConfig, TestBehavior
    from cosmos.constants import ExecutionMode

    path = Path(manifest) if manifest else manifest_path()
    if not path.exists():
        raise FileNotFoundError(
            f"dbt manifest not found at {path}; build it with "
            f"`dbt parse --project-dir {DBT_PROJECT_DIR} --profiles-dir {DBT_PROJECT_DIR}`"
        )
    executable = dbt_executable()
    return {
        "project_config": ProjectConfig(
            dbt_project_path=DBT_PROJECT_DIR,
            manifest_path=path,
            project_name=PROJECT_NAME,
            # the project has no packages; never run `dbt deps` (no network at task time).
            # This replaces the operator argument `install_deps`, deprecated since Cosmos 1.9.
            install_dbt_deps=False,
        ),
        "profile_config": ProfileConfig(
            profile_name=PROFILE_NAME,
            target_name=dbt_target(),
            profiles_yml_filepath=PROFILES_YML,
        ),
        "execution_config": ExecutionConfig(
            # LOCAL: each task is its own dbt invocation, in-process through dbtRunner when dbt
            # is importable (plugins/.airflowignore keeps Airflow from shadowing `dbt`). Cosmos'
            # WATCHER mode (one `dbt build` + per-model sensors) was tried: its sensors wait
            # for a producer that `dag.test()` never starts first, so it is not used here.
            execution_mode=ExecutionMode.LOCAL,
            dbt_executable_path=executable,
        ),
        "render_config": RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.BUILD,
            emit_datasets=False,
            should_detach_multiple_parents_tests=True,
        ),
    }
