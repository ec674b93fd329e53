"""The `lifecycle` CLI as a new user meets it: help with examples, exit codes, errors that say what to do.

Most cases need no services at all (the errors come before any work); the port and Airflow
cases use the session's embedded environment. Exit codes (``lifecycle.cli.support``): 0 ok,
1 something failed, 2 usage, settings or a missing prerequisite.
"""

from __future__ import annotations

import os
import re
import socket

import pytest
import typer
from conftest import lifecycle_env
from typer.testing import CliRunner

from lifecycle.cli import app
from lifecycle.ops.services import free_port

RUNNER = CliRunner()


def _commands(cmd, path: tuple[str, ...] = ()):
    yield path, cmd
    if hasattr(cmd, "commands"):  # a group (typer ships its own click, so no isinstance)
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*path, name))


ALL = [path for path, _ in _commands(typer.main.get_command(app))]


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """An embedded target whose services are not running: fresh home, free ports."""
    for k in list(os.environ):
        if k.startswith(("LIFECYCLE_", "AWS_ENDPOINT_URL", "AIRFLOW")):
            monkeypatch.delenv(k)
    env = {"LIFECYCLE_TARGET": "embedded", "LIFECYCLE_HOME": str(tmp_path / "state"),
           "LIFECYCLE_PG_PORT": str(free_port()), "LIFECYCLE_MOTO_PORT": str(free_port())}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def _invoke(args, env=None, **kw):
    return RUNNER.invoke(app, list(args), env=env, **kw)


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "lifecycle")
def test_every_command_has_a_summary_and_an_example(path):
    result = _invoke([*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert re.search(r"Examples?:\s*\n?\s*(\S+=\S+ )*(eval .*)?(docker .*\n\s*)?lifecycle", text), text
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    summary = command.get_short_help_str(limit=200)
    assert summary and len(summary) <= 100 and not summary.endswith("..."), (path, summary)


def test_unknown_target_lists_the_valid_ones(nowhere):
    result = _invoke(["services", "status"], env={"LIFECYCLE_TARGET": "mars"})
    assert result.exit_code == 2
    assert "LIFECYCLE_TARGET='mars' is unknown; use one of embedded, compose, aws" in result.stderr


@pytest.mark.parametrize("args", [
    ["query", "select 1"], ["metrics"], ["jobs", "list"], ["reconcile"], ["simulate", "--scale", "1"],
    ["cdc", "status"], ["recommend", "1"], ["alarms", "list"], ["infra", "apply"], ["run", "--dags", "observe"],
], ids=lambda a: " ".join(a[:2]))
def test_services_not_running_says_how_to_start_them(nowhere, args):
    result = _invoke(args)
    assert result.exit_code == 2, result.output
    assert "embedded services are not running" in result.stderr
    assert "lifecycle services up" in result.stderr and "make up" in result.stderr


def test_services_status_exits_1_when_down(nowhere):
    result = _invoke(["services", "status"])
    assert result.exit_code == 1
    assert "postgres: down" in result.output


@pytest.mark.parametrize(("args", "wrong", "valid"), [
    (["run", "--dags", "ingest_sales,nope"], "nope", "ingest_sales"),
    (["jobs", "run", "nope"], "nope", "clean_events"),
    (["jobs", "reset-bookmark", "nope"], "nope", "clean_events"),
    (["jobs", "run", "all", "--job-bookmark-option", "sometimes"], "sometimes", "job-bookmark-enable"),
    (["simulate", "--date", "yesterday"], "yesterday", "YYYY-MM-DD"),
], ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_unknown_names_list_the_valid_ones(nowhere, args, wrong, valid):
    """The message names what was wrong and lists (or shows the form of) what is valid."""
    result = _invoke(args)
    assert result.exit_code == 2, result.output
    assert wrong in result.stderr and valid in result.stderr, result.stderr


def test_usage_errors_exit_2(nowhere):
    assert _invoke(["no-such-command"]).exit_code == 2
    assert _invoke(["query", "select 1", "--lake", "--warehouse"]).exit_code == 2


def test_java_missing_says_how_to_install_it(nowhere, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    result = _invoke(["lake", "spark-run"], env={"PATH": str(empty)})
    assert result.exit_code == 2
    assert "java not found" in result.stderr
    assert "openjdk" in result.stderr and "make install" in result.stderr


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_postgres_port_in_use_names_the_process_and_the_setting(nowhere, busy_port):
    result = _invoke(["services", "up"], env={"LIFECYCLE_PG_PORT": str(busy_port)})
    assert result.exit_code == 2, result.output
    assert f"port {busy_port} (Postgres) is in use by pid {os.getpid()}" in result.stderr
    assert "export LIFECYCLE_PG_PORT=<free port>" in result.stderr


def test_airflow_port_in_use_names_the_process_and_the_setting(settings, busy_port, monkeypatch):
    env = lifecycle_env(settings)
    result = _invoke(["airflow", "--port", str(busy_port)], env=env)
    assert result.exit_code == 2, result.output
    assert f"is in use by pid {os.getpid()}" in result.stderr
    assert "LIFECYCLE_AIRFLOW_PORT" in result.stderr


def test_colour_only_when_asked_and_never_with_no_color(nowhere):
    coloured = _invoke(["run", "--dags", "nope"], color=True)
    assert "\x1b[" in coloured.stderr
    plain = _invoke(["run", "--dags", "nope"])  # not a terminal
    assert "\x1b[" not in plain.stderr
    no_color = _invoke(["run", "--dags", "nope"], env={"NO_COLOR": "1"}, color=True)
    assert "\x1b[" not in no_color.stderr and "unknown DAG(s) nope" in no_color.stderr


def test_progress_is_silent_when_not_on_a_terminal(capfd):
    from lifecycle.cli.support import progress

    with progress("working", total=3) as advance:
        advance()
        advance("step 2")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
