"""Quarantine monitoring: counts by reason in CloudWatch, an alert when a batch is too bad.

Input: ``Settings``; the quarantine table ``s3://<quarantine>/events/data_0.parquet`` written
by the clean job and the raw Firehose objects it came from.
Output: for every raw object (one shard batch) not checked before: its record count and
quarantined count; CloudWatch metrics ``QuarantinedRecords`` (dimension ``Reason``) and
``QuarantineRate`` (the worst new batch); one SNS alert listing the batches whose share of
quarantined records is above ``LIFECYCLE_QUARANTINE_ALERT_RATE``. The checked objects are
remembered in ``_lifecycle/quarantine-checked.json`` of the quarantine bucket, so a batch is
judged (and alerts) once, however often the clean job rebuilds.
"""

from __future__ import annotations

import json
from collections import Counter

from lifecycle.clients import aws
from lifecycle.lake.counts import raw_records
from lifecycle.settings import Settings

STATE_KEY = "_lifecycle/quarantine-checked.json"


def _raw_keys(settings: Settings) -> list[str]:
    s3, keys = aws(settings, "s3"), []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.names.bucket("raw"), Prefix="events/"):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


def _quarantined(settings: Settings) -> list[tuple[str, str, int]]:
    from lifecycle.clients import connect_duckdb

    bucket = settings.names.bucket("quarantine")
    if not aws(settings, "s3").list_objects_v2(Bucket=bucket, Prefix="events/data_0.parquet").get("KeyCount"):
        return []
    with connect_duckdb(settings) as con:
        return con.execute(f"SELECT raw_key, reason, count(*) FROM read_parquet('s3://{bucket}/events/data_0.parquet') "
                           "GROUP BY 1, 2").fetchall()


def _checked(settings: Settings) -> set[str]:
    s3 = aws(settings, "s3")
    try:
        return set(json.loads(s3.get_object(Bucket=settings.names.bucket("quarantine"), Key=STATE_KEY)["Body"].read()))
    except s3.exceptions.NoSuchKey:
        return set()


def check(settings: Settings) -> dict:
    from lifecycle.dataops import alerts

    checked = _checked(settings)
    new_keys = [k for k in _raw_keys(settings) if k not in checked]
    by_key: dict[str, Counter] = {}
    for raw_key, reason, n in _quarantined(settings):
        by_key.setdefault(raw_key, Counter())[reason] += int(n)
    reasons: Counter = Counter()
    batches = []
    for key in new_keys:
        total = len(raw_records(settings, key))
        bad = by_key.get(key, Counter())
        reasons.update(bad)
        rate = sum(bad.values()) / total if total else 0.0
        batches.append({"raw_key": key, "records": total, "quarantined": sum(bad.values()), "rate": round(rate, 4)})
    worst = max((b["rate"] for b in batches), default=0.0)
    if batches:
        data = [{"MetricName": "QuarantinedRecords", "Value": float(n), "Unit": "Count",
                 "Dimensions": [{"Name": "Source", "Value": "events"}, {"Name": "Reason", "Value": r},
                                {"Name": "Target", "Value": settings.target}]} for r, n in sorted(reasons.items())]
        data.append({"MetricName": "QuarantineRate", "Value": worst, "Unit": "None",
                     "Dimensions": [{"Name": "Source", "Value": "events"},
                                    {"Name": "Target", "Value": settings.target}]})
        aws(settings, "cloudwatch").put_metric_data(Namespace=settings.names.metrics_namespace, MetricData=data)
    too_bad = [b for b in batches if b["rate"] > settings.thresholds.quarantine_alert_rate]
    if too_bad:
        listing = "; ".join(f"{b['raw_key']}: {b['quarantined']}/{b['records']}" for b in too_bad[:10])
        alerts.publish(settings, alerts.build_notice(
            kind="quarantine_rate", source="user-activity events",
            message=(f"{len(too_bad)} batch(es) had more than {settings.thresholds.quarantine_alert_rate:.0%} of their "
                     f"records quarantined: {listing}"),
            runbook="Look at the reasons: `lifecycle query` on landing is clean; read "
                    "s3://<prefix>-quarantine/events/data_0.parquet (reason, payload) to find the producer bug.",
            target=settings.target))
    aws(settings, "s3").put_object(Bucket=settings.names.bucket("quarantine"), Key=STATE_KEY,
                                   Body=json.dumps(sorted(checked | set(new_keys))).encode())
    return {"batches_checked": len(batches), "quarantined_by_reason": dict(reasons),
            "worst_rate": worst, "alerted_batches": len(too_bad), "rejected": sum(reasons.values())}
