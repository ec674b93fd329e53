"""``infra/`` read: the resources and IAM policies as data, with the target's names filled in.

Input: ``Settings`` (name prefix, region, target) and an account id; the files
``infra/resources.yaml`` and ``infra/iam/*.json``, whose ``${...}`` placeholders (the
prefix, region, account, target and every resource name, ``placeholders``) ``substitute`` fills. Output: the spec dict,
one stage's policy document, the caller's account id. Read-only: ``apply`` and ``plan``
both start from here.
"""

from __future__ import annotations

import json
from dataclasses import fields
from string import Template

import yaml

from lifecycle.clients import aws
from lifecycle.settings import REPO_ROOT, Names, Settings

INFRA_DIR = REPO_ROOT / "infra"


def placeholders(settings: Settings, account: str) -> dict[str, str]:
    """What ``${name}`` stands for in ``infra/``: the region, account and target, and every
    resource name of ``Settings.names`` under its own name (``${stream}``, ``${alert_topic}``),
    so a name is written once (tests/test_settings.py checks that infra/ and the settings agree)."""
    names = settings.names
    derived = [attr for attr, value in vars(Names).items() if isinstance(value, property)]
    return {
        "region": settings.aws.region, "account": account, "target": settings.target,
        **{name: str(getattr(names, name)) for name in [f.name for f in fields(names)] + derived},
    }


def substitute(text: str, settings: Settings, account: str) -> str:
    return Template(text).safe_substitute(placeholders(settings, account))


def load_spec(settings: Settings, account: str = "123456789012") -> dict:
    return yaml.safe_load(substitute((INFRA_DIR / "resources.yaml").read_text(), settings, account))


def policy_document(settings: Settings, stage: str, account: str) -> dict:
    return json.loads(substitute((INFRA_DIR / "iam" / f"{stage}.json").read_text(), settings, account))


def account_id(settings: Settings) -> str:
    return aws(settings, "sts").get_caller_identity()["Account"]
