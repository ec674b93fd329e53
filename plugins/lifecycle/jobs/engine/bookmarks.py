"""Job bookmarks: what each Glue-style job has already processed, so a rerun only does what is new.

Input: ``Settings`` and a job name. Output: one JSON object per job,
``s3://<clean>/_lifecycle/job-bookmarks/<job>.json``::

    {"job": ..., "version": 1, "in_flight": false, "updated_at": iso,
     "inputs": {<input name>: {<object key>: <ETag>, ...}, ...}}

An input is a set of objects a job read (the CDC files of one DMS table, the Firehose objects
of a stream) or the snapshot of a lake table it read (``clean.<table>``: ``{<data file URI>:
<partition value>}``, the snapshot's files: immutable and uniquely named, so the files added
and gone since are what the commits since changed). A key with the same ETag as in the
bookmark was processed; a new key, or a key whose ETag changed, is new. AWS Glue keeps the same state
in the service (a modification-time high-water mark plus the objects at the boundary); here it
is a plain object a user can read, and the full key set means an object that arrives late
with an older name is still picked up.

``in_flight`` is set before a run writes and cleared with the new inputs after its last
write. A run that finds it set knows the previous run stopped half-way and rebuilds in full:
the outputs may hold part of a batch, and reprocessing that batch incrementally would see its
own records as duplicates. ``reset`` deletes the bookmark: the next run reprocesses everything.

Glue's ``--job-bookmark-option`` names select the mode: ``job-bookmark-enable`` (read and
advance), ``job-bookmark-disable`` (process everything, leave the bookmark alone),
``job-bookmark-pause`` (process what is new, do not advance).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lifecycle.clients import aws
from lifecycle.settings import Settings

PREFIX = "_lifecycle/job-bookmarks/"
OPTIONS = ("job-bookmark-enable", "job-bookmark-disable", "job-bookmark-pause")


def _key(job: str) -> str:
    return f"{PREFIX}{job}.json"


@dataclass
class Bookmark:
    job: str
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    in_flight: bool = False
    exists: bool = False

    def seen(self, name: str) -> dict[str, str]:
        return self.inputs.get(name, {})

    def to_json(self) -> str:
        return json.dumps({"job": self.job, "version": 1, "in_flight": self.in_flight,
                           "updated_at": datetime.now(UTC).isoformat(), "inputs": self.inputs},
                          sort_keys=True)


def _read(settings: Settings, job: str) -> dict | None:
    s3 = aws(settings, "s3")
    try:
        return json.loads(s3.get_object(Bucket=settings.names.bucket("clean"), Key=_key(job))["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def load(settings: Settings, job: str) -> Bookmark:
    data = _read(settings, job)
    if data is None:
        return Bookmark(job)
    return Bookmark(job, inputs=data.get("inputs", {}), in_flight=bool(data.get("in_flight")), exists=True)


def save(settings: Settings, bookmark: Bookmark) -> None:
    aws(settings, "s3").put_object(Bucket=settings.names.bucket("clean"), Key=_key(bookmark.job),
                                   Body=bookmark.to_json().encode(), ContentType="application/json")
    bookmark.exists = True


def reset(settings: Settings, jobs: list[str]) -> list[str]:
    """Delete the bookmarks of ``jobs``; returns the jobs that had one."""
    s3, bucket, had = aws(settings, "s3"), settings.names.bucket("clean"), []
    for job in jobs:
        if s3.list_objects_v2(Bucket=bucket, Prefix=_key(job), MaxKeys=1).get("KeyCount"):
            s3.delete_object(Bucket=bucket, Key=_key(job))
            had.append(job)
    return had


def describe(settings: Settings, jobs: list[str]) -> list[dict]:
    """One row per job: whether it has a bookmark, objects remembered per input, last update."""
    rows = []
    for job in jobs:
        data = _read(settings, job)
        if data is None:
            rows.append({"job": job, "bookmark": False})
            continue
        rows.append({"job": job, "bookmark": True, "in_flight": data.get("in_flight", False),
                     "updated_at": data.get("updated_at"),
                     "objects": {k: len(v) for k, v in sorted(data.get("inputs", {}).items())}})
    return rows
