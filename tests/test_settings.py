"""infra/ and the one Settings object agree: every resource name is defined once, in Settings.

No services: reads infra/ and builds Settings from a dict environment.
"""

from __future__ import annotations

import json
import re

import yaml

from lifecycle.infra.spec import INFRA_DIR, load_spec, placeholders, policy_document, substitute
from lifecycle.settings import REPO_ROOT, Settings

ACCOUNT = "210987654321"


def settings(prefix: str = "acme-dev") -> Settings:
    return Settings.from_env({"LIFECYCLE_NAME_PREFIX": prefix, "LIFECYCLE_HOME": "/tmp/lifecycle-settings-test"})


def infra_texts() -> dict[str, str]:
    files = [INFRA_DIR / "resources.yaml", INFRA_DIR / "firehose-delivery-stream.json",
             *sorted((INFRA_DIR / "iam").glob("*.json"))]
    return {str(p.relative_to(REPO_ROOT)): p.read_text() for p in files}


def test_every_placeholder_in_infra_is_filled_from_the_settings():
    s = settings()
    for name, text in infra_texts().items():
        filled = substitute(text, s, ACCOUNT)
        assert not re.findall(r"\$\{\w+\}", filled), f"{name}: a placeholder the settings do not fill"


def test_the_names_infra_creates_are_the_names_the_code_uses():
    s = settings()
    spec = load_spec(s, ACCOUNT)
    assert [x["name"] for x in spec["kinesis_streams"]] == [s.names.stream]
    assert {t["name"] for t in spec["dynamodb_tables"]} == {s.names.reviews_table, s.names.checkpoint_table,
                                                            s.names.alert_dedupe_table}
    assert [t["name"] for t in spec["sns_topics"]] == [s.names.alert_topic]
    assert spec["sns_topics"][0]["sqs_subscriptions"] == [s.names.alert_queue]
    assert [g["name"] for g in spec["log_groups"]] == [s.names.log_group]
    assert {d["name"] for d in spec["glue_databases"]} >= {s.names.clean_database, s.names.curated_database}
    assert [x["name"] for x in spec["secrets"]] == [s.names.pii_salt_secret]
    assert {b["zone"] for b in spec["buckets"]} >= {"raw", "clean", "curated", "quarantine", "serving"}


def test_policies_name_the_resources_of_the_settings():
    s = settings()
    ingest = json.dumps(policy_document(s, "ingest-activity", ACCOUNT))
    assert f"stream/{s.names.stream}" in ingest and f"table/{s.names.reviews_table}" in ingest
    assert f"table/{s.names.checkpoint_table}" in ingest
    transform = json.dumps(policy_document(s, "transform", ACCOUNT))
    assert f"database/{s.names.clean_database}" in transform and f"secret:{s.names.pii_salt_secret}-" in transform
    assert s.names.metrics_namespace in transform


def test_no_name_of_the_settings_is_written_as_a_literal_in_infra():
    s = settings("lifecycle")  # the default prefix: a literal name would match it
    # the warehouse schema `observability` is not an AWS resource; the stage (IAM role) of the
    # same name is
    names = {v for k, v in placeholders(s, ACCOUNT).items()
             if k not in ("prefix", "region", "account", "target", "observability_schema")}
    texts = infra_texts()
    # what the check reads is there, and the check sees a name written as a literal
    assert len(names) > 10 and any(f.endswith((".yaml", ".yml")) for f in texts), (sorted(names), sorted(texts))

    def literals(text: str) -> list[str]:
        # a name inside a longer word, or in backquotes (the DAG `lake_clean` in a runbook),
        # is prose, not a resource name
        return [n for n in names if re.search(rf"(?<![\w/`-]){re.escape(n)}(?![\w`-])", text)]

    planted = next(iter(sorted(names)))
    assert literals(f"Resource: {planted}\n") == [planted]
    assert literals(f"see `{planted}` and my{planted}x\n") == []
    for file, text in texts.items():
        assert not literals(text), f"{file} writes {literals(text)!r}: use the ${{...}} placeholders"


def test_lake_formation_grants_name_the_glue_databases_of_the_settings():
    s = settings()
    spec = yaml.safe_load((INFRA_DIR / "lakeformation.yaml").read_text())
    named = set()
    for grant in spec["grants"]:
        for kind in ("databases", "tables"):
            named |= set((grant.get(kind) or {}).keys())
    assert named and named <= {s.names.clean_database, s.names.curated_database}
