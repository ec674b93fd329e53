"""IAM policy linter: no wildcard action or resource unless reviewed.

Input: policy documents (``{name: document}``; by default every ``infra/iam/<stage>.json``
except the trust policy) and the reviewed allow-list ``infra/iam/wildcard-allowlist.yaml``.
Output: a list of findings (strings); empty means the policies pass.

Rejected in an Allow statement: an Action containing ``*`` (``*``, ``s3:*``, ``s3:Get*``),
a Resource that is ``*`` or covers a whole service (``arn:aws:s3:::*``), and ``NotAction`` /
``NotResource`` (an allow of everything but a list). A ``(policy, Sid, value)`` in the
allow-list passes; an allow-list entry that matches nothing is a finding too, so the list
cannot go stale. Hand-written: IAM Access Analyzer's policy checks need real AWS.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from lifecycle.settings import REPO_ROOT

IAM_DIR = REPO_ROOT / "infra" / "iam"
ALLOWLIST = IAM_DIR / "wildcard-allowlist.yaml"
NOT_POLICIES = {"trust-policy"}
# arn:partition:service:region:account:resource where resource is only `*`
_WHOLE_SERVICE = re.compile(r"^arn:[^:]*:[^:]*:[^:]*:[^:]*:\*$")


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def wildcard_resource(resource: str) -> bool:
    return resource == "*" or bool(_WHOLE_SERVICE.match(resource))


def policy_files(directory: Path = IAM_DIR) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))
            if p.stem not in NOT_POLICIES}


def load_allowlist(path: Path = ALLOWLIST) -> list[dict]:
    return (yaml.safe_load(path.read_text()) or []) if path.exists() else []


def lint(policies: dict[str, dict] | None = None, allowlist: list[dict] | None = None) -> list[str]:
    policies = policy_files() if policies is None else policies
    allowlist = load_allowlist() if allowlist is None else allowlist
    allowed = {(e["policy"], e.get("sid"), "action" if "action" in e else "resource",
                e.get("action", e.get("resource"))) for e in allowlist}
    used, findings = set(), []
    for name, doc in policies.items():
        for i, st in enumerate(_as_list(doc.get("Statement", []))):
            if st.get("Effect") != "Allow":
                continue
            sid = st.get("Sid")
            where = f"{name}: statement {sid or i}"
            for key in ("NotAction", "NotResource"):
                if key in st:
                    findings.append(f"{where}: Allow with {key} grants everything not listed")
            candidates = [("action", a) for a in _as_list(st.get("Action", [])) if "*" in a]
            candidates += [("resource", r) for r in _as_list(st.get("Resource", [])) if wildcard_resource(r)]
            for kind, value in candidates:
                key = (name, sid, kind, value)
                if key in allowed:
                    used.add(key)
                else:
                    findings.append(f"{where}: wildcard {kind} {value!r} is not in the reviewed "
                                    f"allow-list ({ALLOWLIST.relative_to(REPO_ROOT)})")
    for key in sorted(allowed - used, key=str):
        if key[0] in policies:
            findings.append(f"allow-list entry {key} matches no statement: remove it")
    return findings
