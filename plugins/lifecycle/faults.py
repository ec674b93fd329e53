"""Fault-injection points for the chaos suite (``make chaos``): kill or hold a stage mid-write.

Input: the environment variable ``LIFECYCLE_FAULT`` (unset in normal runs):
``<point>[@<n>][:kill|:pause]``. At the n-th time (default 1) the named point is reached:
- ``kill`` (default): the process dies by SIGKILL, exactly as a worker killed by the OOM
  killer or a lost node would: no ``finally``, no flush, no rollback from our side;
- ``pause``: the process creates ``<LIFECYCLE_FAULT_DIR>/<point>.paused`` and waits until
  that file is deleted (at most 300 s), so a test can break something (restart Postgres,
  take the AWS endpoint away) at a known point of the write, then let the stage go on.
Output: none.

The points sit where a crash hurts most: after a stage wrote (part of) its output and
before it recorded its progress (checkpoint, slot advance, bookmark, commit). Reaching a
point costs one dictionary lookup when the variable is unset.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "LIFECYCLE_FAULT"
DIR_ENV = "LIFECYCLE_FAULT_DIR"
_hits: dict[str, int] = {}


def point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    spec, _, action = spec.partition(":")
    target, _, nth = spec.partition("@")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] != int(nth or 1):
        return
    if action == "pause":
        marker = Path(os.environ.get(DIR_ENV) or ".") / f"{name}.paused"
        marker.touch()
        deadline = time.monotonic() + 300
        while marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return
    os.kill(os.getpid(), signal.SIGKILL)
