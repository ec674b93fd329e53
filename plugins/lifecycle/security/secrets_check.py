"""Secret checks: the scanner's verdict on the repo, and known secrets in run output.

Input: a detect-secrets baseline freshly re-scanned (``make secrets`` copies
``.secrets.baseline``, runs ``detect-secrets scan --baseline`` on the copy, then this
module's ``main`` on it); or texts (logs, XCom values, rendered templates) and the secrets
that must not appear in them.
Output: ``unreviewed``: the findings nobody marked as a false positive (``is_secret: false``
in the committed baseline, by ``detect-secrets audit``); ``main`` exits 1 when there is any.
``leaks``: where each known secret appears.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def unreviewed(baseline: dict) -> list[str]:
    return [f"{path}:{r['line_number']}: {r['type']}" for path, results in baseline.get("results", {}).items()
            for r in results if r.get("is_secret") is not False]


def leaks(texts: dict[str, str], secrets: dict[str, str]) -> list[tuple[str, str]]:
    """``[(where, secret name)]`` for every known secret found in a text."""
    return [(where, name) for where, text in texts.items() for name, value in secrets.items()
            if value and value in text]


def main(argv: list[str] | None = None) -> int:
    path = Path((argv or sys.argv[1:])[0])
    found = unreviewed(json.loads(path.read_text()))
    for line in found:
        print(f"possible secret (remove it, or audit it as a false positive in .secrets.baseline): {line}")
    print(f"detect-secrets: {len(found)} unreviewed finding(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
