"""Ingestion against real services: CDC from Postgres logical decoding, Kinesis → raw, reviews.

Uses the session's embedded environment (pgserver + moto), reset at the start of the module.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pyarrow.parquet as pq
import pytest
from conftest import reset_environment

from lifecycle.clients import aws, pg


@pytest.fixture(scope="module")
def env(settings):
    from lifecycle.sources.sales_db import ensure_schema

    reset_environment(settings)
    ensure_schema(settings)
    return settings


def _read(settings, key):
    body = aws(settings, "s3").get_object(Bucket=settings.names.bucket("raw"), Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body)).to_pylist()


def _keys(settings, prefix):
    resp = aws(settings, "s3").list_objects_v2(Bucket=settings.names.bucket("raw"), Prefix=prefix)
    return sorted(o["Key"] for o in resp.get("Contents", []))


def test_full_load_then_cdc_carries_inserts_updates_pk_updates_and_deletes(env, monkeypatch):
    from lifecycle.ingest import sales_cdc

    with pg(env, env.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO customers VALUES (1,'a@x.org','Ann','+100','US',now(),now()),"
                    "(2,'b@x.org','Bob',NULL,'DE',now(),now())")
    first = sales_cdc.run(env)
    assert first["full_load"] == {"customers": 2, "products": 0, "orders": 0, "order_items": 0}
    load = _read(env, "sales/public/customers/LOAD00000001.parquet")
    assert [(r["Op"], r["customer_id"], r["email"]) for r in load] == [("I", 1, "a@x.org"), ("I", 2, "b@x.org")]

    with pg(env, env.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO customers VALUES (3,'c@x.org','Cy','+300','FR',now(),now())")
        cur.execute("UPDATE customers SET email='a2@x.org' WHERE customer_id=1")
        cur.execute("UPDATE customers SET customer_id=20 WHERE customer_id=2")  # primary-key update
        cur.execute("DELETE FROM customers WHERE customer_id=3")
    second = sales_cdc.run(env)
    assert second["full_load"] == {}
    assert second["changes"] == {"customers": {"I": 2, "U": 1, "D": 2}}
    (cdc_key,) = [k for k in _keys(env, "sales/public/customers/") if "LOAD" not in k]
    rows = [(r["Op"], r["customer_id"], r["email"]) for r in _read(env, cdc_key)]
    assert rows == [("I", 3, "c@x.org"), ("U", 1, "a2@x.org"), ("D", 2, None), ("I", 20, "b@x.org"),
                    ("D", 3, None)]
    assert second["lag_bytes"] == 0


def test_a_crash_before_the_slot_advances_rewrites_the_same_objects(env, monkeypatch):
    from lifecycle import faults
    from lifecycle.ingest import sales_cdc

    with pg(env, env.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO customers VALUES (4,'d@x.org','Di','+400','ES',now(),now())")
    before = set(_keys(env, "sales/public/customers/"))

    def crash_after_the_write(name):
        # the fault point right after an object is written (in-process: an exception, not SIGKILL)
        if name == "sales_cdc.write":
            raise SystemExit("worker killed after the write, before the advance")

    monkeypatch.setattr(faults, "point", crash_after_the_write)
    with pytest.raises(SystemExit):
        sales_cdc.run(env)
    after_crash = set(_keys(env, "sales/public/customers/"))
    assert len(after_crash - before) == 1
    monkeypatch.undo()

    retry = sales_cdc.run(env)
    assert retry["changes"] == {"customers": {"I": 1}}
    assert set(_keys(env, "sales/public/customers/")) == after_crash  # same key, overwritten
    assert sales_cdc.run(env)["changes"] == {}


def test_kinesis_consumer_checkpoints_and_never_rereads(env, monkeypatch):
    from lifecycle.ingest import user_activity
    from lifecycle.sources.simulator import put_events

    payloads = [f'{{"event_id": "e{i}", "n": {i}}}'.encode() for i in range(120)]
    put_events(env, payloads, [f"k{i % 7}" for i in range(120)])
    first = user_activity.run(env, max_records=50)
    assert first["records"] == 120
    lines = []
    for key in _keys(env, "events/"):
        body = aws(env, "s3").get_object(Bucket=env.names.bucket("raw"), Key=key)["Body"].read()
        lines.extend(body.decode().splitlines())
    assert sorted(lines) == sorted(p.decode() for p in payloads)
    assert all(k.split("/")[1:4] == datetime.now(UTC).strftime("%Y/%m/%d").split("/") for k in _keys(env, "events/"))
    assert user_activity.run(env)["records"] == 0

    # crash after the object is written but before the checkpoint: same key on retry
    put_events(env, [b'{"event_id": "late"}'], ["k1"])
    monkeypatch.setattr(user_activity, "_set_checkpoint",
                        lambda *a, **k: (_ for _ in ()).throw(SystemExit("killed")))
    keys_before = set(_keys(env, "events/"))
    with pytest.raises(SystemExit):
        user_activity.run(env)
    keys_crash = set(_keys(env, "events/"))
    monkeypatch.undo()
    assert user_activity.run(env)["records"] == 1
    assert set(_keys(env, "events/")) == keys_crash and len(keys_crash - keys_before) == 1


def test_reviews_export_in_dynamodb_export_layout(env):
    import json

    from lifecycle.ingest import reviews

    aws(env, "dynamodb").put_item(TableName=env.names.reviews_table, Item={
        "product_id": {"N": "1"}, "review_id": {"S": "r1"}, "rating": {"N": "5"}})
    out = reviews.run(env, datetime(2026, 5, 2, tzinfo=UTC))
    assert out["export_id"] == "20260502T000000Z" and out["items"] == 1
    prefix = "reviews/AWSDynamoDB/20260502T000000Z/"
    assert _keys(env, prefix) == [prefix + "data/part-00000.json", prefix + "manifest-summary.json"]
    body = aws(env, "s3").get_object(Bucket=env.names.bucket("raw"), Key=prefix + "data/part-00000.json")["Body"].read()
    assert json.loads(body.decode().splitlines()[0])["Item"]["rating"] == {"N": "5"}


def test_simulator_is_deterministic_consistent_and_idempotent(env):
    from lifecycle.sources.simulator import simulate_day

    reset_environment(env)
    s1 = simulate_day(env, date(2026, 6, 1), scale=30, bad_rate=0.1)
    again = simulate_day(env, date(2026, 6, 1), scale=30, bad_rate=0.1)
    assert again["already_simulated"] and again["orders_inserted"] == s1["orders_inserted"]
    with pg(env, env.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders")
        (orders,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM orders WHERE order_ts::date <> '2026-06-01'")
        assert cur.fetchone()[0] == 0
    # every order that exists has exactly one purchase event; abandoned ones have none
    assert s1["events_good"]["purchase"] == orders == s1["orders_inserted"] - s1["orders_deleted"]
    assert s1["events_sent"] == sum(s1["events_good"].values()) + sum(s1["events_bad"].values())
    assert sum(s1["events_bad"].values()) > 0


def test_an_earlier_day_than_one_simulated_is_refused_in_one_line(env):
    import subprocess
    import sys

    from conftest import lifecycle_env

    from lifecycle.sources.simulator import SimulationRefused, simulate_day

    reset_environment(env)
    simulate_day(env, date(2026, 6, 2), scale=5)
    with pg(env, env.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders")
        before = cur.fetchone()
    with pytest.raises(SimulationRefused, match="cannot simulate 2026-06-01: 2026-06-02 is already simulated"):
        simulate_day(env, date(2026, 6, 1), scale=5)
    proc = subprocess.run([sys.executable, "-m", "lifecycle.cli", "simulate", "--date", "2026-06-01", "--scale", "5"],
                          env=lifecycle_env(env), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "cannot simulate 2026-06-01: 2026-06-02 is already simulated here and days are simulated in order "
        "(simulate a later day, or `lifecycle reset` to start over)"]
    with pg(env, env.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders")
        assert cur.fetchone() == before


def _lake_lines(settings) -> list[str]:
    lines = []
    for key in _keys(settings, "events/"):
        body = aws(settings, "s3").get_object(Bucket=settings.names.bucket("raw"), Key=key)["Body"].read()
        lines.extend(body.decode().splitlines())
    return lines


def test_parents_are_drained_before_children_after_split_and_merge():
    from lifecycle.ingest.shards import parents_first

    shards = [  # listed children-first on purpose
        {"ShardId": "shardId-000000000004", "ParentShardId": "shardId-000000000002",
         "AdjacentParentShardId": "shardId-000000000003"},           # a merge of 2 and 3
        {"ShardId": "shardId-000000000003", "ParentShardId": "shardId-000000000000"},
        {"ShardId": "shardId-000000000002", "ParentShardId": "shardId-000000000000"},  # a split of 0
        {"ShardId": "shardId-000000000001"},
        {"ShardId": "shardId-000000000000"},
    ]
    order = [s["ShardId"][-1] for s in parents_first(shards)]
    assert order.index("0") < order.index("2") < order.index("4")
    assert order.index("3") < order.index("4") and sorted(order) == ["0", "1", "2", "3", "4"]


def test_exactly_once_across_a_split_and_a_crash_between_shards(env, monkeypatch):
    from lifecycle.ingest import user_activity
    from lifecycle.sources.simulator import put_events

    reset_environment(env)
    kinesis = aws(env, "kinesis")
    payloads = [f'{{"event_id": "s{i}"}}'.encode() for i in range(100)]
    put_events(env, payloads[:60], [f"k{i}" for i in range(60)])
    assert user_activity.run(env, max_records=25)["records"] == 60
    # reshard mid-stream (moto keeps writing to the parent after a split, so this checks
    # that the topology change itself loses and doubles nothing)
    shard = kinesis.list_shards(StreamName=env.names.stream)["Shards"][0]
    kinesis.split_shard(StreamName=env.names.stream, ShardToSplit=shard["ShardId"],
                        NewStartingHashKey=str(int(shard["HashKeyRange"]["EndingHashKey"]) // 2))
    put_events(env, payloads[60:], [f"k{i}" for i in range(60, 100)])

    # the worker dies after the first shard's batch, before the second shard's write
    real_put = user_activity.aws

    def dying_aws(settings, service):
        client = real_put(settings, service)
        if service != "s3":
            return client
        calls = {"n": 0}
        original = client.put_object

        def put_object(**kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise SystemExit("worker killed between two shards")
            return original(**kwargs)

        client.put_object = put_object
        return client

    monkeypatch.setattr(user_activity, "aws", dying_aws)
    with pytest.raises(SystemExit):
        user_activity.run(env)
    monkeypatch.undo()
    user_activity.run(env)
    assert user_activity.run(env)["records"] == 0
    lines = _lake_lines(env)
    assert sorted(lines) == sorted(p.decode() for p in payloads)  # each exactly once


def test_gzip_delivery_and_the_error_prefix_for_unframeable_records(env):
    import base64
    import gzip
    import json
    from dataclasses import replace
    from datetime import timedelta

    from lifecycle.ingest import user_activity
    from lifecycle.jobs.engine.runner import run_job
    from lifecycle.sources.simulator import put_events

    reset_environment(env)
    gz = replace(env, engines=replace(env.engines, firehose_compression="gzip"))
    now = datetime.now(UTC)
    good = [json.dumps({"event_id": f"g{i}", "event_type": "page_view",
                        "event_ts": (now - timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")}).encode()
            for i in range(3)]
    broken = [b'{"event_id": "n1",\n "event_type": "page_view"}', b"\xff\xfe not text"]
    put_events(gz, good + broken, ["k"] * 5)
    out = user_activity.run(gz)
    assert out["records"] == 5 and out["processing_failed"] == 2 and out["rows_out"] == 3
    (data_key,) = _keys(gz, "events/")
    assert data_key.endswith(".gz")
    body = aws(gz, "s3").get_object(Bucket=gz.names.bucket("raw"), Key=data_key)["Body"].read()
    assert gzip.decompress(body).decode().splitlines() == [g.decode() for g in good]
    (err_key,) = _keys(gz, "events-errors/processing-failed/")
    errors = [json.loads(x) for x in gzip.decompress(aws(gz, "s3").get_object(
        Bucket=gz.names.bucket("raw"), Key=err_key)["Body"].read()).splitlines()]
    assert sorted(e["errorCode"] for e in errors) == ["Record.NotSingleLine", "Record.NotUtf8"]
    assert sorted(base64.b64decode(e["rawData"]) for e in errors) == sorted(broken)
    # the clean job reads the GZIP objects like plain ones
    run_job(gz, "clean_sales", now - timedelta(days=1), now)
    result = run_job(gz, "clean_events", now - timedelta(days=1), now)
    assert result["rows_out"] == {"events": 3} and result["rejected"] == 0


def test_quarantine_counts_and_a_bad_batch_alerts_once(env):
    import json
    from dataclasses import replace
    from datetime import timedelta

    from lifecycle.dataops.alerts import read_alerts
    from lifecycle.dataops.quarantine import check
    from lifecycle.ingest import user_activity
    from lifecycle.jobs.engine.runner import run_lake_clean
    from lifecycle.sources.simulator import put_events

    reset_environment(env)
    now = datetime.now(UTC)
    ts = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    good = [json.dumps({"event_id": f"q{i}", "event_type": "page_view", "event_ts": ts}).encode() for i in range(6)]
    bad = [b'{"event_id": "x1", "event_type": "refund", "event_ts": "' + ts.encode() + b'"}', b"{not json"]
    put_events(env, good + bad, ["k"] * 8)  # one shard batch: 2 of 8 rejected = 25 %
    user_activity.run(env)
    run_lake_clean(env, now - timedelta(days=1), now)
    read_alerts(env)
    out = check(env)
    assert out["batches_checked"] == 1 and out["worst_rate"] == 0.25
    assert out["quarantined_by_reason"] == {"unknown_event_type": 1, "malformed_json": 1}
    alerts = [a for a in read_alerts(env) if a["kind"] == "quarantine_rate"]
    assert len(alerts) == 1 and "2/8" in alerts[0]["error"]
    # judged once: the next check (same batch, rebuilt quarantine) neither counts nor alerts again
    assert check(env)["batches_checked"] == 0 and read_alerts(env) == []
    # under the threshold: no alert
    more = [json.dumps({"event_id": f"r{i}", "event_type": "page_view", "event_ts": ts}).encode() for i in range(5)]
    put_events(env, more + [b"{not json either"], ["k"] * 6)  # 1 of 6 rejected
    user_activity.run(env)
    run_lake_clean(env, now - timedelta(days=1), now)
    assert check(replace(env, thresholds=replace(env.thresholds, quarantine_alert_rate=0.5)))["alerted_batches"] == 0
    assert [a for a in read_alerts(env) if a["kind"] == "quarantine_rate"] == []
