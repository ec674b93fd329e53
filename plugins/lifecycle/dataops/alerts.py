"""SNS alerts in one message format, and reading them back from the SQS subscription.

Input: ``Settings`` and the facts of a failure (DAG, task, run, try, interval, error, log).
Output: one message on the alert topic (subject + JSON body with a runbook line);
``read_alerts`` drains the SQS queue subscribed to the topic (what tests and the CLI use).
"""

from __future__ import annotations

import json

from lifecycle.clients import aws
from lifecycle.infra import alert_queue_url, alert_topic_arn
from lifecycle.settings import Settings

RUNBOOK = ("Open the log below; fix the cause; then clear the failed task in the Airflow UI "
           "(or `airflow tasks clear <dag> -t <task>`): every task is idempotent, a rerun is safe.")


def build_alert(*, dag_id: str, task_id: str, run_id: str, try_number: int | None,
                interval: str | None, error: str, log_url: str | None, target: str) -> dict:
    return {
        "kind": "task_failed",
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "try_number": try_number,
        "data_interval": interval,
        "error": error[:2000],
        "log_url": log_url,
        "target": target,
        "runbook": RUNBOOK,
    }


def build_notice(*, kind: str, source: str, message: str, runbook: str, target: str) -> dict:
    """An alert that is not a task failure (lag above threshold, a re-snapshot, ...)."""
    return {"kind": kind, "source": source, "error": message[:2000], "target": target,
            "runbook": runbook}


def publish(settings: Settings, alert: dict) -> str:
    if alert.get("kind") == "task_failed":
        subject = f"[lifecycle] {alert['dag_id']}.{alert['task_id']} failed"
    else:
        subject = f"[lifecycle] {alert['kind']}: {alert.get('source', '')}"
    subject = subject[:100]
    resp = aws(settings, "sns").publish(
        TopicArn=alert_topic_arn(settings), Subject=subject, Message=json.dumps(alert, default=str),
        MessageAttributes={"kind": {"DataType": "String", "StringValue": alert["kind"]}},
    )
    return resp["MessageId"]


def read_alerts(settings: Settings, max_messages: int = 100, delete: bool = True) -> list[dict]:
    """Alerts waiting in the SQS subscription (SNS envelope unwrapped)."""
    sqs = aws(settings, "sqs")
    url = alert_queue_url(settings)
    out: list[dict] = []
    while len(out) < max_messages:
        resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        msgs = resp.get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            envelope = json.loads(m["Body"])
            out.append(json.loads(envelope["Message"]) if "Message" in envelope else envelope)
            if delete:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out
