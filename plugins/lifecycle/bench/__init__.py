"""``make bench``: every lifecycle stage measured against a raw baseline, same data, same run.

Input: command-line arguments (``python -m lifecycle.bench --scale N --events N --stages ...
--out DIR --keep``; see ``lifecycle.bench.harness.parser``).
Output: ``<out>/<UTC timestamp>.json`` (machine, versions, parameters, workload, every
stage with rows, seconds, rows/s, baseline seconds and rows/s, ratio, target, peak RSS,
details) and ``<out>/<UTC timestamp>.md`` (the human table, also printed).

With several scales (``--scale 100000,1000000`` or ``--scaling``) one pair per scale plus
``<out>/scaling-<UTC timestamp>.json`` and ``.md`` (``lifecycle.bench.scaling``).

Modules: ``environment`` (a private embedded Postgres + moto), ``workload`` (deterministic
data generated fast), ``stages`` and ``dbt_bench`` (each stage and its baseline),
``incremental`` (the whole lifecycle after 1 % new data), ``orchestration`` (Airflow's
overhead and DAG parse times), ``measure`` (timing, memory, result shape), ``report``
(JSON/Markdown), ``scaling`` (the report across scales), ``harness`` (main).
Timings are never asserted anywhere; tests check only shape and row counts.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code (0: every selected stage ran)."""
    from lifecycle.bench.harness import main as _main

    return _main(argv)


__all__ = ["main"]
