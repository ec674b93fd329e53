"""What the `lifecycle` CLI needs besides its commands: exit codes, progress, errors that say what to do.

Input: ``Settings``, ports, the platform. Output: messages and exit codes for ``lifecycle.cli``;
a progress display on stderr (only on a terminal, so pipes and scripts get clean stdout).

Exit codes, the same for every command:
  0  success
  1  the command ran and something failed or a check did not pass (a DAG, a reconciliation
     check, a job)
  2  it could not run: a usage or settings error, or a missing prerequisite (services not
     running, a port in use, Java missing); the message says what to do
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import typer

from lifecycle.settings import Settings, SettingsError

OK, FAILED, USAGE = 0, 1, 2

START_SERVICES = "start them with `lifecycle services up` (or `make up`), or run `make demo`"


def java_missing_message() -> str:
    install = ("brew install openjdk@17   (then follow brew's note to put it on PATH)"
               if platform.system() == "Darwin" else
               "sudo apt-get install openjdk-17-jre-headless   (Debian/Ubuntu; dnf: java-17-openjdk-headless)")
    return ("java not found: the Spark engine needs a Java 17 (or 21) runtime.\n"
            f"  install it:  {install}\n"
            "  then:        make install   (adds pyspark once `java` is on PATH; README, 'The same jobs on Apache Spark')")


def pyspark_missing_message() -> str:
    return "pyspark is not installed: run `make install` now that java is on PATH (it adds requirements-spark.lock)"


def services_down_message(settings: Settings) -> str | None:
    """None when the embedded services answer; otherwise what is down and how to start it."""
    if settings.target != "embedded":
        return None
    from lifecycle.ops import services

    st = services.status(settings)
    if st.all_up:
        return None
    down = [name for name, up in (("Postgres", st.postgres), ("moto", st.moto)) if not up]
    return (f"the embedded services are not running ({' and '.join(down)} down, state in {settings.home}): "
            f"{START_SERVICES}")


def unknown_name_message(kind: str, given: list[str], valid: list[str] | tuple[str, ...]) -> str | None:
    unknown = [g for g in given if g not in valid]
    if not unknown:
        return None
    return f"unknown {kind} {', '.join(unknown)}; valid: {', '.join(valid)}"


@contextlib.contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Callable[..., None]]:
    """A progress bar (``total`` steps) or a spinner with the elapsed time, on stderr and only
    when stderr is a terminal; yields ``advance(description=None)``. Respects NO_COLOR."""
    from rich.console import Console

    console = Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")) or None)
    if not console.is_terminal or os.environ.get("TERM") == "dumb":
        yield lambda *args, **kwargs: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total:
        columns += [BarColumn(), MofNCompleteColumn()]
    # what the work prints (bench's stage lines) goes above the bar, through rich, when both
    # streams are the terminal; stdout sent to a file or a pipe stays untouched
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True,
                  redirect_stdout=sys.stdout.isatty()) as bar:
        task = bar.add_task(description, total=total)

        def advance(text: str | None = None, steps: int = 1) -> None:
            bar.update(task, advance=steps, description=text or description)

        yield advance


def fail(message: str, code: int = FAILED):
    """Print an error (red on a terminal) and exit with ``code``."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def load_settings(services: bool = False) -> Settings:
    """The settings; with ``services``, also check that the embedded services answer."""
    try:
        s = Settings.from_env()
    except SettingsError as exc:
        fail(f"settings: {exc}", USAGE)
    if services:
        down = services_down_message(s)
        if down:
            fail(down, USAGE)
    return s


def echo_json(data) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def group(help_text: str, example: str) -> typer.Typer:
    """A command group (``lifecycle <group> ...``) with its example in the help."""
    return typer.Typer(help=help_text, epilog=f"Example: {example}", no_args_is_help=True)


def default_date() -> date:
    """The business date a command means when none is given: yesterday, UTC."""
    return (datetime.now(UTC) - timedelta(days=1)).date()


def parse_date(text: str) -> date:
    """``--date`` as a date, or exit 2 with the format to use."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"--date {text!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-25", USAGE)
