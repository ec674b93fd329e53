"""Typed values of the settings from the environment's strings, and the error that names a bad one.

Input: the environment (a ``dict``), a variable's name and its default. Output: an ``int``, a
rate in [0, 1], one of a set of choices, or a DuckDB memory size; ``SettingsError`` (what is
wrong and what to use) for a malformed value. ``lifecycle.settings`` builds every group with
these; it re-exports ``SettingsError`` and ``parse_memory_limit``.
"""

from __future__ import annotations

import re


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and what to do."""


def env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a whole number (a port or a number of seconds)") from exc


def env_rate(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a number between 0 and 1") from exc
    if not 0 <= value <= 1:
        raise SettingsError(f"{name}={raw!r} is not a number between 0 and 1")
    return value


def env_choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or choices[0]).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name}={value!r}: use one of {', '.join(choices)}")
    return value


DUCKDB_MEMORY_LIMIT = "2GB"
# what DuckDB's memory_limit accepts: a number and a unit (a bare number is an error there);
# K, KB, kilobyte... are powers of 1000, KiB... of 1024
MEMORY_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:(i)b|b)?|(kilo|mega|giga|tera)bytes?|b|bytes?)",
                          re.IGNORECASE)
# below this a lake job cannot even start (DuckDB needs a few MB per thread)
MEMORY_MIN = 128 * 10**6


def parse_memory_limit(raw: str | None, name: str, default: str = DUCKDB_MEMORY_LIMIT) -> str | None:
    """A DuckDB memory size (``2GB``, ``512MB``, ``4GiB``) of at least 128MB; None or empty:
    ``default``; ``none``: None, DuckDB's own limit (80 % of RAM). ``name`` is the setting (or
    option) the value came from, for the error."""
    raw = (raw or "").strip()
    if not raw:
        return default
    if raw.lower() == "none":
        return None
    size = MEMORY_SIZE.fullmatch(raw)
    if size:
        unit, binary = (size.group(2) or size.group(4) or " ")[0].lower(), bool(size.group(3))
        power = " kmgt".index(unit)
        if float(size.group(1)) * (1024 if binary else 1000) ** power >= MEMORY_MIN:
            return raw
    raise SettingsError(f"{name}={raw!r} is not a memory size of at least 128MB such as 2GB, 512MB or "
                        "4GiB (none: DuckDB's own limit, 80 % of RAM)")
