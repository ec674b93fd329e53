"""The CLI's help and its settings errors, through Typer's runner (no services).
"""

from __future__ import annotations


def test_cli_help_and_settings_errors():
    from typer.testing import CliRunner

    from lifecycle.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["--help"]).exit_code == 0
    res = runner.invoke(app, ["services", "status"], env={"LIFECYCLE_TARGET": "nowhere"})
    assert res.exit_code == 2
