"""``infra/`` read: the resources and IAM policies as data, with the target's names filled in.

Input: ``Settings`` (name prefix, region, target) and an account id; the files
``infra/resources.yaml`` and ``infra/iam/*.json``, whose ``${prefix}``, ``${region}``,
``${account}`` and ``${target}`` placeholders ``substitute`` fills. Output: the spec dict,
one stage's policy document, the caller's account id. Read-only: ``apply`` and ``plan``
both start from here.
"""

from __future__ import annotations

import json
from string import Template

import yaml

from lifecycle.clients import aws
from lifecycle.settings import REPO_ROOT, Settings

INFRA_DIR = REPO_ROOT / "infra"


def substitute(text: str, settings: Settings, account: str) -> str:
    return Template(text).safe_substitute(prefix=settings.name_prefix, region=settings.region,
                                          account=account, target=settings.target)


def load_spec(settings: Settings, account: str = "123456789012") -> dict:
    return yaml.safe_load(substitute((INFRA_DIR / "resources.yaml").read_text(), settings, account))


def policy_document(settings: Settings, stage: str, account: str) -> dict:
    return json.loads(substitute((INFRA_DIR / "iam" / f"{stage}.json").read_text(), settings, account))


def account_id(settings: Settings) -> str:
    return aws(settings, "sts").get_caller_identity()["Account"]
