"""Measurement helpers of the benchmark: wall time, peak memory, percentiles, the result shape.

Input: callables to time and the ``Settings`` of the benchmark environment (to find the
Postgres and moto processes).
Output: ``StageResult`` values (``rows, seconds, rows_per_s, baseline_rows, baseline_seconds,
baseline_rows_per_s, ratio`` plus peak RSS per process group and free-form details) and small
helpers (``percentiles``, ``NullSink``).

Peak RSS is sampled every 0.1 s while a stage (not its baseline) runs: this process (DuckDB,
the decoders, boto3) with its children (dbt), Postgres (postmaster and every backend) and
moto. Resident sizes of several processes are summed, so pages they share (Postgres' shared
buffers) count once per process that touched them: an upper bound.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from lifecycle.settings import Settings


class NullSink:
    """A file-like object that counts and drops what is written (COPY ... TO STDOUT)."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data) -> int:
        self.bytes += len(data)
        return len(data)


def percentiles(values: list[float], points=(50, 95)) -> dict[str, float | None]:
    """Nearest-rank percentiles plus the max; None for an empty list."""
    out: dict[str, float | None] = {}
    ordered = sorted(values)
    for p in points:
        out[f"p{p}"] = ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)] if ordered else None
    out["max"] = ordered[-1] if ordered else None
    return out


class RssSampler:
    """Peak RSS (MiB) of the bench process (+children), Postgres (and the source's own server,
    if separate) and moto while running."""

    def __init__(self, settings: Settings, interval: float = 0.1):
        self.settings = settings
        self.interval = interval
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _groups(self):
        import psutil

        from lifecycle.ops import services

        st = services.status(self.settings)
        groups = {"bench_process": psutil.Process(os.getpid())}
        if st.pg_pid:
            groups["postgres"] = psutil.Process(st.pg_pid)
        if self.settings.pg.sales_port and self.settings.pg.sales_port != self.settings.pg.port:
            # the source on its own server: its postmaster is whoever listens on its port
            for conn in psutil.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == self.settings.pg.sales_port and conn.pid:
                    groups["postgres_source"] = psutil.Process(conn.pid)
                    break
        if st.moto_pid:
            groups["moto"] = psutil.Process(st.moto_pid)
        return groups

    def _sample(self, groups) -> None:
        import psutil

        total = 0.0
        for name, proc in groups.items():
            rss = 0
            try:
                procs = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                continue
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            mb = rss / 2**20
            total += mb
            self.peaks[name] = max(self.peaks.get(name, 0.0), mb)
        self.peaks["total"] = max(self.peaks.get("total", 0.0), total)

    def _run(self) -> None:
        try:
            groups = self._groups()
        except Exception:  # psutil missing or no permission: report no memory figures
            return
        while not self._stop.is_set():
            self._sample(groups)
            self._stop.wait(self.interval)
        self._sample(groups)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def result(self) -> dict[str, float]:
        return {k: round(v, 1) for k, v in self.peaks.items()}


def timed(fn, *args, **kwargs) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - started


@dataclass
class StageResult:
    """One stage against its baseline. ``ratio`` = stage rows/s ÷ baseline rows/s."""

    stage: str
    rows: int
    seconds: float
    baseline_rows: int
    baseline_seconds: float
    target: float
    what: str = ""
    baseline: str = ""
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.seconds if self.seconds > 0 else None

    @property
    def baseline_rows_per_s(self) -> float | None:
        return self.baseline_rows / self.baseline_seconds if self.baseline_seconds > 0 else None

    @property
    def ratio(self) -> float | None:
        a, b = self.rows_per_s, self.baseline_rows_per_s
        return a / b if a and b else None

    @property
    def meets_target(self) -> bool:
        return self.error is None and self.ratio is not None and self.ratio >= self.target

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        d["baseline_seconds"] = round(self.baseline_seconds, 3)
        d["rows_per_s"] = round(self.rows_per_s, 1) if self.rows_per_s else None
        d["baseline_rows_per_s"] = round(self.baseline_rows_per_s, 1) if self.baseline_rows_per_s else None
        d["ratio"] = round(self.ratio, 4) if self.ratio else None
        d["meets_target"] = self.meets_target
        return d
