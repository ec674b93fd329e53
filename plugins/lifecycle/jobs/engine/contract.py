"""What a job and the engine that runs it agree on: the ``JobContext`` protocol, the jobs, their
arguments and the output contract check.

Input: nothing at import (no engine, no AWS client: a Glue script may import this module).
Output: ``JobContext``, the interface every job's ``main(argv, ctx)`` is written against,
implemented by the DuckDB engine (``duckdb_context.DuckDBJobContext``) and the Spark one
(``spark_context.SparkJobContext``); the job names in run order; ``get_resolved_options`` and
``job_arguments`` (Glue's argument convention); ``check_output``, the one check both engines
make of a DataFrame before writing it to the lake; glob helpers both engines list with.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from lifecycle.lake.catalog import CLEAN_TABLES, TableSpec, with_extra_columns
from lifecycle.settings import Settings

# sales first: clean_events checks product ids against the clean products it writes;
# curate_sessions after clean_events: it rebuilds the sessions from the clean events
CLEAN_JOBS = ("clean_sales", "clean_events", "curate_sessions", "clean_reviews")
# then the curated zone, from the clean tables
CURATED_JOBS = ("curate_features",)
JOBS = CLEAN_JOBS + CURATED_JOBS


class JobError(RuntimeError):
    """A job broke its contract (arguments, output schema); the message says how."""


class FullRebuild(Exception):  # noqa: N818 - a signal, not an error
    """An incremental run found an input it cannot apply on top of the current outputs (a new
    full load, a new export): the runner reruns the job in full."""


class JobContext(Protocol):
    """What a job may do besides transforming DataFrames: read inputs, write outputs.

    Reads return DataFrames (SQLFrame's on DuckDB, PySpark's on Spark), empty with the
    declared columns when there is nothing to read. Writes check the output against
    ``lifecycle.lake.catalog`` (``check_output``) and return the rows written.
    """

    job_name: str
    incremental: bool  # the outputs hold the state after the bookmarked inputs
    metrics: dict[str, Any]  # rows_in, rows_out, rejected, files_in, columns_added, ...
    specs: dict[str, TableSpec]  # the contract of each table as written (new columns included)

    def get_secret(self, name: str) -> str: ...

    def read_dms(self, bucket: str, prefix: str, columns: dict[str, str], name: str): ...

    def read_lines(self, bucket: str, pattern: str | None, name: str): ...

    def latest_dynamodb_export(self, bucket: str, prefix: str) -> str | None: ...

    def read_clean(self, bucket: str, table: str, changed_only: bool = False,
                   columns: list[str] | None = None, where_in: tuple[str, Any] | None = None): ...

    def changed_partition_values(self, table: str) -> list[str]: ...

    def clean_inputs_unchanged(self, bucket: str, tables: list[str]) -> bool: ...

    def require_no_late_references(self, bucket: str, source: str, reason: str, field: str, known) -> None: ...

    def persist(self, df, label: str): ...

    def write_clean(self, df, bucket: str, table: str) -> int: ...

    def upsert_clean(self, df, changed_keys, bucket: str, table: str) -> int: ...

    def write_quarantine(self, df, bucket: str, source: str) -> int: ...

    def merge_quarantine(self, df, bucket: str, source: str) -> int: ...

    def hold_back_columns(self, table: str, columns: list[str]) -> None: ...

    def add_rejected(self, rows: int) -> None: ...

    def close(self) -> None: ...


def new_metrics(mode: str) -> dict[str, Any]:
    """The run metadata a context fills in (the same keys on both engines)."""
    return {"mode": mode, "rows_in": {}, "rows_out": {}, "rejected": 0, "files_in": {},
            "columns_added": {}, "columns_held_back": {}}


def check_output(ctx: JobContext, label: str, got: list[tuple[str, str]], spec: TableSpec,
                 engine_type: Callable[[str], str], logical_type: Callable[[str], str]) -> TableSpec:
    """Check an output's columns ``got`` (``(name, engine type)``) against ``spec``: the contract's
    columns in order, then optionally new columns, then the partition column. Returns the spec
    the table is written with (new columns of a clean table added, and recorded in
    ``ctx.specs`` and ``ctx.metrics["columns_added"]``); raises ``JobError`` otherwise.
    ``engine_type``/``logical_type`` map the catalog's logical types to the engine's and back."""
    want = [(c, engine_type(t)) for c, t in spec.columns]
    part = [(spec.partition[0], engine_type(spec.partition[1]))] if spec.partition else []
    data = got[:len(got) - len(part)] if part else got
    if data[:len(want)] != want or got[len(data):] != part:
        raise JobError(f"{ctx.job_name}: output {label} does not match its contract\n"
                       f"  got:  {got}\n  want: {want + part} (+ new columns before the partition)")
    extras = [(c, logical_type(t)) for c, t in data[len(want):]]
    if extras and spec.name in CLEAN_TABLES:
        spec = with_extra_columns(spec, extras)
        ctx.specs[spec.name] = spec
        ctx.metrics["columns_added"][spec.name] = [c for c, _ in extras]
    return spec


# ---- Glue-style arguments -------------------------------------------------------------------

def get_resolved_options(argv: list[str], names: list[str]) -> dict[str, str]:
    """``{name: value}`` for each ``--name value`` (or ``--name=value``) in ``argv``.

    Like ``awsglue.utils.getResolvedOptions``: every requested name is required, arguments
    not asked for are ignored (Glue passes its own), and a leading program name is skipped.
    """
    found: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if not eq:
                if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                    raise JobError(f"argument --{name} has no value")
                value = argv[i + 1]
                i += 1
            found[name] = value
        i += 1
    missing = [n for n in names if n not in found]
    if missing:
        raise JobError(f"missing job arguments: {', '.join('--' + n for n in missing)}")
    return {n: found[n] for n in names}


def job_arguments(settings: Settings, job_name: str, interval_start: datetime,
                  interval_end: datetime) -> list[str]:
    """The argv a job gets: what a Glue job's DefaultArguments would carry, no secrets."""
    return [
        job_name,
        "--JOB_NAME", job_name,
        "--raw_bucket", settings.names.bucket("raw"),
        "--clean_bucket", settings.names.bucket("clean"),
        "--curated_bucket", settings.names.bucket("curated"),
        "--quarantine_bucket", settings.names.bucket("quarantine"),
        "--pii_salt_secret", settings.names.pii_salt_secret,
        "--interval_start", utc(interval_start).isoformat(),
        "--interval_end", utc(interval_end).isoformat(),
        "--job-bookmark-option", settings.engines.job_bookmark_option,
    ]


def utc(ts: datetime) -> datetime:
    """``ts`` in UTC (a naive timestamp is taken as UTC)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def job_module(job_name: str):
    """``lifecycle.jobs.<job_name>``, or a module of that name on the path (a test's probe)."""
    if importlib.util.find_spec(f"lifecycle.jobs.{job_name}") is not None:
        return importlib.import_module(f"lifecycle.jobs.{job_name}")
    return importlib.import_module(job_name)


# ---- listing objects by glob ------------------------------------------------------------------

def literal_prefix(pattern: str) -> str:
    """The folder of ``pattern`` before its first wildcard: the prefix to list."""
    cut = min([i for i, ch in enumerate(pattern) if ch in "*?["] or [len(pattern)])
    return pattern[:cut].rsplit("/", 1)[0] + "/" if "/" in pattern[:cut] else ""


def matches(key: str, pattern: str) -> bool:
    """Glob match where ``*`` never crosses ``/`` (as in a DuckDB/S3 glob)."""
    parts, pats = key.split("/"), pattern.split("/")
    return len(parts) == len(pats) and all(fnmatch.fnmatchcase(p, q) for p, q in zip(parts, pats, strict=True))
