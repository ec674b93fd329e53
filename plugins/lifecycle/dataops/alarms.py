"""Evaluate the CloudWatch alarms of ``infra/`` where the emulator does not, and alert on ALARM.

Input: ``Settings``; the alarms named ``<prefix>-*`` (``lifecycle infra apply`` creates them
from ``infra/resources.yaml``) and their metric's datapoints.
Output: per alarm, the state CloudWatch's rule gives (the last ``EvaluationPeriods`` periods
of ``Period`` seconds, the alarm's statistic per period, compared with ``Threshold`` by
``ComparisonOperator``; ALARM when at least ``DatapointsToAlarm`` of them breach; periods
without data follow ``TreatMissingData``: ``missing`` gives INSUFFICIENT_DATA when no period
has data, ``ignore`` keeps the state, ``breaching``/``notBreaching`` count as such).
A changed state is written back with ``SetAlarmState``; a change *to* ALARM publishes one
``alarm`` alert to the alert topic (deduplicated by alarm and the period that tripped it).

On real AWS CloudWatch does all of this itself (and notifies the same topic through the
alarm action); running the evaluator there changes nothing but can be skipped
(``evaluate(..., only_emulated=True)`` returns at once on the ``aws`` target).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from lifecycle.clients import aws
from lifecycle.settings import Settings

COMPARE = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


def decide(values: list[float | None], threshold: float, comparison: str, datapoints_to_alarm: int,
           treat_missing: str, current: str) -> tuple[str, str]:
    """The state CloudWatch's rule gives for the evaluation periods' values (None = no data).

    Returns (state, reason). Pure: the unit tests exercise it without any AWS.
    """
    breach = COMPARE[comparison]
    if treat_missing == "breaching":
        flags = [True if v is None else breach(v, threshold) for v in values]
    elif treat_missing == "notBreaching":
        flags = [False if v is None else breach(v, threshold) for v in values]
    else:
        flags = [breach(v, threshold) for v in values if v is not None]
    if not flags:
        keep = treat_missing == "ignore" and current in ("OK", "ALARM")
        return (current if keep else "INSUFFICIENT_DATA"), "no datapoints in the evaluation periods"
    n_breach = sum(flags)
    needed = min(datapoints_to_alarm, len(values))
    shown = ", ".join("-" if v is None else f"{v:g}" for v in values)
    if n_breach >= needed:
        return "ALARM", f"{n_breach} of the last {len(values)} datapoints [{shown}] breached {comparison} {threshold:g}"
    return "OK", f"{n_breach} of the last {len(values)} datapoints [{shown}] breached {comparison} {threshold:g}"


def _values(settings: Settings, alarm: dict, now: datetime) -> list[float | None]:
    period, n = int(alarm["Period"]), int(alarm["EvaluationPeriods"])
    stat = alarm.get("Statistic") or "Maximum"
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(seconds=period * n)
    resp = aws(settings, "cloudwatch").get_metric_statistics(
        Namespace=alarm["Namespace"], MetricName=alarm["MetricName"], Dimensions=alarm.get("Dimensions", []),
        StartTime=start, EndTime=end, Period=period, Statistics=[stat])
    buckets: list[float | None] = [None] * n
    for p in resp.get("Datapoints", []):
        ts = p["Timestamp"].astimezone(UTC)
        i = int((ts - start).total_seconds() // period)
        i = min(max(i, 0), n - 1)
        v = float(p[stat])
        prev = buckets[i]
        if prev is None:
            buckets[i] = v
        elif stat == "Sum" or stat == "SampleCount":
            buckets[i] = prev + v
        elif stat == "Minimum":
            buckets[i] = min(prev, v)
        else:
            buckets[i] = max(prev, v)
    return buckets


def alarms(settings: Settings) -> list[dict]:
    out = []
    for page in aws(settings, "cloudwatch").get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=f"{settings.names.prefix}-", AlarmTypes=["MetricAlarm"]):
        out.extend(page.get("MetricAlarms", []))
    return out


def evaluate(settings: Settings, now: datetime | None = None, only_emulated: bool = False) -> list[dict]:
    """Evaluate every alarm; set changed states; alert on each change to ALARM. Returns a summary."""
    from lifecycle.dataops import alerts

    if only_emulated and settings.target == "aws":
        return []
    now = now or datetime.now(UTC)
    cw = aws(settings, "cloudwatch")
    summary = []
    for a in alarms(settings):
        values = _values(settings, a, now)
        state, reason = decide(values, float(a["Threshold"]), a["ComparisonOperator"],
                               int(a.get("DatapointsToAlarm") or a["EvaluationPeriods"]),
                               a.get("TreatMissingData") or "missing", a.get("StateValue", "INSUFFICIENT_DATA"))
        before = a.get("StateValue", "INSUFFICIENT_DATA")
        changed = state != before
        alerted = False
        if changed:
            cw.set_alarm_state(AlarmName=a["AlarmName"], StateValue=state, StateReason=reason[:1023],
                               StateReasonData=json.dumps({"evaluator": "lifecycle", "values": values}))
            if state == "ALARM":
                description, _, runbook = (a.get("AlarmDescription") or "").partition(" | runbook: ")
                dims = ", ".join(f"{d['Name']}={d['Value']}" for d in a.get("Dimensions", []))
                alert = alerts.build_notice(
                    kind="alarm", source=a["AlarmName"],
                    message=f"{description or a['AlarmName']}: {reason} ({a['MetricName']} {dims})",
                    runbook=runbook or "See the alarm in CloudWatch and the metric's trend: `lifecycle metrics`.",
                    target=settings.target)
                alert.update(alarm=a["AlarmName"], metric=a["MetricName"], state_before=before, state=state)
                period_start = int(now.timestamp()) // int(a["Period"]) * int(a["Period"])
                alerted = alerts.publish(settings, alert, f"alarm|{a['AlarmName']}|{period_start}") is not None
        summary.append({"alarm": a["AlarmName"], "state": state, "before": before, "changed": changed,
                        "alerted": alerted, "reason": reason})
    return summary
