"""Write-then-promote for the lake jobs: objects appear where readers look only when whole.

Input: a boto3 S3 client, a bucket, and the objects a DuckDB ``COPY`` wrote under a staging
prefix ``_lifecycle/staging/<job>/<run token>/<write>/`` of that bucket; below it the keys
are the final ones (``<table>/<partition>=<value>/data_0.parquet``...).
Output: ``promote`` copies each staged object to its final key (server-side: ``CopyObject``,
or boto3's managed multipart copy past CopyObject's 5 GB limit), then, for a full replace,
deletes the final objects under the table's prefix that the write did not produce (what
DuckDB's ``OVERWRITE`` did before writing). ``discard`` deletes staging objects, best
effort (they are invisible to readers); ``clear_job`` deletes what a killed run of a job
left under its staging prefix.

Why: a DuckDB COPY that fails by exception (out of memory, a network error) can complete
multipart uploads of the files it had open, leaving truncated Parquet objects, and
``OVERWRITE`` deletes the previous version before it writes. Written to staging first, a
failed COPY touches nothing readers see; each PUT/COPY of S3 is atomic per object, so
during and after a promotion every final object is whole (the old one or the new one).
A copy of the same bytes gets the same ETag, so a byte-identical rerun still looks
unchanged to the job bookmarks.

The staging prefix sits under ``_lifecycle/`` (the pipeline's own state), outside every
table's prefix: the Glue tables, the readers (``read_parquet('<table>/...')``), the
warehouse load and the monitors all address tables by prefix and never see it.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

log = logging.getLogger(__name__)

PREFIX = "_lifecycle/staging/"
# parallel copies of one write's objects (boto3's default pool holds 10 connections)
_WORKERS = 8
# the largest object one CopyObject request may copy
_SINGLE_COPY_MAX = 5 * 1024**3


def run_token() -> str:
    """A token unique to one run of a job: its staging objects never meet another run's."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def job_prefix(job: str) -> str:
    return f"{PREFIX}{job}/"


def list_objects(s3, bucket: str, prefix: str) -> dict[str, int]:
    """``{key: size}`` of the objects under ``prefix``."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return dict(sorted(found.items()))


def list_keys(s3, bucket: str, prefix: str) -> list[str]:
    return list(list_objects(s3, bucket, prefix))


def delete_keys(s3, bucket: str, keys: list[str]) -> None:
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]],
                                                 "Quiet": True})


def promote(s3, bucket: str, staged: str, replace_prefix: str | None = None) -> list[str]:
    """Copy every object under ``staged`` (a prefix ending in ``/``) to its key below it;
    with ``replace_prefix``, then delete the objects under that prefix the write did not
    produce. Returns the staged keys (left for the caller to delete)."""
    sizes = list_objects(s3, bucket, staged)

    def copy(key: str) -> None:
        source, final = {"Bucket": bucket, "Key": key}, key[len(staged):]
        if sizes[key] <= _SINGLE_COPY_MAX:
            s3.copy_object(CopySource=source, Bucket=bucket, Key=final)  # one request
        else:  # past CopyObject's 5 GB: the managed copy, in parts (UploadPartCopy)
            s3.copy(source, bucket, final)

    with ThreadPoolExecutor(max_workers=min(_WORKERS, max(len(sizes), 1))) as pool:
        list(pool.map(copy, sizes))
    if replace_prefix is not None:
        written = {k[len(staged):] for k in sizes}
        delete_keys(s3, bucket, [k for k in list_keys(s3, bucket, replace_prefix) if k not in written])
    return list(sizes)


def discard(s3, bucket: str, prefix: str, keys: list[str] | None = None) -> None:
    """Delete ``keys``, or every object under ``prefix``; never raises, logs: a leftover is
    invisible to readers and the job's next run deletes it (``clear_job``)."""
    try:
        delete_keys(s3, bucket, list_keys(s3, bucket, prefix) if keys is None else keys)
    except Exception as err:  # noqa: BLE001 - on a failure path the original error is the one to report
        log.warning("could not delete staging objects s3://%s/%s: %s", bucket, prefix, err)


def clear_job(s3, buckets: list[str], job: str) -> int:
    """Delete the staging objects an earlier run of ``job`` left (a killed process runs no
    ``finally``). Returns how many were deleted."""
    n = 0
    for bucket in buckets:
        keys = list_keys(s3, bucket, job_prefix(job))
        delete_keys(s3, bucket, keys)
        n += len(keys)
    return n
