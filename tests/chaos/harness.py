"""Helpers of the chaos cases: a fresh environment, a simulated day, stages in a child
process (killable), reconciliation that fails the case with the checks that broke."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from conftest import lifecycle_env, reset_environment

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 20)


def fresh(settings, scale: int = 20, bad_rate: float = 0.0, day: date = DAY) -> dict:
    """A fresh AWS and fresh databases, then one simulated day; returns its summary."""
    from lifecycle.sources.simulator import simulate_day

    reset_environment(settings)
    return simulate_day(settings, day, scale=scale, bad_rate=bad_rate)


def up_to_day_two(settings, stage: str, through: tuple[str, ...], bad_rate: float = 0.0, scale: int = 15) -> None:
    """A fresh environment; day 1 (``DAY``) run through the stages ``through``; day 2 simulated
    and run up to ``stage``, which the case then runs (with its fault) itself."""
    from lifecycle.sources.simulator import simulate_day

    fresh(settings, scale=scale, bad_rate=bad_rate)
    run_in_process(settings, *through)
    simulate_day(settings, DAY + timedelta(days=1), scale=scale, bad_rate=bad_rate)
    run_in_process(settings, *through[:through.index(stage)])


def child(settings, *stages: str, fault: str | None = None, env: dict | None = None,
          timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m lifecycle.pipeline.stages <stages>`` in a child process (its own worker)."""
    full = {**lifecycle_env(settings), **(env or {})}
    full.pop("LIFECYCLE_FAULT", None)
    if fault:
        full["LIFECYCLE_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "lifecycle.pipeline.stages", *stages], env=full,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def killed(proc: subprocess.CompletedProcess) -> bool:
    return proc.returncode == -9


def ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"stage run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def run_in_process(settings, *stages: str) -> dict:
    from lifecycle.pipeline.stages import run_stages

    return run_stages(settings, stages)


def reconcile(settings, case, serving: bool = False, bad_expected: dict | None = None) -> dict:
    from lifecycle.dataops.reconcile import reconcile_layers

    report = reconcile_layers(settings, serving=serving, bad_expected=bad_expected)
    case.reconciled(report)
    return report


def assert_reconciled(report: dict) -> None:
    failed = [f"{c['name']}: expected {c['expected']}, got {c['actual']}" for c in report["checks"] if not c["ok"]]
    assert not failed, "reconciliation failed:\n" + "\n".join(failed)


def s3_snapshot(settings, zones=("raw", "clean", "quarantine")) -> dict[str, str]:
    """{zone/key: ETag} of every object of the given zones (what "the same objects" means)."""
    from lifecycle.clients import aws

    s3, out = aws(settings, "s3"), {}
    for zone in zones:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.names.bucket(zone)):
            out.update({f"{zone}/{o['Key']}": o["ETag"] for o in page.get("Contents", [])})
    return out


def fault_dir(tmp_path) -> dict:
    os.makedirs(tmp_path, exist_ok=True)
    return {"LIFECYCLE_FAULT_DIR": str(tmp_path)}


def child_popen(settings, *stages: str, fault: str | None = None, env: dict | None = None) -> subprocess.Popen:
    full = {**lifecycle_env(settings), **(env or {})}
    full.pop("LIFECYCLE_FAULT", None)
    if fault:
        full["LIFECYCLE_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-m", "lifecycle.pipeline.stages", *stages], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until the fault point created ``path`` (the stage is paused there)."""
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the stage ended before its fault point:\n{out[-2000:]}\n{err[-3000:]}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)
