"""Reconciliation: does what came out equal what went in, value for value?

Input: ``Settings`` with the lifecycle run at least once.
Output: a report ``{"ok": bool, "checks": [{"name", "expected", "actual", "ok"}]}``:
- row for row and value for value (``lifecycle.dataops.values``): every clean table's contract
  columns source (``sales``, DynamoDB, the Kinesis stream) = clean zone = ``warehouse.landing``,
  and ``serving`` against the same figures computed from the sources: a lost, stale or
  reverted update fails and names its table and key;
- orders, items and revenue of non-cancelled orders in ``sales`` = ``serving.daily_sales``
  (totals); every product has a row in ``serving.product_performance``;
- good events per type (the simulator's ledger) = clean zone = ``landing.events`` =
  ``serving.funnel_daily``; when others wrote to the stream too (records on it the simulator did
  not send), each layer holds at least the simulator's and at most that many more: the truth
  is the stream itself (every clean event is one of its records, value for value; every record
  is clean, quarantined or in the error prefix), the ledger a lower bound;
- every record in the Kinesis stream (read with a bare ``get_records`` loop) is a clean
  event, a quarantined record or a record in the Firehose error prefix: nothing lost,
  nothing doubled; quarantine by reason = the bad records sent, by kind;
- the Glue Catalog lists every clean table as an Iceberg table naming its metadata file;
- reviews currently in DynamoDB = the reviews counted in ``serving.product_performance``.

``reconcile_layers`` (the chaos suite) is the same without the serving layer unless asked.
"""

from __future__ import annotations

from decimal import Decimal

from lifecycle.clients import aws, pg
from lifecycle.settings import Settings

EVENT_COLUMNS = {"page_view": "page_views", "add_to_cart": "add_to_carts", "checkout": "checkouts",
                 "purchase": "purchases"}


def _check(name: str, expected, actual) -> dict:
    return {"name": name, "expected": expected, "actual": actual, "ok": expected == actual}


def _warehouse(settings: Settings, sql: str):
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def reconcile(settings: Settings) -> dict:
    """Every layer against the sources, ``serving`` included (the module docstring)."""
    return reconcile_layers(settings, serving=True)


def print_report(report: dict, echo=print) -> None:
    width = max(len(c["name"]) for c in report["checks"])
    for c in report["checks"]:
        mark = "ok  " if c["ok"] else "FAIL"
        echo(f"  [{mark}] {c['name'].ljust(width)}  expected {c['expected']}  got {c['actual']}")
    echo(f"  reconciliation: {'PASSED' if report['ok'] else 'FAILED'} "
         f"({sum(c['ok'] for c in report['checks'])}/{len(report['checks'])} checks)")


def _from_ledger(name: str, sent: int, actual: int, others: int) -> dict:
    """The simulator's count against a layer's: equal when only the simulator wrote to the
    stream; with ``others`` records put by anyone else (the contract lets anyone write), the
    layer may hold up to that many more (the stream count check bounds their sum)."""
    if not others:
        return _check(name, sent, actual)
    return {"name": f"{name} (+ up to {others} records by others)", "expected": f"{sent}..{sent + others}",
            "actual": actual, "ok": sent <= actual <= sent + others}


def _serving_totals(settings: Settings, truth: dict, book: dict, others: int) -> list[dict]:
    """The sources' totals against ``serving`` (the per-day and per-product values are in
    ``values.serving_value_checks``)."""
    checks = []
    (orders, items, revenue), = _warehouse(
        settings, "SELECT coalesce(sum(orders),0), coalesce(sum(items),0), coalesce(sum(revenue),0) "
                  "FROM serving.daily_sales")
    checks.append(_check("orders (not cancelled): sales = serving.daily_sales", truth["orders_not_cancelled"], int(orders)))
    checks.append(_check("items (not cancelled): sales = serving.daily_sales", truth["items_not_cancelled"], int(items)))
    checks.append(_check("revenue: sales = serving.daily_sales", truth["revenue_not_cancelled"],
                         Decimal(revenue).quantize(Decimal("0.01"))))
    (pp,), = _warehouse(settings, "SELECT count(*) FROM serving.product_performance")
    checks.append(_check("products: sales = serving.product_performance", truth["products"], int(pp)))
    (rev_pp,), = _warehouse(settings, "SELECT coalesce(sum(revenue),0) FROM serving.product_performance")
    checks.append(_check("revenue: sales = Σ serving.product_performance", truth["revenue_not_cancelled"],
                         Decimal(rev_pp).quantize(Decimal("0.01"))))
    ddb_reviews = 0
    for page in aws(settings, "dynamodb").get_paginator("scan").paginate(
            TableName=settings.names.reviews_table, Select="COUNT", ConsistentRead=True):
        ddb_reviews += page["Count"]
    (served_reviews,), = _warehouse(settings, "SELECT coalesce(sum(review_count), 0) FROM serving.product_performance")
    checks.append(_check("reviews: DynamoDB = Σ serving.product_performance.review_count", ddb_reviews,
                         int(served_reviews)))
    funnel_row = _warehouse(settings, "SELECT " + ", ".join(f"coalesce(sum({c}),0)" for c in EVENT_COLUMNS.values())
                            + " FROM serving.funnel_daily")[0]
    funnel = dict(zip(EVENT_COLUMNS, (int(v) for v in funnel_row), strict=True))
    for etype in EVENT_COLUMNS:
        checks.append(_from_ledger(f"{etype}: simulator = serving.funnel_daily",
                                   int(book["events_good"].get(etype, 0)), funnel[etype], others))
    return checks


def _glue_checks(settings: Settings) -> list[dict]:
    from lifecycle.lake.catalog import CLEAN_TABLES
    from lifecycle.lake.iceberg import is_iceberg

    glue, checks = aws(settings, "glue"), []
    for table in CLEAN_TABLES:
        try:
            entry = glue.get_table(DatabaseName=settings.names.clean_database, Name=table)["Table"]
            registered = is_iceberg(entry) and bool(entry["Parameters"].get("metadata_location"))
        except glue.exceptions.EntityNotFoundException:
            registered = False
        checks.append(_check(f"Glue Catalog has {settings.names.clean_database}.{table} (Iceberg, with a "
                             "current snapshot's metadata)", True, registered))
    return checks


def reconcile_layers(settings: Settings, serving: bool = False, bad_expected: dict | None = None) -> dict:
    """Source against the lake's clean zone and the warehouse ``landing`` schema (and, with
    ``serving``, the serving tables), table by table and event type by type:

    - every clean table, value for value (``values.value_checks``): source = clean = landing
      for ``sales``, DynamoDB = clean = landing for reviews, stream = clean = landing for events;
    - events, per type: the simulator's ledger = clean = landing (counts); Kinesis records =
      clean + quarantined + error prefix;
    - quarantine: rejected records per reason = the bad records the simulator sent, per kind
      (``bad_expected`` overrides the ledger, for cases that add records of their own);
    - the Glue Catalog's entries; with ``serving``: ``values.serving_value_checks`` and the totals.
    """
    from collections import Counter

    from lifecycle.clients import connect_duckdb
    from lifecycle.dataops.values import serving_value_checks, stream_payloads, value_checks
    from lifecycle.lake.counts import has_objects, lake_counts
    from lifecycle.sources.sales_db import source_truth
    from lifecycle.sources.simulator import ledger

    checks: list[dict] = []
    book = ledger(settings)
    lake = lake_counts(settings)
    with connect_duckdb(settings) as con:
        # every record in the stream, read once from TRIM_HORIZON (a bare get_records loop, no
        # checkpoints): the events' truth and the count below
        stream = list(stream_payloads(settings))
        checks += value_checks(settings, con, stream)
        if serving:
            checks += serving_value_checks(settings, con)
        landing = dict(_warehouse(settings, "SELECT event_type, count(*) FROM landing.events GROUP BY 1"))
        in_stream = len(stream)
        # records on the stream the simulator did not put there (anyone may write to it)
        others = max(0, in_stream - int(book["events_sent"]))
        for etype in EVENT_COLUMNS:
            expected = int(book["events_good"].get(etype, 0))
            checks.append(_from_ledger(f"{etype}: simulator = clean zone (events)", expected,
                                       lake["events_by_type"].get(etype, 0), others))
            checks.append(_from_ledger(f"{etype}: simulator = landing.events", expected,
                                       int(landing.get(etype, 0)), others))
        checks.append(_check("Kinesis records = clean events + quarantined + error prefix", in_stream,
                             lake["events_total"] + lake["quarantined_events"] + lake["processing_failed_events"]))
        reasons: Counter = Counter()
        quarantine = settings.names.bucket("quarantine")
        if has_objects(settings, quarantine, "events/data_0.parquet"):
            reasons.update(dict(con.execute(
                f"SELECT reason, count(*) FROM read_parquet('s3://{quarantine}/events/data_0.parquet') "
                "GROUP BY 1").fetchall()))
            (no_reason,) = con.execute(
                f"SELECT count(*) FROM read_parquet('s3://{quarantine}/events/data_0.parquet') "
                "WHERE reason IS NULL OR reason = ''").fetchone()
            checks.append(_check("quarantine: every record has a reason", 0, int(no_reason)))
        bad = dict(bad_expected if bad_expected is not None else book["events_bad"])
        failed = lake["processing_failed_events"]
        got = ({k: v for k, v in sorted(reasons.items()) if v} if not failed
               else {**dict(reasons), "processing_failed": failed})
        want = {k: v for k, v in sorted(bad.items()) if v}
        if others and bad_expected is None:
            # others' records may be bad too: each kind at least the simulator's, their excess
            # at most the others' records
            excess = sum(got.values()) - sum(want.values())
            checks.append({"name": f"quarantine by reason ⊇ bad records sent by kind (+ up to {others} records "
                                   "by others)", "expected": want, "actual": got,
                           "ok": all(got.get(k, 0) >= v for k, v in want.items()) and 0 <= excess <= others})
        else:
            checks.append(_check("quarantine by reason = bad records sent by kind", want, got))
    checks += _glue_checks(settings)
    truth = None
    if serving:
        truth = source_truth(settings)
        checks += _serving_totals(settings, truth, book, others)
    return {"ok": all(c["ok"] for c in checks), "checks": checks, "source": truth, "ledger": book,
            "lake": lake, "stream_records": in_stream}
