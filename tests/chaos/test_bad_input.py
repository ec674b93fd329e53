"""Case 1: bad input. Every kind of bad record the simulator makes, at 10 % of the records,
through the real pipeline; then payloads fuzzed by hypothesis into the event parser.

Expected: every bad record is in quarantine with the reason of its kind, every good one is
delivered (clean zone and warehouse, per event type), the parser never raises.
"""

from __future__ import annotations

import json
import os
import random
import unicodedata

import pytest
from hypothesis import HealthCheck, given, seed
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from chaos.harness import assert_reconciled, fresh, reconcile, run_in_process
from lifecycle.pipeline.stages import TO_LANDING


def test_bad_records_quarantined_good_delivered(settings, chaos_case):
    from lifecycle.sources.simulator import BAD_KINDS

    chaos_case.fault = "10 % bad event records, every kind"
    summary = fresh(settings, scale=40, bad_rate=0.1)
    assert set(summary["events_bad"]) == set(BAD_KINDS), summary["events_bad"]
    run_in_process(settings, *TO_LANDING)
    report = reconcile(settings, chaos_case)
    assert_reconciled(report)
    chaos_case.outcome = (f"{sum(summary['events_bad'].values())} bad records, all quarantined with their "
                          f"kind as reason; {sum(summary['events_good'].values())} good delivered")


# ---- the parser under fuzzing ------------------------------------------------------------------

# A fresh seed every run (new examples each time), printed in the case's outcome and in a
# failure's message; LIFECYCLE_FUZZ_SEED=<seed> replays a run's examples exactly.
FUZZ_SEED = int(os.environ.get("LIFECYCLE_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
REPLAY = f"fuzz seed {FUZZ_SEED} (LIFECYCLE_FUZZ_SEED={FUZZ_SEED} replays it)"

EVENT_TYPES = ["page_view", "add_to_cart", "checkout", "purchase"]
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                        st.text(max_size=30))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=6)
field_value = st.one_of(json_value, st.sampled_from(["2026-11-20T10:00:00Z", "2099-01-01T00:00:00Z",
                                                     "not a date", "", "1", "-5", "1e3", "99999999999999999999"]))
event_like = st.fixed_dictionaries({}, optional={
    "event_id": st.one_of(st.uuids().map(str), field_value),
    "event_type": st.one_of(st.sampled_from(EVENT_TYPES + ["refund", ""]), field_value),
    "event_ts": field_value,
    "customer_id": field_value, "product_id": st.one_of(st.integers(1, 40), field_value),
    "order_id": field_value, "quantity": st.one_of(st.integers(-3, 3), field_value),
    "page": field_value,
}).map(json.dumps)
valid_event = st.builds(
    lambda eid, etype, sec, pid, q: json.dumps({
        "event_id": eid, "event_type": etype, "event_ts": f"2026-11-20T10:{sec // 60:02d}:{sec % 60:02d}Z",
        "customer_id": 1, "product_id": pid, "page": "/p", "quantity": q}),
    st.uuids().map(str), st.sampled_from(EVENT_TYPES), st.integers(0, 3599), st.integers(1, 5),
    st.integers(1, 3))
garbage = st.one_of(st.text(max_size=60), st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
                    st.just("{"), st.just("[]"), st.just('{"a": 1, "a": 2}'), st.just("null"))
payload = st.one_of(valid_event, event_like, garbage).map(lambda s: s.replace("\n", " ").replace("\r", " "))


@pytest.fixture(scope="module")
def parser(settings):
    """Runs the clean_events job's parse + classify (the real functions, on the real engine) on
    a list of raw lines, as its Glue-style job does after reading them from raw/."""
    import pyarrow as pa

    from lifecycle.jobs.engine.duckdb_context import JSON_OK
    from lifecycle.jobs.engine.runner import shared_engine

    engine = shared_engine(settings)
    from lifecycle.jobs.clean_events import classify, parse

    products = pa.table({"product_id": pa.array(range(1, 6), pa.int64())})

    con = engine.con
    con.execute("CREATE OR REPLACE TABLE fuzz_lines (raw_key VARCHAR, line_no BIGINT, payload VARCHAR, "
                "json_ok BOOLEAN)")
    con.register("_fuzz_products", products)
    con.execute("CREATE OR REPLACE TABLE fuzz_products AS SELECT * FROM _fuzz_products")
    # the job's DataFrame plan compiled once to its SQL (as SQLFrame runs it); each example
    # only refills the input table, so hundreds of payloads cost milliseconds
    plan = classify(parse(engine.spark.table("fuzz_lines")), engine.spark.table("fuzz_products"))
    sql = (f"SELECT line_no, reason, event_id, event_type, event_ts FROM "
           f"({plan.sql(dialect='duckdb', optimize=False)})")

    def run(lines: list[str]) -> list[dict]:
        con.execute("DELETE FROM fuzz_lines")
        con.register("_fuzz", pa.table({"line_no": pa.array(range(1, len(lines) + 1), pa.int64()),
                                        "payload": pa.array(lines, pa.string())}))
        con.execute("INSERT INTO fuzz_lines SELECT 'events/2026/11/20/10/fuzz', line_no, payload, "
                    f"{JSON_OK} FROM _fuzz WHERE trim(payload) <> ''")  # as read_lines
        rows = con.execute(sql).fetchall()
        return [dict(zip(("line_no", "reason", "event_id", "event_type", "event_ts"), r, strict=True))
                for r in rows]

    return run


def _blank(line: str) -> bool:
    """Blank as read_lines' ``trim(payload) <> ''`` sees it: DuckDB's trim strips the Unicode
    space separators (' ', NBSP, em space...), not tabs or newlines."""
    return all(unicodedata.category(c) == "Zs" for c in line)


REASONS = {"oversized_record", "malformed_json", "missing_field", "unknown_event_type", "future_timestamp",
           "unknown_product", "negative_quantity", "duplicate_event_id"}


def test_fuzzed_payloads_never_crash_the_parser(parser, chaos_case):
    chaos_case.fault = "hypothesis: random event payloads into the event parser"
    seen: dict[str, int] = {"examples": 0, "lines": 0, "valid": 0}

    @seed(FUZZ_SEED)
    @hsettings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(payload, min_size=1, max_size=25))
    def check(lines):
        rows = parser(lines)
        # one classified row per non-blank line, nothing dropped, nothing doubled
        assert sorted(r["line_no"] for r in rows) == [i for i, s in enumerate(lines, 1) if not _blank(s)]
        for r in rows:
            assert r["reason"] is None or r["reason"] in REASONS, r
            if r["reason"] is None:  # a delivered event has its contract fields
                assert r["event_id"] and r["event_type"] in EVENT_TYPES and r["event_ts"] is not None, r
        valid_ids = [r["event_id"] for r in rows if r["reason"] is None]
        assert len(valid_ids) == len(set(valid_ids))
        # a well-formed event is delivered unless its id repeats an earlier line's
        for i, s in enumerate(lines, 1):
            try:
                ev = json.loads(s)
            except ValueError:
                continue
            row = next((r for r in rows if r["line_no"] == i), None)
            if isinstance(ev, dict) and set(ev) == {"event_id", "event_type", "event_ts", "customer_id",
                                                    "product_id", "page", "quantity"} \
                    and ev["event_type"] in EVENT_TYPES and str(ev["event_ts"]).startswith("2026-11-20T10:") \
                    and isinstance(ev["product_id"], int) and 1 <= ev["product_id"] <= 5 \
                    and isinstance(ev["quantity"], int) and ev["quantity"] >= 0:
                assert row["reason"] in (None, "duplicate_event_id"), (s, row)
        seen["examples"] += 1
        seen["lines"] += len(rows)
        seen["valid"] += len(valid_ids)

    chaos_case.fault += f", {REPLAY}"
    try:
        check()
    except Exception as exc:
        raise AssertionError(f"{REPLAY}: {exc}") from exc
    chaos_case.outcome = (f"{seen['examples']} fuzzed batches, {seen['lines']} payloads, "
                          f"{seen['valid']} accepted; parser never raised")


@seed(FUZZ_SEED)
@hsettings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.binary(max_size=80), min_size=1, max_size=20))
def test_fuzzed_records_frame_or_go_to_the_error_prefix(records):
    """The stream consumer's framing: every record is a line or an error record, never lost
    (hypothesis prints the seed of a failing run: LIFECYCLE_FUZZ_SEED replays it)."""
    from datetime import UTC, datetime

    from lifecycle.ingest.user_activity import frame_records

    recs = [{"Data": d, "SequenceNumber": str(i), "ApproximateArrivalTimestamp": datetime(2026, 11, 20, tzinfo=UTC)}
            for i, d in enumerate(records)]
    lines, errors = frame_records(recs)
    assert len(lines) + len(errors) == len(records)
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)


def test_events_before_their_products_are_delivered_late_not_lost(settings, chaos_case):
    """Events ingested and cleaned before the CDC of the products they name (lake_clean is
    triggered by any raw asset): quarantined as unknown_product at first, delivered once the
    products arrive."""
    chaos_case.fault = "events reach the lake before the products they name (late dimension)"
    fresh(settings, scale=15)
    first = run_in_process(settings, "ingest_events", "ingest_reviews", "lake")
    assert first["lake"]["rejected"] > 0  # every product is unknown yet
    second = run_in_process(settings, "ingest_sales", "lake", "warehouse")
    assert "unknown_product" in second["lake"]["jobs"]["clean_events"].get("full_rebuild_reason", "")
    report = reconcile(settings, chaos_case)
    assert_reconciled(report)
    chaos_case.outcome = (f"{first['lake']['rejected']} events quarantined as unknown_product first; "
                          "all delivered after the products arrived (full rebuild of clean_events)")
