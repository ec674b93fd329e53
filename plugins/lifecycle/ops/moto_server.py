"""The moto server of the embedded target, with one correction to its bucket policies.

Run as ``python -m lifecycle.ops.moto_server -H 127.0.0.1 -p <port>`` (what
``lifecycle.ops.services.start_moto`` starts); arguments are moto's own.

Why: moto evaluates bucket policies on object requests but ignores their ``Condition``
(only ``StringEquals`` exists there, and without request context every condition holds), so
the Deny statements of ``lifecycle.security.bucket_policy`` (deny *if* not TLS, *if* a wrong
SSE header, *if* a pipeline role deletes) would deny every request. AWS evaluates them; here a
statement whose condition moto cannot evaluate is left out of moto's evaluation, and the
unconditional statements still apply. The stored policy is unchanged (``get_bucket_policy``
returns it as written). docs/security.md lists what the emulator does not enforce.
"""

from __future__ import annotations

import json


def _patch() -> None:
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self, action: str, resource: str):
        if self.policy is None:
            return PermissionResult.NEUTRAL
        doc = json.loads(self.policy.decode() if isinstance(self.policy, bytes) else self.policy)
        statements = doc.get("Statement", [])
        statements = [statements] if isinstance(statements, dict) else statements
        doc["Statement"] = [s for s in statements if "Condition" not in s]
        return IAMPolicy(json.dumps(doc)).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission


def main(argv: list[str] | None = None) -> None:
    from moto import server

    _patch()
    server.main(argv)


if __name__ == "__main__":
    main()
