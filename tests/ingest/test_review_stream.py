"""Product reviews through DynamoDB Streams: export once, then the stream, replayed by clean_reviews.

Uses the session's embedded environment (pgserver + moto), reset at the start of the module.
Input: reviews put, updated and deleted through the DynamoDB API (and, for the ordering rule,
hand-written raw objects in the documented layouts).
Asserts: the clean reviews table equals a scan of the DynamoDB table after every round;
stream objects in the documented layout and checkpoints in the lease table; a crash between
the object write and the checkpoint rewrites the same keys with no duplicate record; a rerun
with nothing new writes nothing; stream records older than the export are harmless (same
state with or without the exportTime filter) and the replay order is (creation time,
sequence number as a big integer); a replaced or trimmed stream gets a fresh export.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import reset_environment

from lifecycle.clients import aws

START = datetime(2026, 1, 2, tzinfo=UTC)
END = datetime(2026, 1, 3, tzinfo=UTC)
DAY = date(2026, 1, 2)
KEY_RE = re.compile(r"^reviews/stream/(\d{4}/\d{2}/\d{2}/\d{2})/product_reviews-(shardId-[\w-]+)-(\d+)\.json$")


@pytest.fixture(scope="module")
def env(settings):
    reset_environment(settings)
    return settings


# ---- helpers ----------------------------------------------------------------------------------

def put_review(settings, pid: int, rid: str, rating: int, body: str = "fine", customer: int = 1,
               created: str = "2026-01-02T10:00:00Z", title: str | None = "t") -> None:
    item = {"product_id": {"N": str(pid)}, "review_id": {"S": rid}, "customer_id": {"N": str(customer)},
            "rating": {"N": str(rating)}, "body": {"S": body}, "created_at": {"S": created}}
    if title is not None:
        item["title"] = {"S": title}
    aws(settings, "dynamodb").put_item(TableName=settings.names.reviews_table, Item=item)


def set_rating(settings, pid: int, rid: str, rating: int) -> None:
    aws(settings, "dynamodb").update_item(
        TableName=settings.names.reviews_table, Key={"product_id": {"N": str(pid)}, "review_id": {"S": rid}},
        UpdateExpression="SET rating = :r", ExpressionAttributeValues={":r": {"N": str(rating)}})


def delete_review(settings, pid: int, rid: str) -> None:
    aws(settings, "dynamodb").delete_item(
        TableName=settings.names.reviews_table, Key={"product_id": {"N": str(pid)}, "review_id": {"S": rid}})


def dynamodb_rows(settings) -> list[tuple]:
    """The table's current items as clean rows, sorted by key."""
    rows = []
    for page in aws(settings, "dynamodb").get_paginator("scan").paginate(
            TableName=settings.names.reviews_table, ConsistentRead=True):
        for i in page["Items"]:
            created = datetime.fromisoformat(i["created_at"]["S"].replace("Z", "+00:00"))
            rows.append((int(i["product_id"]["N"]), i["review_id"]["S"], int(i["customer_id"]["N"]),
                         int(i["rating"]["N"]), i.get("title", {}).get("S"), i.get("body", {}).get("S"),
                         created))
    return sorted(rows)


def clean_rows(settings) -> list[tuple]:
    from raw_lake import read

    return read(settings, "SELECT * FROM {clean.reviews} ORDER BY product_id, review_id")


def clean(settings) -> dict:
    from lifecycle.jobs.engine.runner import run_job

    return run_job(settings, "clean_reviews", START, END)


def keys(settings, prefix: str) -> list[str]:
    out = []
    for page in aws(settings, "s3").get_paginator("list_objects_v2").paginate(
            Bucket=settings.names.bucket("raw"), Prefix=prefix):
        out.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(out)


def stream_records(settings) -> list[dict]:
    s3 = aws(settings, "s3")
    out = []
    for key in keys(settings, "reviews/stream/"):
        body = s3.get_object(Bucket=settings.names.bucket("raw"), Key=key)["Body"].read().decode()
        out.extend(json.loads(line) for line in body.splitlines() if line)
    return out


def export_time(settings, export_id: str) -> str:
    body = aws(settings, "s3").get_object(
        Bucket=settings.names.bucket("raw"), Key=f"reviews/AWSDynamoDB/{export_id}/manifest-summary.json")["Body"]
    return json.loads(body.read())["exportTime"]


def clear_reviews_raw(settings) -> None:
    s3 = aws(settings, "s3")
    for key in keys(settings, "reviews/"):
        s3.delete_object(Bucket=settings.names.bucket("raw"), Key=key)


# ---- through DynamoDB and its stream --------------------------------------------------------------

def test_export_then_stream_gives_the_table_exactly(env):
    from lifecycle.ingest import review_stream, reviews
    from lifecycle.sources.simulator import change_reviews

    for i in range(12):
        put_review(env, 1 + i % 4, f"r{i:02d}", 1 + i % 5, body=f"review {i}", customer=i + 1,
                   created=f"2026-01-01T{i:02d}:00:00Z", title=None if i == 3 else f"title {i}")
    set_rating(env, 1, "r00", 4)                   # an update before the export
    put_review(env, 9, "ghost", 2)                 # inserted and deleted before the export
    delete_review(env, 9, "ghost")

    first = reviews.run(env, END)
    assert first["mode"] == "export+stream" and first["export_id"] == "20260103T000000Z"
    assert first["items"] == 12
    assert first["events"] == {"INSERT": 13, "MODIFY": 1, "REMOVE": 1}  # all retained history
    assert keys(env, "reviews/AWSDynamoDB/") == [
        "reviews/AWSDynamoDB/20260103T000000Z/data/part-00000.json",
        "reviews/AWSDynamoDB/20260103T000000Z/manifest-summary.json"]
    result = clean(env)
    assert clean_rows(env) == dynamodb_rows(env) and len(dynamodb_rows(env)) == 12
    assert result["rejected"] == 0 and result["rows_out"] == {"reviews": 12}

    # creates, updates (twice on one item), deletes, a delete + re-create of the same key
    changed = change_reviews(env, DAY, seed=7, n_updates=3, n_deletes=2)
    assert changed["reviews_updated"] == 3 and changed["reviews_deleted"] == 2
    touched = {(p, r) for p, r, *_ in changed["updated"] + changed["deleted"]}
    assert len(touched) == 5
    put_review(env, 5, "new-1", 5, body="brand new")
    put_review(env, 5, "new-2", 1)
    set_rating(env, 5, "new-2", 2)
    set_rating(env, 5, "new-2", 3)
    pid, rid = next((p, r) for p, r, *_ in dynamodb_rows(env) if (p, r) not in touched)
    delete_review(env, pid, rid)
    put_review(env, pid, rid, 1, body="written again")

    second = reviews.run(env, END + timedelta(hours=1))
    assert second["mode"] == "stream" and second["export_id"] == "20260103T000000Z"
    assert second["events"] == {"INSERT": 3, "MODIFY": 5, "REMOVE": 3}
    assert second["stream_records"] == second["items"] == 11
    assert len(keys(env, "reviews/AWSDynamoDB/")) == 2  # no second export
    result = clean(env)
    assert clean_rows(env) == dynamodb_rows(env)
    assert result["rejected"] == 0
    # incremental (job bookmark): the clean table plus the 11 stream records that are new
    assert result["mode"] == "incremental"
    assert result["rows_in"] == {"clean.reviews": 12, "review_stream": 11}

    # the objects: documented key, one record per line as the API returns it
    objects = keys(env, "reviews/stream/")
    assert len(objects) == 2
    for key in objects:
        hour, shard, first_seq = KEY_RE.match(key).groups()
        body = aws(env, "s3").get_object(Bucket=env.names.bucket("raw"), Key=key)["Body"].read().decode()
        records = [json.loads(line) for line in body.splitlines()]
        assert records[0]["dynamodb"]["SequenceNumber"] == first_seq
        created = records[0]["dynamodb"]["ApproximateCreationDateTime"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", created)
        assert created[:13].replace("-", "/").replace("T", "/") == hour
        for r in records:
            assert r["eventName"] in ("INSERT", "MODIFY", "REMOVE")
            assert set(r["dynamodb"]["Keys"]) == {"product_id", "review_id"}
            assert ("NewImage" in r["dynamodb"]) == (r["eventName"] != "REMOVE")
            assert ("OldImage" in r["dynamodb"]) == (r["eventName"] != "INSERT")
    # the checkpoint is the last record written, in the lease table
    last = stream_records(env)[-1]["dynamodb"]["SequenceNumber"]
    assert review_stream.get_lease(env, shard) == {"checkpoint": last, "shard_end": False}


def test_a_crash_before_the_checkpoint_rewrites_the_same_object(env, monkeypatch):
    from lifecycle.ingest import review_stream, reviews

    put_review(env, 6, "crash-1", 4)
    set_rating(env, 6, "crash-1", 2)
    delete_review(env, 5, "new-1")
    before = set(keys(env, "reviews/stream/"))

    def killed(*args, **kwargs):
        raise SystemExit("worker killed after the object write, before the checkpoint")

    monkeypatch.setattr(review_stream, "_set_checkpoint", killed)
    with pytest.raises(SystemExit):
        reviews.run(env, END)
    after_crash = set(keys(env, "reviews/stream/"))
    assert len(after_crash - before) == 1
    monkeypatch.undo()

    retry = reviews.run(env, END)
    assert retry["mode"] == "stream" and retry["stream_records"] == 3
    assert set(keys(env, "reviews/stream/")) == after_crash  # the same key, overwritten
    seqs = [r["dynamodb"]["SequenceNumber"] for r in stream_records(env)]
    assert len(seqs) == len(set(seqs))  # no record twice

    # nothing new: nothing read, nothing written
    assert reviews.run(env, END)["stream_records"] == 0
    assert set(keys(env, "reviews/stream/")) == after_crash
    clean(env)
    assert clean_rows(env) == dynamodb_rows(env)


def test_small_batches_and_the_batch_limit(env):
    from lifecycle.ingest import review_stream

    for i in range(7):
        put_review(env, 7, f"batch-{i}", 3)
    out = review_stream.run(env, max_records=3)
    assert out["records"] == 7 and out["files_written"] == 3
    assert review_stream.run(env, max_records=3)["records"] == 0
    clean(env)
    assert clean_rows(env) == dynamodb_rows(env)


def test_a_replaced_stream_gets_a_fresh_export(env):
    """A checkpoint of a stream the table no longer has (disabled and re-enabled: the changes
    in between are in no stream) makes the consumer take a new export and start the current
    stream. moto cannot disable and re-enable a stream (writes fail while disabled, and the
    re-enable is refused), so the old stream's lease is written here as it would be left."""
    from lifecycle.ingest import review_stream, reviews

    old_arn = review_stream.stream_arn(env).rsplit("/", 1)[0] + "/2026-01-01T00:00:00.000"
    aws(env, "dynamodb").put_item(TableName=env.names.checkpoint_table, Item={
        "lease_key": {"S": review_stream.lease_key(env, "shardId-00000001700000000000-0ld0ld00")},
        "checkpoint": {"S": "4200000000000000000001"}, "shard_end": {"BOOL": False},
        "stream_arn": {"S": old_arn}})
    set_rating(env, 5, "new-2", 5)
    delete_review(env, 6, "crash-1")
    put_review(env, 8, "after-re-enable", 5)

    out = reviews.run(env, END + timedelta(days=1))
    assert out["mode"] == "export+stream" and out["export_id"] > "20260103T000000Z"
    assert out["stream_records"] == 3
    assert review_stream.stale_leases(env, review_stream.stream_arn(env)) == []
    clean(env)
    assert clean_rows(env) == dynamodb_rows(env)


def test_a_trimmed_checkpoint_gets_a_fresh_export(env, monkeypatch):
    from lifecycle.ingest import review_stream, reviews

    real = review_stream.shard_iterator
    calls = []

    def trimmed_once(streams, arn, shard_id, after):
        calls.append(after)
        if len(calls) == 1 and after is not None:
            raise review_stream.StreamGapError([shard_id])
        return real(streams, arn, shard_id, after)

    monkeypatch.setattr(review_stream, "shard_iterator", trimmed_once)
    before = export_time(env, reviews.latest_export(env))
    set_rating(env, 8, "after-re-enable", 1)
    out = reviews.run(env, END)
    assert out["mode"] == "export+stream" and out["export_id"] == reviews.latest_export(env)
    assert export_time(env, out["export_id"]) > before
    assert calls[1] is None  # restarted at TRIM_HORIZON
    clean(env)
    assert clean_rows(env) == dynamodb_rows(env)


# ---- the ordering rule, on hand-written raw objects -----------------------------------------------

T = datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)  # exportTime (not on a whole second)


def _image(pid, rid, rating, body="b"):
    return {"product_id": {"N": str(pid)}, "review_id": {"S": rid}, "customer_id": {"N": "1"},
            "rating": {"N": str(rating)}, "body": {"S": body}, "created_at": {"S": "2026-02-01T00:00:00Z"}}


def _record(event, pid, rid, at: datetime, seq: int, rating=None, old_rating=None):
    from lifecycle.ingest.review_stream import iso_utc

    dyn = {"ApproximateCreationDateTime": iso_utc(at), "SequenceNumber": str(seq),
           "Keys": {"product_id": {"N": str(pid)}, "review_id": {"S": rid}},
           "StreamViewType": "NEW_AND_OLD_IMAGES", "SizeBytes": 100}
    if rating is not None:
        dyn["NewImage"] = _image(pid, rid, rating)
    if old_rating is not None:
        dyn["OldImage"] = _image(pid, rid, old_rating)
    return json.dumps({"eventName": event, "eventID": f"{seq}", "eventSource": "aws:dynamodb",
                       "dynamodb": dyn})


def _write_raw(settings, with_export_time: bool) -> None:
    s3, raw = aws(settings, "s3"), settings.names.bucket("raw")
    export = [json.dumps({"Item": _image(1, "a", 4)}), json.dumps({"Item": _image(1, "c", 2)})]
    s3.put_object(Bucket=raw, Key="reviews/AWSDynamoDB/20260301T120000Z/data/part-00000.json",
                  Body=("\n".join(export) + "\n").encode())
    manifest = {"itemCount": 2, **({"exportTime": T.isoformat()} if with_export_time else {})}
    s3.put_object(Bucket=raw, Key="reviews/AWSDynamoDB/20260301T120000Z/manifest-summary.json",
                  Body=json.dumps(manifest).encode())
    s = 99_000_000_000_000_000_000  # 20 digits, then 21: a string sort would misorder them
    before = [
        _record("INSERT", 1, "a", T - timedelta(seconds=10), s + 1, rating=3),
        _record("MODIFY", 1, "a", T - timedelta(seconds=5), s + 2, rating=4, old_rating=3),
        _record("INSERT", 1, "ghost", T - timedelta(seconds=9), s + 3, rating=5),
        _record("REMOVE", 1, "ghost", T - timedelta(seconds=8), s + 4, old_rating=5),
        _record("INSERT", 1, "c", T - timedelta(seconds=7), s + 5, rating=2),
        # within the export's second: replayed (the stream's time is rounded down on AWS)
        _record("MODIFY", 1, "c", T.replace(microsecond=0), s + 6, rating=2, old_rating=2),
        # created just after the snapshot, in the same second: not in the export, must apply
        _record("INSERT", 1, "d", T.replace(microsecond=0), s + 7, rating=3),
    ]
    after = [
        _record("INSERT", 1, "b", T + timedelta(seconds=1), 99_999_999_999_999_999_999, rating=1),
        _record("MODIFY", 1, "b", T + timedelta(seconds=1), 100_000_000_000_000_000_000, rating=5,
                old_rating=1),
        _record("REMOVE", 1, "c", T + timedelta(seconds=2), 100_000_000_000_000_000_001, old_rating=2),
        _record("MODIFY", 1, "a", T + timedelta(seconds=3), 100_000_000_000_000_000_002, rating=1,
                old_rating=4),
        '{"eventName": "MODIFY", "dynamodb": {"Keys": ',                     # malformed
        _record("MODIFY", 2, "no-image", T + timedelta(seconds=4), 100_000_000_000_000_000_003),
        json.dumps({"eventName": "MODIFY", "dynamodb": {"Keys": "not a map"}}),
    ]
    s3.put_object(Bucket=raw, Key=f"reviews/stream/2026/03/01/11/product_reviews-shardId-0001-{s + 1}.json",
                  Body=("\n".join(before) + "\n").encode())
    s3.put_object(Bucket=raw, Key="reviews/stream/2026/03/01/12/product_reviews-shardId-0002-"
                                  "99999999999999999999.json", Body=("\n".join(after) + "\n").encode())


@pytest.mark.parametrize("with_export_time", [True, False], ids=["exportTime", "no-exportTime"])
def test_records_older_than_the_export_are_harmless(env, with_export_time):
    clear_reviews_raw(env)
    try:
        _write_raw(env, with_export_time)
        result = clean(env)
        rows = [(r[0], r[1], r[3]) for r in clean_rows(env)]
        # a: export 4, then 1 after the export; b: created after, modified in the same second
        # (sequence numbers as big integers); c: deleted after; ghost: never comes back
        assert rows == [(1, "a", 1), (1, "b", 5), (1, "d", 3)]
        assert result["rows_in"] == {"reviews": 2, "review_stream": 14}
        assert result["rejected"] == 3
    finally:
        clear_reviews_raw(env)


def test_the_export_time_protects_the_export_after_a_gap(env):
    """Raw keeps stream records from before a gap (e.g. a trimmed stream): the fresh export
    is the truth for them; only records from its exportTime on may change it."""
    clear_reviews_raw(env)
    try:
        _write_raw(env, with_export_time=True)
        # 'e' was created long before the export; its REMOVE was lost in the gap
        aws(env, "s3").put_object(
            Bucket=env.names.bucket("raw"), Key="reviews/stream/2026/02/27/08/product_reviews-shardId-0000-5.json",
            Body=(_record("INSERT", 1, "e", T - timedelta(days=2), 5, rating=4) + "\n").encode())
        clean(env)
        assert [(r[0], r[1]) for r in clean_rows(env)] == [(1, "a"), (1, "b"), (1, "d")]
    finally:
        clear_reviews_raw(env)
