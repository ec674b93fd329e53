"""The Cosmos configuration that renders the dbt project as Airflow tasks (``dags/dbt_build.py``).

Input: the paths and target of ``lifecycle.warehouse.dbt`` (the environment, read when
``cosmos_configs()`` is called at DAG parse time) and the pre-built manifest
(``LoadMode.DBT_MANIFEST``: parsing the DAG never runs dbt nor touches the warehouse).
Output: the four Cosmos config objects (``ProjectConfig``, ``ProfileConfig``,
``ExecutionConfig``, ``RenderConfig``) as keyword arguments of a ``DbtTaskGroup``.

Cosmos is imported inside ``cosmos_configs()``: importing this module is free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lifecycle.warehouse.dbt import (
    DBT_PROJECT_DIR,
    PROFILE_NAME,
    PROFILES_YML,
    PROJECT_NAME,
    dbt_executable,
    dbt_target,
    manifest_path,
)


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
