"""SNS alerts in one message format, and reading them back from the SQS subscription.

Input: ``Settings`` and the facts of a failure (DAG, task, run, try, interval, error, log).
Output: one message on the alert topic (subject + JSON body with a runbook line);
``read_alerts`` drains the SQS queue subscribed to the topic (what tests and the CLI use).

Deduplication: ``publish(..., dedupe_key=...)`` first writes the key to the DynamoDB table
``<prefix>-alert-dedupe`` with a conditional put (``attribute_not_exists``); only the caller
that wins the put publishes, so the same failure reported twice (a retried callback, the
scheduler and the task runner both noticing, a re-evaluated alarm) is one message. Keys
expire after ``DEDUPE_TTL_DAYS`` (DynamoDB TTL attribute ``expires_at``). Task failures are
alerted from ``on_failure_callback``, which Airflow calls only when no retry is left, and
their key is ``task_failed|dag|task|run|map_index|try``: one alert per failure, none per retry.

AWS unreachable (the failure may well be that): ``publish`` cannot claim the key nor reach
SNS, so it keeps the alert in ``<LIFECYCLE_HOME>/alerts-pending/`` (one JSON file per
dedupe key: the same failure reported twice is still one file) and ``flush_pending``, called
before every task (``callbacks.on_task_start``) and every publish, sends it once AWS answers
again: the alert arrives late but once, instead of being lost in a log line.
"""

from __future__ import annotations

import json
import time

from lifecycle.clients import aws
from lifecycle.infra.apply import alert_queue_url, alert_topic_arn
from lifecycle.settings import Settings

DEDUPE_TTL_DAYS = 14

RUNBOOK = ("Open the log below; fix the cause; then clear the failed task in the Airflow UI "
           "(or `airflow tasks clear <dag> -t <task>`): every task is idempotent, a rerun is safe.")


def task_dedupe_key(dag_id: str, task_id: str, run_id: str, map_index: int | None,
                    try_number: int | None) -> str:
    return f"task_failed|{dag_id}|{task_id}|{run_id}|{-1 if map_index is None else map_index}|{try_number}"


def build_alert(*, dag_id: str, task_id: str, run_id: str, try_number: int | None,
                interval: str | None, error: str, log_url: str | None, target: str,
                map_index: int | None = None, max_tries: int | None = None,
                log_group: str | None = None, log_stream: str | None = None) -> dict:
    """The one task-failure message: what failed, where, the interval, the error, the logs, what to do."""
    return {
        "kind": "task_failed",
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "map_index": -1 if map_index is None else map_index,
        "try_number": try_number,
        "max_tries": max_tries,
        "data_interval": interval,
        "error": error[:2000],
        "log_url": log_url,
        "log_group": log_group,
        "log_stream": log_stream,
        "log_command": f"lifecycle logs {dag_id} {task_id} --run-id '{run_id}'",
        "target": target,
        "runbook": RUNBOOK,
        "dedupe_key": task_dedupe_key(dag_id, task_id, run_id, map_index, try_number),
    }


def build_notice(*, kind: str, source: str, message: str, runbook: str, target: str) -> dict:
    """An alert that is not a task failure (lag above threshold, a re-snapshot, ...)."""
    return {"kind": kind, "source": source, "error": message[:2000], "target": target,
            "runbook": runbook}


def claim(settings: Settings, dedupe_key: str) -> bool:
    """True for the first caller with this key (conditional put), False for every later one."""
    ddb = aws(settings, "dynamodb")
    now = int(time.time())
    try:
        ddb.put_item(TableName=settings.names.alert_dedupe_table,
                     Item={"dedupe_key": {"S": dedupe_key}, "first_seen": {"N": str(now)},
                           "expires_at": {"N": str(now + DEDUPE_TTL_DAYS * 86400)}},
                     ConditionExpression="attribute_not_exists(dedupe_key)")
    except ddb.exceptions.ConditionalCheckFailedException:
        return False
    return True


def _pending_dir(settings: Settings):
    return settings.home / "alerts-pending"


def _unreachable(exc: Exception) -> bool:
    from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError

    return isinstance(exc, (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError))


def _keep(settings: Settings, alert: dict, dedupe_key: str | None) -> str:
    import hashlib

    folder = _pending_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256((dedupe_key or json.dumps(alert, sort_keys=True, default=str)).encode()).hexdigest()[:32]
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"alert": alert, "dedupe_key": dedupe_key}, default=str))
    tmp.replace(path)
    return str(path)


def flush_pending(settings: Settings) -> int:
    """Publish the alerts kept while AWS was unreachable; returns how many were sent now."""
    folder = _pending_dir(settings)
    if not folder.is_dir():
        return 0
    sent = 0
    for path in sorted(folder.glob("*.json")):
        kept = json.loads(path.read_text())
        if _publish(settings, kept["alert"], kept["dedupe_key"]):
            sent += 1
        path.unlink(missing_ok=True)
    return sent


def publish(settings: Settings, alert: dict, dedupe_key: str | None = None) -> str | None:
    """Publish ``alert``; with a dedupe key (default: the alert's own), only once per key.
    Returns the SNS message id, or None when the key was already alerted (or AWS is
    unreachable: then the alert is kept and sent by a later ``flush_pending``)."""
    settings = settings.for_stage("airflow")  # alerts go out as the orchestrator (infra/iam/airflow.json)
    dedupe_key = dedupe_key or alert.get("dedupe_key")
    try:
        flush_pending(settings)
        return _publish(settings, alert, dedupe_key)
    except Exception as exc:
        if not _unreachable(exc):
            raise
        _keep(settings, alert, dedupe_key)
        return None


def _publish(settings: Settings, alert: dict, dedupe_key: str | None) -> str | None:
    if dedupe_key and not claim(settings, dedupe_key):
        return None
    if alert.get("kind") == "task_failed":
        subject = f"[lifecycle] {alert['dag_id']}.{alert['task_id']} failed"
    else:
        subject = f"[lifecycle] {alert['kind']}: {alert.get('source', '')}"
    subject = subject[:100]
    resp = aws(settings, "sns").publish(
        TopicArn=alert_topic_arn(settings), Subject=subject, Message=json.dumps(alert, default=str),
        MessageAttributes={"kind": {"DataType": "String", "StringValue": alert["kind"]},
                           **({"dedupe_key": {"DataType": "String", "StringValue": dedupe_key[:256]}}
                              if dedupe_key else {})},
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
