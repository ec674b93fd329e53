"""IAM enforcement on the embedded target's moto, switched on and off at run time.

Input: ``Settings`` of the embedded target (moto at ``settings.aws.endpoint``).
Output: ``enforced(settings)``: inside it, moto authenticates and authorizes every request
(``POST /moto-api/reset-auth`` with ``0``: no more unauthenticated requests); on exit it is
back to accepting any key (``inf``). ``stage_settings(settings, stage)``: the settings of a
stage that calls AWS as the stage's IAM role (``Settings.for_stage`` with stage roles on).

Why at run time and not from moto's start (``INITIAL_NO_AUTH_ACTION_COUNT=0``): moto has
no root key, so ``infra apply`` and the AssumeRole of each stage happen before enforcement
(moto checks a role's trust policy against the exact caller ARN, so the account-root
principal of ``infra/iam/trust-policy.json`` admits nobody under enforcement). And moto
evaluates policy resources only for S3 (bucket/key ARNs), SQS, IAM and STS: every other
service is checked against resource ``*``, so a resource-scoped Allow (a Kinesis stream, a
DynamoDB table) never matches there and the whole lifecycle cannot run enforced on moto
(docs/security.md).
"""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

from lifecycle.settings import Settings


def set_enforcement(settings: Settings, on: bool) -> None:
    if settings.target != "embedded":
        raise ValueError("IAM enforcement can only be switched on the embedded target's moto")
    req = urllib.request.Request(f"{settings.aws.endpoint}/moto-api/reset-auth", method="POST",
                                 data=b"0" if on else b"inf", headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=30).read()


@contextlib.contextmanager
def enforced(settings: Settings) -> Iterator[None]:
    set_enforcement(settings, True)
    try:
        yield
    finally:
        set_enforcement(settings, False)


def stage_settings(settings: Settings, stage: str) -> Settings:
    return replace(settings, stage_roles=True).for_stage(stage)
