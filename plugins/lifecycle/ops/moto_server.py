"""The moto server of the embedded target, with two corrections: bucket policies, Glue table versions.

Run as ``python -m lifecycle.ops.moto_server -H 127.0.0.1 -p <port>`` (what
``lifecycle.ops.services.start_moto`` starts); arguments are moto's own.

Why: moto evaluates bucket policies on object requests but ignores their ``Condition``
(only ``StringEquals`` exists there, and without request context every condition holds), so
the Deny statements of ``lifecycle.security.bucket_policy`` (deny *if* not TLS, *if* a wrong
SSE header, *if* a pipeline role deletes) would deny every request. AWS evaluates them; here a
statement whose condition moto cannot evaluate is left out of moto's evaluation, and the
unconditional statements still apply. The stored policy is unchanged (``get_bucket_policy``
returns it as written). docs/security.md lists what the emulator does not enforce.

And moto 5.2's Glue ``UpdateTable`` ignores ``VersionId``: AWS rejects an update whose
``VersionId`` is not the table's current version with ``ConcurrentModificationException``,
which is what makes two Iceberg writers safe (each commit names the Glue version it read; the
loser gets the exception and pyiceberg retries it on the new metadata). Without it both
commits succeed and the first one's snapshot is lost (measured: 10,000 of 20,000 rows, every
round; ../shared/NOTES.md). Here the version check and the update happen under one lock, as a
compare-and-swap; an update without ``VersionId`` is unconditional, as on AWS.
"""

from __future__ import annotations

import json
import threading


def _patch() -> None:
    _patch_bucket_policies()
    _patch_glue_table_versions()


def _patch_bucket_policies() -> None:
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


def _patch_glue_table_versions() -> None:
    from moto.core.exceptions import JsonRESTError
    from moto.core.responses import EmptyResult
    from moto.glue.models import GlueBackend
    from moto.glue.responses import GlueResponse

    lock = threading.Lock()

    def update_table(self, database_name: str, table_name: str, table_input: dict,
                     version_id: str | None = None) -> None:
        with lock:
            table = self.get_table(database_name, table_name)
            current = str(table._current_version)  # noqa: SLF001 - moto's own state, no accessor
            if version_id is not None and str(version_id) != current:
                raise JsonRESTError("ConcurrentModificationException",
                                    f"Table {database_name}.{table_name} is at version {current}, "
                                    f"not {version_id}")
            table.update(table_input)

    def update_table_response(self):
        table_input = self.parameters.get("TableInput")
        self.glue_backend.update_table(self.parameters.get("DatabaseName"), table_input.get("Name"),
                                       table_input, self.parameters.get("VersionId"))
        return EmptyResult()

    GlueBackend.update_table = update_table
    GlueResponse.update_table = update_table_response


def main(argv: list[str] | None = None) -> None:
    from moto import server

    _patch()
    server.main(argv)


if __name__ == "__main__":
    main()
