"""CloudWatch Logs: where Airflow's task logs land, the pipeline's own JSON log lines, and reading both.

Input: ``Settings`` (log group ``/<prefix>/airflow``) and task coordinates (DAG, task, run,
try, map index).
Output:
- ``task_log_stream(...)``: the stream the Amazon provider's remote logging writes a task
  try to (Airflow's log file name template with ``:`` replaced by ``_``, as the provider does);
- ``emit(...)``: one structured JSON line (``ts``, ``level``, ``event``, ``dag_id``,
  ``task_id``, ``run_id`` + fields) to the stream ``pipeline/<dag_id>/<task_id>`` of the same
  group, and to the Python logger (so it also appears in the task's own log);
- ``task_logs(...)`` / ``pipeline_lines(...)``: the events of the newest matching streams
  (what ``lifecycle logs <dag> <task>`` prints).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

from lifecycle.clients import aws
from lifecycle.settings import Settings

log = logging.getLogger("lifecycle")


def task_log_stream(dag_id: str, run_id: str, task_id: str, try_number: int | None,
                    map_index: int | None = None) -> str:
    """Airflow 3's default ``log_filename_template``, as the CloudWatch handler names streams."""
    mapped = f"map_index={map_index}/" if map_index is not None and map_index >= 0 else ""
    path = f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/{mapped}attempt={try_number or 1}.log"
    return path.replace(":", "_")


def pipeline_stream(dag_id: str, task_id: str) -> str:
    return f"pipeline/{dag_id}/{task_id}"


def ensure_log_group(settings: Settings) -> None:
    logs = aws(settings, "logs")
    try:
        logs.create_log_group(logGroupName=settings.names.log_group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass


def _ensure_stream(logs, group: str, stream: str) -> None:
    try:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass


def emit(settings: Settings, event: str, *, dag_id: str, task_id: str, run_id: str,
         level: str = "INFO", **fields) -> dict:
    """Write one JSON log line to CloudWatch Logs and to the Python logger; returns the line."""
    line = {"ts": datetime.now(UTC).isoformat(), "level": level, "event": event, "dag_id": dag_id,
            "task_id": task_id, "run_id": run_id, "target": settings.target, **fields}
    text = json.dumps(line, default=str, sort_keys=True)
    log.log(getattr(logging, level, logging.INFO), text)
    logs = aws(settings, "logs")
    stream = pipeline_stream(dag_id, task_id)
    event_ = {"timestamp": int(time.time() * 1000), "message": text}
    try:
        logs.put_log_events(logGroupName=settings.names.log_group, logStreamName=stream, logEvents=[event_])
    except logs.exceptions.ResourceNotFoundException:
        ensure_log_group(settings)
        _ensure_stream(logs, settings.names.log_group, stream)
        logs.put_log_events(logGroupName=settings.names.log_group, logStreamName=stream, logEvents=[event_])
    return line


def _streams(settings: Settings, prefix: str) -> list[dict]:
    logs, out = aws(settings, "logs"), []
    try:
        for page in logs.get_paginator("describe_log_streams").paginate(
                logGroupName=settings.names.log_group, logStreamNamePrefix=prefix):
            out.extend(page.get("logStreams", []))
    except logs.exceptions.ResourceNotFoundException:
        return []
    return out


def _events(settings: Settings, stream: str) -> list[dict]:
    logs, out, token = aws(settings, "logs"), [], None
    while True:
        kwargs = {"logGroupName": settings.names.log_group, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        resp = logs.get_log_events(**kwargs)
        out.extend(resp.get("events", []))
        if not resp.get("events") or resp.get("nextForwardToken") == token:
            return out
        token = resp.get("nextForwardToken")


def task_log_streams(settings: Settings, dag_id: str, task_id: str, run_id: str | None = None) -> list[str]:
    """Streams of a task's tries, newest first (by last event, then name)."""
    prefix = f"dag_id={dag_id}/" + (f"run_id={run_id.replace(':', '_')}/" if run_id else "")
    found = [s for s in _streams(settings, prefix) if f"/task_id={task_id}/" in s["logStreamName"]]
    found.sort(key=lambda s: (s.get("lastEventTimestamp") or s.get("creationTime") or 0, s["logStreamName"]),
               reverse=True)
    return [s["logStreamName"] for s in found]


def task_logs(settings: Settings, dag_id: str, task_id: str, run_id: str | None = None) -> dict:
    """The newest try's Airflow task log from CloudWatch: ``{"stream", "lines"}`` (None if none)."""
    streams = task_log_streams(settings, dag_id, task_id, run_id)
    if not streams:
        return {"stream": None, "lines": []}
    return {"stream": streams[0], "lines": [e["message"] for e in _events(settings, streams[0])]}


def pipeline_lines(settings: Settings, dag_id: str, task_id: str, run_id: str | None = None) -> list[dict]:
    """The pipeline's JSON lines for a task (optionally of one run), oldest first."""
    out = []
    for stream in [s["logStreamName"] for s in _streams(settings, pipeline_stream(dag_id, task_id))]:
        for e in _events(settings, stream):
            try:
                line = json.loads(e["message"])
            except ValueError:
                continue
            if run_id is None or line.get("run_id") == run_id:
                out.append(line)
    return out
