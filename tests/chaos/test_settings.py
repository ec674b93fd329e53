"""Case 4: a malformed setting or connection. The run must stop at its start with a message
that names the setting, not with a stack trace deep in a task (``lifecycle.dataops.preflight``)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import lifecycle_env

from chaos.harness import REPO


def _closed_port() -> int:
    from lifecycle.ops.services import free_port

    return free_port()  # bound and released: nothing listens there


def _base(settings) -> dict:
    env = {k: v for k, v in lifecycle_env(settings).items() if not k.startswith("AIRFLOW")}
    env.pop("AWS_ENDPOINT_URL", None)
    return env


BROKEN = {
    "unknown target": ({"LIFECYCLE_TARGET": "embeded"}, "LIFECYCLE_TARGET"),
    "wrong AWS endpoint": ({"AWS_ENDPOINT_URL": "http://127.0.0.1:{port}"}, "AWS_ENDPOINT_URL"),
    "missing AWS credentials": ({"LIFECYCLE_TARGET": "aws", "LIFECYCLE_PG_HOST": "127.0.0.1",
                                 "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "",
                                 "AWS_SESSION_TOKEN": "", "AWS_EC2_METADATA_DISABLED": "true",
                                 "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                                 "AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_WEB_IDENTITY_TOKEN_FILE": ""},
                                "AWS_ACCESS_KEY_ID"),
    "wrong name prefix (no bucket)": ({"LIFECYCLE_NAME_PREFIX": "lifecyle"}, "LIFECYCLE_NAME_PREFIX"),
    "wrong Postgres port": ({"LIFECYCLE_PG_PORT": "{port}"}, "LIFECYCLE_PG_PORT"),
    "wrong sales database": ({"LIFECYCLE_SALES_DB": "sales_typo"}, "LIFECYCLE_SALES_DB"),
    "malformed number": ({"LIFECYCLE_PG_PORT": "55x32"}, "LIFECYCLE_PG_PORT"),
    "malformed memory size": ({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": "2 apples"}, "LIFECYCLE_DUCKDB_MEMORY_LIMIT"),
}


@pytest.mark.parametrize("what", list(BROKEN))
def test_broken_setting_is_named_at_the_start(settings, chaos_case, monkeypatch, what):
    from lifecycle.dataops.preflight import PreflightError, check_env

    overrides, name = BROKEN[what]
    port = _closed_port()
    env = {**_base(settings), **{k: v.format(port=port) for k, v in overrides.items()}}
    env = {k: v for k, v in env.items() if v != ""}
    for k, v in overrides.items():  # boto3's credential chain reads the process environment
        monkeypatch.setenv(k, v) if v else monkeypatch.delenv(k, raising=False)
    chaos_case.fault = what
    with pytest.raises(PreflightError) as err:
        check_env(env)
    assert name in str(err.value), str(err.value)
    chaos_case.outcome = f"preflight: {err.value}"[:160]


def test_lifecycle_run_stops_before_any_task(settings, chaos_case):
    """The CLI: exit 2 and one line naming the setting, no traceback, no DAG started."""
    chaos_case.fault = "`lifecycle run` with AWS_ENDPOINT_URL on a closed port"
    env = {**_base(settings), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}"}
    proc = subprocess.run([sys.executable, "-m", "lifecycle.cli", "run"], env=env, capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "AWS_ENDPOINT_URL" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    chaos_case.outcome = f"exit 2 at once: {proc.stderr.strip().splitlines()[-1][:140]}"
