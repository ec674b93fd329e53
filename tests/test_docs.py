"""The README and docs/ as a new user reads them: every relative link resolves (file and anchor),
every `lifecycle …` command shown is a real command with real options, and every DAG and stage
named in the tour exists.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from lifecycle.cli import app

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # http(s):, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, broken


def _shown_commands() -> list[str]:
    """`lifecycle …` invocations in the README: lines of code blocks and inline code spans where
    `lifecycle` is the command (at the start, after `.venv/bin/`, `$(`, `;` or `&&`)."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```.*?```", text, flags=re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    lines = [line for block in blocks for line in block.splitlines()] + spans
    found = []
    for line in lines:
        line = line.split("  #")[0]
        for m in re.finditer(r"(?:^\s*|\.venv/bin/|\$\(|; |&& )lifecycle((?: +[^\s|;)\"`]+)+)", line):
            found.append(m.group(1).strip())
    return found


COMMANDS = _shown_commands()


def test_the_readme_shows_commands():
    assert len(COMMANDS) > 30


@pytest.mark.parametrize("shown", COMMANDS)
def test_every_lifecycle_command_in_the_readme_is_real(shown):
    try:
        args = shlex.split(shown)
    except ValueError:  # a quoted SQL cut at the end of a line
        args = shown.split()
    command = typer.main.get_command(app)
    path = []
    while hasattr(command, "commands") and args and not args[0].startswith("-"):
        name = args.pop(0)
        if "|" in name:  # `services up|down|status`: each alternative must exist
            assert all(n in command.commands for n in name.split("|")), (shown, name)
            return
        assert name in command.commands, f"`lifecycle {shown}`: no command {' '.join([*path, name])}"
        command = command.commands[name]
        path.append(name)
    assert not hasattr(command, "commands") or not args or args == ["--help"], \
        f"`lifecycle {shown}` is a group, not a command"
    options = {"--help"} | {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    allows_extra = command.context_settings.get("allow_extra_args", False)
    for arg in args:
        if arg.startswith("--") and not allows_extra:
            assert arg.split("=")[0] in options, f"`lifecycle {shown}`: {' '.join(path)} has no option {arg}"


def test_every_dag_and_stage_page_named_in_the_tour_exists():
    from lifecycle.pipeline.tags import STAGES

    readme = (REPO / "README.md").read_text()
    dags = {p.stem for p in (REPO / "dags").glob("*.py")}
    for dag_id in dags:
        assert f"`{dag_id}`" in readme, f"the README never names DAG {dag_id}"
    anchors = _anchors(REPO / "README.md")
    for stage in STAGES.values():
        assert stage.readme_anchor in anchors and f"`{stage.tag}`" in readme, stage
        assert (REPO / stage.doc).is_file()
