"""End to end on the embedded target: every DAG of the lifecycle, run by Airflow, then the data.

1. A fresh environment; one simulated day with 10 % bad event records.
2. `lifecycle run` (every DAG once, in order, with Airflow's dag.test) in a child process.
3. Reconciliation at values: every table source = clean zone = landing on every contract
   column (reviews from DynamoDB, events from the stream's records), serving recomputed from
   the sources; good events per type from the simulator's ledger = clean zone = landing =
   funnel; every Kinesis record is a clean event or a quarantined one; the Glue Catalog lists
   every clean table and partition. A reverted update, a lost order line, a wrong serving
   figure and a stale Iceberg commit each fail it, naming the table and key.
4. serve_publish published the recommendations (pgvector) and the dashboard's charts.
   CloudWatch holds the tasks' metrics with the run's values (per task and per dataset); a
   forced failure that retries twice puts exactly one alert, with every field, in the SQS
   queue, and a second report of the same failure is suppressed; OpenLineage events name
   the datasets each job read and wrote (Airflow tasks and dbt models); the observe DAG
   stored its results.
5. A second run on the same data changes nothing; a second day, plus rows written straight
   into the source by "someone else" (a new product, an order, a PK-preserving update and a
   delete) and events they put on the stream (two good, one bad), reconciles again after the
   next run.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from conftest import lifecycle_env, reset_environment

from lifecycle.clients import pg

REPO = Path(__file__).resolve().parents[2]


def _lifecycle(settings, *args, timeout=900):
    proc = subprocess.run([sys.executable, "-m", "lifecycle.cli", *args], env=lifecycle_env(settings),
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return proc


def _run_or_fail(settings, *args):
    proc = _lifecycle(settings, *args)
    assert proc.returncode == 0, f"lifecycle {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc


def _serving_snapshot(settings):
    out = {}
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        for table, key in (("daily_sales", "order_date"), ("funnel_daily", "event_date"),
                           ("product_performance", "product_id")):
            cur.execute(f"SELECT * FROM serving.{table} ORDER BY {key}")
            out[table] = cur.fetchall()
    return out


@pytest.fixture(scope="module")
def first_run(settings):
    from lifecycle.sources.simulator import simulate_day

    reset_environment(settings)
    summary = simulate_day(settings, date(2026, 11, 20), scale=60, bad_rate=0.1)
    _run_or_fail(settings, "run")
    return summary


def test_serving_reconciles_with_the_sources(settings, first_run):
    from lifecycle.dataops.reconcile import reconcile

    report = reconcile(settings)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert failed == []
    names = {c["name"] for c in report["checks"]}
    assert "revenue: sales = serving.daily_sales" in names
    assert "Kinesis records = clean events + quarantined + error prefix" in names
    assert report["stream_records"] == first_run["events_sent"]
    assert report["lake"]["quarantined_events"] == sum(first_run["events_bad"].values()) > 0


def _value_failures(settings) -> list[str]:
    from lifecycle.clients import connect_duckdb
    from lifecycle.dataops.values import serving_value_checks, value_checks

    with connect_duckdb(settings) as con:
        checks = value_checks(settings, con) + serving_value_checks(settings, con)
    return [f"{c['name']}: {c['actual']}" for c in checks if not c["ok"]]


def test_value_reconciliation_names_a_lost_or_reverted_update(settings, first_run):
    """A reverted update, a dropped row and a stale lake commit, each made on purpose in one
    layer (and undone after), fail the value reconciliation with the table, the key and the
    column; keys and counts alone would not see the first and the third."""
    import pyarrow as pa
    from pyiceberg.expressions import EqualTo

    from lifecycle.lake.catalog import lake_table
    from lifecycle.lake.iceberg import load_table
    from lifecycle.ops.recovery import rollback_table

    assert _value_failures(settings) == []
    with pg(settings, settings.pg.warehouse_db, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT order_id, status FROM landing.orders WHERE status <> 'placed' ORDER BY order_id LIMIT 1")
        order_id, status = cur.fetchone()
        cur.execute("SELECT order_id, line_no FROM landing.order_items ORDER BY order_id DESC, line_no LIMIT 1")
        line = cur.fetchone()
        cur.execute("SELECT order_date FROM serving.daily_sales ORDER BY order_date LIMIT 1")
        (day,) = cur.fetchone()
        cur.execute("CREATE TEMP TABLE dropped AS SELECT * FROM landing.order_items "
                    "WHERE (order_id, line_no) = (%s, %s)", line)
        try:
            cur.execute("UPDATE landing.orders SET status = 'placed' WHERE order_id = %s", (order_id,))
            cur.execute("DELETE FROM landing.order_items WHERE (order_id, line_no) = (%s, %s)", line)
            cur.execute("UPDATE serving.daily_sales SET revenue = revenue + 1 WHERE order_date = %s", (day,))
            failures = _value_failures(settings)
        finally:
            cur.execute("UPDATE landing.orders SET status = %s WHERE order_id = %s", (status, order_id))
            cur.execute("INSERT INTO landing.order_items SELECT * FROM dropped")
            cur.execute("UPDATE serving.daily_sales SET revenue = revenue - 1 WHERE order_date = %s", (day,))
    assert any(f.startswith("orders: clean = landing") and f"changed order_id={order_id} (status" in f
               for f in failures), failures
    assert any(f.startswith("order_items: clean = landing") and f"missing order_id={line[0]}, line_no={line[1]}" in f
               for f in failures), failures
    assert any(f.startswith("serving.daily_sales") and f"changed order_date={day} (revenue" in f
               for f in failures), failures
    assert len(failures) == 3, failures

    # a stale row committed to the lake: the source and landing both disagree with it
    table = load_table(settings.for_stage("transform"), lake_table("orders"))
    good = table.current_snapshot().snapshot_id
    rows = table.scan(row_filter=EqualTo("order_id", order_id)).to_arrow()
    stale = rows.set_column(rows.schema.get_field_index("status"), "status", pa.array(["placed"] * rows.num_rows))
    table.overwrite(stale, overwrite_filter=EqualTo("order_id", order_id))
    try:
        failures = _value_failures(settings)
    finally:
        rollback_table(settings, "orders", str(good))
    assert any(f.startswith("orders: source = clean") and f"changed order_id={order_id} (status '{status}'" in f
               for f in failures), failures
    assert _value_failures(settings) == []


def test_glue_catalog_lists_clean_tables_with_partitions(settings, first_run):
    from lifecycle.clients import aws

    glue = aws(settings, "glue")
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName=settings.names.clean_database)["TableList"]}
    assert {"orders", "order_items", "customers", "products", "events", "reviews"} <= tables.keys()
    from lifecycle.lake import iceberg
    from lifecycle.lake.catalog import CLEAN_TABLES

    assert all(iceberg.is_iceberg(t) for t in tables.values())
    assert iceberg.partitions(settings, CLEAN_TABLES["orders"]) == ["2026-11-20"]
    assert tables["orders"]["StorageDescriptor"]["Location"].startswith(f"s3://{settings.names.bucket('clean')}/")


def test_task_metrics_are_in_cloudwatch(settings, first_run):
    from lifecycle.dataops.metrics import latest, list_published

    published = list_published(settings)
    dags = {m.get("DAG") for m in published}
    assert {"ingest_sales", "ingest_user_activity", "lake_clean", "warehouse_load", "serve_publish",
            "observe"} <= dags
    assert latest(settings, "RowsOut", "ingest_user_activity", "consume_stream") == first_run["events_sent"]
    assert latest(settings, "DurationSeconds", "ingest_sales", "replicate_sales") > 0
    assert {"CdcLagBytes", "CdcLagSeconds"} <= {m["metric"] for m in published}
    # per dataset, with the right values: what the warehouse holds is what was counted
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM landing.orders")
        (landing_orders,) = cur.fetchone()
    assert latest(settings, "RowsOut", "warehouse_load", "copy_into_landing", dataset="orders") == landing_orders
    assert latest(settings, "Rejected", "lake_clean", "run_clean_jobs") == sum(first_run["events_bad"].values())
    assert latest(settings, "BytesWritten", "lake_clean", "run_clean_jobs", dataset="orders") > 0
    # freshness and completeness per dataset, from the observe DAG
    observed = {(m["metric"], m.get("Dataset")) for m in published if m.get("DAG") == "observe"}
    assert {("FreshnessSeconds", "lake.events"), ("Completeness", "warehouse.landing.orders"),
            ("DatasetRows", "lake.orders")} <= observed


def test_a_failed_task_sends_one_actionable_alert(settings, first_run):
    from lifecycle.dataops.alerts import read_alerts

    read_alerts(settings)  # drain anything earlier
    code = (
        "import sys; from airflow.dag_processing.dagbag import DagBag; "
        f"bag = DagBag(dag_folder={str(REPO / 'tests' / 'dags')!r}); "
        "assert not bag.import_errors, bag.import_errors; "
        "dr = bag.dags['forced_failure'].test(); print('STATE', dr.state)"
    )
    env = {**lifecycle_env(settings), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "tests" / "dags")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    assert "STATE failed" in proc.stdout, proc.stderr[-3000:]
    alerts = read_alerts(settings)
    assert len(alerts) == 1, alerts  # three tries, one alert: only the final failure alerts
    (alert,) = alerts
    assert alert["kind"] == "task_failed"
    assert alert["dag_id"] == "forced_failure" and alert["task_id"] == "explode"
    assert alert["try_number"] == 3 and alert["run_id"]
    assert "ValueError: forced failure for the alert test" in alert["error"]
    assert alert["data_interval"] and "/" in alert["data_interval"]
    assert alert["log_url"].startswith(settings.services.airflow_url) and alert["runbook"]
    assert alert["log_group"] == settings.names.log_group
    assert alert["log_stream"] == (f"dag_id=forced_failure/run_id={alert['run_id']}/task_id=explode/"
                                   "attempt=3.log").replace(":", "_")
    assert alert["log_command"].startswith("lifecycle logs forced_failure explode")
    assert alert["dedupe_key"].startswith("task_failed|forced_failure|explode|")
    # the same failure reported again (a duplicate callback) is not a second alert
    from lifecycle.dataops.alerts import publish

    assert publish(settings, alert) is None
    assert read_alerts(settings) == []


def test_lineage_names_what_each_job_read_and_wrote(settings, first_run):
    from lifecycle.dataops.lineage import producers, read_events

    events = read_events(settings)
    assert events, f"no OpenLineage events in {settings.lineage_file}"
    made_by = producers(settings)
    clean_orders = f"s3://{settings.names.bucket('clean')}/orders"
    assert made_by[clean_orders] == ["lifecycle/lake_clean.run_clean_jobs"]
    landing = [d for d, jobs in made_by.items() if d.endswith("warehouse.landing.orders")]
    assert landing and made_by[landing[0]] == ["lifecycle/warehouse_load.copy_into_landing"]
    complete = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == "lake_clean.run_clean_jobs"]
    assert any(f"s3://{settings.names.bucket('raw')}" == i["namespace"] for e in complete for i in e["inputs"])
    # dbt models, through Cosmos: a model task's event names the table it built
    dbt_outputs = [o["name"] for e in events if e["job"]["name"].startswith("dbt_build.")
                   for o in e.get("outputs") or []]
    assert any(name.endswith("marts.fct_orders") for name in dbt_outputs), sorted(set(dbt_outputs))[:20]


def test_observe_dag_kept_its_results(settings, first_run):
    from lifecycle.dataops.observe import latest_results

    results = latest_results(settings)
    assert {r["dataset"] for r in results} >= {"lake.orders", "lake.events", "warehouse.landing.orders",
                                                "warehouse.serving.daily_sales"}
    assert settings.observability_page.exists()


def test_serve_publish_published_recommendations_and_the_dashboard(settings, first_run):
    from lifecycle.serve import recommend

    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT product_id) FROM serving.product_recommendations")
        rows, products = cur.fetchone()
        cur.execute("SELECT count(*) FROM serving.product_embeddings")
        embedded = cur.fetchone()[0]
    assert products == embedded > 10 and rows == products * recommend.TOP_K
    assert len(recommend.recommend(settings, 1)) == recommend.TOP_K
    page = settings.dashboard_path.read_text()
    for chart in ("chart-daily-revenue", "chart-top-products", "chart-funnel", "chart-review-scores"):
        assert f'id="{chart}"' in page


def test_rerun_on_the_same_data_changes_nothing(settings, first_run):
    from lifecycle.dataops.reconcile import reconcile

    before = _serving_snapshot(settings)
    lake_before = reconcile(settings)["lake"]
    _run_or_fail(settings, "run")
    assert _serving_snapshot(settings) == before
    assert reconcile(settings)["lake"] == lake_before


def test_next_day_and_foreign_writes_flow_through(settings, first_run):
    from lifecycle.dataops.reconcile import reconcile
    from lifecycle.sources.simulator import simulate_day

    def page_views_of(day):
        with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
            cur.execute("SELECT page_views FROM serving.funnel_daily WHERE event_date = %s", (day,))
            return cur.fetchone()[0]

    views_day1 = page_views_of(date(2026, 11, 20))
    from lifecycle.sources.simulator import change_reviews

    changed = change_reviews(settings, date(2026, 11, 21), 42, n_updates=3, n_deletes=2)
    day2 = simulate_day(settings, date(2026, 11, 21), scale=40, bad_rate=0.05, late_rate=0.05)
    assert day2["events_late"] > 0
    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO products VALUES (5000, 'SKU-X', 'Hand-made mug', 'kitchen', 'by someone else', "
                    "12.50, true, '2026-11-21 10:00+00')")
        cur.execute("INSERT INTO orders VALUES (900000, 1, 'paid', '2026-11-21 11:00+00', '2026-11-21 11:00+00')")
        cur.execute("INSERT INTO order_items VALUES (900000, 1, 5000, 4, 12.50)")
        cur.execute("UPDATE order_items SET quantity = quantity + 1 WHERE order_id = "
                    "(SELECT min(order_id) FROM orders WHERE status <> 'cancelled')")
        # a primary-key update (DMS writes it as a delete of the old key and an insert)
        cur.execute("UPDATE order_items SET line_no = 99 WHERE (order_id, line_no) = "
                    "(SELECT order_id, min(line_no) FROM order_items WHERE order_id < 900000 "
                    "GROUP BY order_id ORDER BY order_id LIMIT 1)")
        cur.execute("DELETE FROM order_items WHERE (order_id, line_no) = "
                    "(SELECT order_id, max(line_no) FROM order_items GROUP BY order_id HAVING max(line_no) > 1 "
                    "ORDER BY order_id DESC LIMIT 1)")
    # events put on the stream by someone else (the contract lets anyone write): two good ones
    # and one without its type; the reconciliation takes the stream, not the simulator, as truth
    import json

    from lifecycle.clients import aws

    theirs = [{"event_id": f"00000000-0000-4000-8000-00000000000{i}", "event_type": etype,
               "event_ts": f"2026-11-21T12:0{i}:00Z", "customer_id": 1, "product_id": 1,
               "page": "/products/1", **extra}
              for i, (etype, extra) in enumerate([("page_view", {}), ("add_to_cart", {"quantity": 1})])]
    theirs.append({k: v for k, v in theirs[0].items() if k != "event_type"} | {"event_id": "00000000-0000-4000-8000-0000000000ff"})
    aws(settings, "kinesis").put_records(StreamName=settings.names.stream, Records=[
        {"Data": json.dumps(e).encode(), "PartitionKey": "someone-else"} for e in theirs])
    _run_or_fail(settings, "run")
    report = reconcile(settings)
    assert [c for c in report["checks"] if not c["ok"]] == []
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["page_view: simulator = clean zone (events) (+ up to 3 records by others)"]["ok"]
    quarantined = by_name["quarantine by reason ⊇ bad records sent by kind (+ up to 3 records by others)"]
    assert quarantined["actual"]["missing_field"] == quarantined["expected"].get("missing_field", 0) + 1
    # reviews edited and deleted in DynamoDB (through its stream) are what serving shows
    assert changed
    from collections import defaultdict
    from decimal import ROUND_HALF_UP, Decimal

    ratings = defaultdict(list)
    for page in aws(settings, "dynamodb").get_paginator("scan").paginate(TableName=settings.names.reviews_table):
        for item in page["Items"]:
            ratings[int(item["product_id"]["N"])].append(int(item["rating"]["N"]))
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT product_id, review_count, avg_rating FROM serving.product_performance "
                    "WHERE review_count > 0")
        served = {pid: (n, avg) for pid, n, avg in cur.fetchall()}
    expected = {pid: (len(r), (Decimal(sum(r)) / len(r)).quantize(Decimal("0.01"), ROUND_HALF_UP))
                for pid, r in ratings.items()}
    assert served == expected
    # late events of the 20th, arriving with the 21st, land in the 20th's partition and funnel
    assert page_views_of(date(2026, 11, 20)) == views_day1 + day2["events_late"]
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT units_sold, revenue FROM serving.product_performance WHERE product_id = 5000")
        assert cur.fetchone() == (4, 50)
        cur.execute("SELECT count(*) FROM serving.daily_sales")
        assert cur.fetchone()[0] == 2
        cur.execute("SELECT count(*) FROM landing.order_items WHERE line_no = 99")
        assert cur.fetchone()[0] == 1
        # the day's status transitions are in the history
        cur.execute("SELECT count(*) FROM marts.fct_order_status_changes WHERE NOT is_current")
        assert cur.fetchone()[0] > 0
    names = {c["name"] for c in report["checks"]}
    assert "order_items: source = clean, value for value (6 columns)" in names
    assert "order_items: clean = landing, value for value (6 columns)" in names


def test_no_raw_pii_in_the_lake_the_warehouse_or_serving(settings, first_run):
    """Every customer email and phone of the source: absent from every object of clean/ and
    curated/ and every text column of the warehouse; the email hash is salted (an unsalted
    SHA-256 of an email, which anyone can compute, appears nowhere either)."""
    import hashlib

    from lifecycle.clients import aws, connect_duckdb

    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT email, phone FROM customers")
        rows = cur.fetchall()
    secrets = {v for r in rows for v in r if v}
    secrets |= {e.lower() for e, _ in rows if e}
    secrets |= {hashlib.sha256(e.lower().encode()).hexdigest() for e, _ in rows if e}
    assert len(secrets) > 100

    con = connect_duckdb(settings)
    con.execute("CREATE TABLE pii (v VARCHAR)")
    con.executemany("INSERT INTO pii VALUES (?)", [(v,) for v in secrets])
    s3, scanned = aws(settings, "s3"), 0
    try:
        for zone in ("clean", "curated"):
            bucket = settings.names.bucket(zone)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for obj in page.get("Contents", []):
                    if not obj["Key"].endswith(".parquet"):
                        continue
                    url = f"s3://{bucket}/{obj['Key']}"
                    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{url}')").fetchall()]
                    values = " UNION ALL ".join(f'SELECT CAST("{c}" AS VARCHAR) AS v FROM read_parquet(\'{url}\')'
                                                for c in cols)
                    hits = con.execute(f"SELECT count(*) FROM ({values}) x JOIN pii USING (v)").fetchone()[0]
                    assert hits == 0, f"raw PII in {url}"
                    scanned += 1
    finally:
        con.close()
    assert scanned > 10

    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("""SELECT table_schema, table_name, column_name FROM information_schema.columns
                       WHERE data_type IN ('text', 'character varying')
                         AND table_schema NOT IN ('pg_catalog', 'information_schema')""")
        columns = cur.fetchall()
        assert any(s == "serving" for s, _, _ in columns) and any(s == "landing" for s, _, _ in columns)
        for schema, table, column in columns:
            cur.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}" = ANY(%s)', (list(secrets),))
            assert cur.fetchone()[0] == 0, f"raw PII in {schema}.{table}.{column}"
