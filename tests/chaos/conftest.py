"""The chaos suite's collector: every case records its outcome; the table is printed at the
end of the session and written to ``<LIFECYCLE_CHAOS_REPORT_DIR or .lifecycle>/chaos-report.md``
(and ``.json``).

Every test under tests/chaos/ is marked ``chaos``; the slow ones also ``chaos_slow``, which
``make test`` deselects (pyproject addopts) and ``make chaos`` runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

_RESULTS: list[dict] = []


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.chaos)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


class Case:
    def __init__(self, name: str):
        self.name = name
        self.fault = ""
        self.outcome = ""
        self.checks = 0
        self.failed: list[str] = []

    def reconciled(self, report: dict) -> None:
        """Add a reconciliation report; its failed checks make the case fail (by the test's assert)."""
        self.checks += len(report["checks"])
        self.failed += [f"{c['name']}: expected {c['expected']}, got {c['actual']}"
                        for c in report["checks"] if not c["ok"]]


@pytest.fixture
def chaos_case(request):
    case = Case(request.node.name)
    yield case
    rep = getattr(request.node, "rep_call", None)
    status = "passed" if rep is not None and rep.passed else ("skipped" if rep is not None and rep.skipped
                                                               else "FAILED")
    _RESULTS.append({"case": case.name, "fault": case.fault, "status": status,
                     "outcome": case.outcome, "reconciliation_checks": case.checks,
                     "failed_checks": case.failed[:10]})


def _report_dir() -> Path:
    from lifecycle.settings import REPO_ROOT

    return Path(os.environ.get("LIFECYCLE_CHAOS_REPORT_DIR") or REPO_ROOT / ".lifecycle")


def _markdown() -> str:
    lines = ["| case | fault injected | status | outcome | reconciliation checks |",
             "| --- | --- | --- | --- | --- |"]
    for r in _RESULTS:
        failed = f" ({len(r['failed_checks'])} failed)" if r["failed_checks"] else ""
        lines.append(f"| {r['case']} | {r['fault']} | {r['status']} | {r['outcome']} | "
                     f"{r['reconciliation_checks']}{failed} |")
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    out = _report_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / "chaos-report.md").write_text("# Chaos suite: case → outcome\n\n" + _markdown())
    (out / "chaos-report.json").write_text(json.dumps(_RESULTS, indent=2))
    terminalreporter.write_sep("=", "chaos: case → outcome")
    terminalreporter.write(_markdown())
    terminalreporter.write_line(f"(written to {out / 'chaos-report.md'})")
