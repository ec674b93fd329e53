"""The compose files read as docker compose reads them (no Docker engine): the parsed
``docker-compose.yml``, ``.env.example`` as a dict, a service's environment, compose's variable
interpolation, and the Airflow components' environment with ``.env.example`` filled in.

Shared by tests/ops/test_compose.py (static checks) and test_compose_target.py (the compose
settings run against services on loopback).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# One Compose reference: $$ (escaped $), ${VAR}, ${VAR:-default}, ${VAR?err}, ..., or $VAR.
REF_RE = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def compose_file() -> dict:
    # safe_load resolves the YAML anchors and `<<` merge keys as docker compose does.
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_services() -> dict[str, dict]:
    return compose_file()["services"]


def env_example() -> dict[str, str]:
    env = {}
    for raw in ENV_EXAMPLE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example: line without '=': {raw!r}"
        env[key.strip()] = value.strip()
    return env


def service_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def strings(node):
    """Every string value in the parsed file (keys are not interpolated by compose)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def referenced_vars(compose: dict) -> set[str]:
    names = set()
    for text in strings(compose):
        for m in REF_RE.finditer(text):
            name = m.group("braced") or m.group("bare")
            if name:
                names.add(name)
    return names


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation for the forms this file uses ($$, ${V}, ${V:-d}, ${V:?e})."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("bare")
        op, arg = m.group("op"), m.group("arg")
        value = env.get(name)
        if op in (":-", "-"):
            return value if (value if op == ":-" else value is not None) else arg
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise KeyError(f"required variable {name} missing: {arg}")
            return value
        if op in (":+", "+"):
            return arg if (value if op == ":+" else value is not None) else ""
        return value or ""

    return REF_RE.sub(sub, text)


def airflow_env() -> dict[str, str]:
    env = env_example()
    raw = service_env(compose_services()["airflow-scheduler"])
    return {k: interpolate(v, env) for k, v in raw.items()}
