"""`make demo`: the whole lifecycle once on the embedded target, with a report.

Input: ``Settings`` (embedded), a business date, the scale and bad-record rate.
Output: printed per stage what happened (produced, ingested, cleaned, quarantined, loaded,
modelled, published), the reconciliation verdict, and where to look next. Returns the exit
code: 0 only when every DAG succeeded and the reconciliation passed.

Idempotent: the simulator writes a given day once; ingestion resumes from its slot and
checkpoints; every downstream step replaces what it produced before.
"""

from __future__ import annotations

import time
from datetime import date

from lifecycle.dataops.metrics import total_count
from lifecycle.settings import Settings


def _total(value) -> int:
    return int(total_count(value) or 0)


def _line(stage: str, text: str) -> None:
    print(f"  {stage:<12} {text}")


def _result(results: dict, dag_id: str, task_id: str | None = None) -> dict:
    tasks = results.get(dag_id, {}).get("tasks", {})
    if task_id:
        return tasks.get(task_id, {}).get("result") or {}
    for t in tasks.values():
        if isinstance(t.get("result"), dict):
            return t["result"]
    return {}


def _progress():
    started = [time.monotonic()]

    def done(dag_id: str, result: dict) -> None:
        now = time.monotonic()
        ok = sum(1 for t in result["tasks"].values() if t["state"].endswith("success"))
        print(f"  {dag_id:<22} {result['state'].split('.')[-1]:<8} {ok}/{len(result['tasks'])} tasks  "
              f"{now - started[0]:5.1f} s", flush=True)
        started[0] = now

    return done


def run_demo(settings: Settings, business_date: date, scale: int = 200, bad_rate: float = 0.02,
             late_rate: float = 0.01, verbose: bool = False) -> int:
    from lifecycle.dataops.reconcile import print_report, reconcile
    from lifecycle.infra import apply as infra
    from lifecycle.ops import dag_runs as orchestrate
    from lifecycle.ops import services
    from lifecycle.sources.sales_db import ensure_schema
    from lifecycle.sources.simulator import simulate_day

    t0 = time.monotonic()
    print(f"== lifecycle demo: business date {business_date}, target {settings.target} ==")
    if settings.target == "embedded":
        up = services.up(settings)
        print(f"services: postgres 127.0.0.1:{settings.pg.port}, moto {settings.aws.endpoint}"
              + ("  (environment reset: moto was restarted)" if up["environment_reset"] else ""))
    infra.apply(settings)
    ensure_schema(settings)
    orchestrate.configure_airflow(settings, quiet=not verbose)
    orchestrate.migrate_metadata(settings)
    orchestrate.build_dbt_manifest()
    sim = simulate_day(settings, business_date, scale=scale, bad_rate=bad_rate, late_rate=late_rate)

    print("running the lifecycle's DAGs with Airflow (dag.test), in asset order:")
    results = orchestrate.run_dags(on_done=_progress())
    failed = [d for d, r in results.items() if not r["state"].endswith("success")]
    not_run = [d for d in orchestrate.LIFECYCLE_DAGS if d not in results]

    print("\n== what happened ==")
    if sim.get("already_simulated"):
        _line("produced", f"{business_date} was already simulated: no new source data (idempotent rerun)")
    else:
        _line("produced", f"{sim['orders_inserted']} orders ({sim['orders_deleted']} abandoned and deleted), "
                          f"{sim['items_inserted']} items, {sim['events_sent']} events "
                          f"({sum(sim['events_bad'].values())} deliberately bad, {sim.get('events_late', 0)} late), "
                          f"{sim['reviews_written']} reviews")
    sales = _result(results, "ingest_sales")
    _line("ingested", f"sales: full load {sum(sales.get('full_load', {}).values())} rows, "
                      f"CDC {sum(sum(v.values()) for v in sales.get('changes', {}).values())} changes; "
                      f"events: {_result(results, 'ingest_user_activity').get('records', 0)} records; "
                      f"reviews: {_result(results, 'ingest_reviews').get('items', 0)} items")
    clean = _result(results, "lake_clean", "run_clean_jobs")
    quarantine = _result(results, "lake_clean", "check_quarantine")
    from lifecycle.lake.catalog import CURATED_TABLES

    rows_out = clean.get("rows_out") or {}
    curated = {t: n for t, n in rows_out.items() if t in CURATED_TABLES}
    cleaned = {t: n for t, n in rows_out.items() if t not in CURATED_TABLES}
    _line("cleaned", f"{_total(cleaned)} rows in the clean zone, {_total(curated)} in the curated one "
                     f"(ML features, training set); "
                     f"{clean.get('rejected', 0)} records quarantined with a reason "
                     f"({quarantine.get('batches_checked', 0)} new batches checked, "
                     f"{quarantine.get('alerted_batches', 0)} above the alert rate)")
    load = _result(results, "warehouse_load")
    _line("loaded", f"{_total(load.get('rows_out'))} rows in warehouse.landing ({load.get('tables', 0)} tables); "
                    f"this run copied {_total(load.get('rows_copied'))} rows from {load.get('files_copied', 0)} "
                    f"changed objects (COPY), {load.get('files_unchanged', 0)} unchanged objects skipped")
    dbt_tasks = results.get("dbt_build", {}).get("tasks", {})
    _line("modelled", f"{sum(1 for t in dbt_tasks.values() if t['state'].endswith('success'))}"
                      f"/{len(dbt_tasks)} dbt tasks (models + tests) succeeded")
    pub = _result(results, "serve_publish", "swap_and_publish")
    _line("published", ", ".join(f"serving.{t}: {n} rows" for t, n in pub.get("tables", {}).items()) or "nothing")
    rec = _result(results, "serve_publish", "build_recommendations")
    if rec.get("products"):
        _line("recommended", f"{rec['products']} product embeddings (pgvector, HNSW) from {rec['pairs']} "
                             f"co-purchase/co-view pairs; top {rec['k']} per product")
    obs = _result(results, "observe", "monitor_datasets")
    alarm_states = _result(results, "observe", "evaluate_alarms")
    _line("observed", f"{obs.get('datasets', 0)} datasets profiled, {obs.get('alerts', 0)} monitor(s) alerting"
                      f"{' (alert sent)' if obs.get('alert_sent') else ''}; "
                      f"alarms in ALARM: {', '.join(alarm_states.get('in_alarm', [])) or 'none'}")

    code = 0
    if failed or not_run:
        print(f"\nFAILED DAGs: {failed}; not run: {not_run}")
        code = 1
    print("\n== reconciliation (source vs lake vs warehouse vs serving) ==")
    try:
        report = reconcile(settings)
        print_report(report)
        code = code or (0 if report["ok"] else 1)
    except Exception as exc:  # a missing table etc. is a failed reconciliation, said plainly
        print(f"  reconciliation could not run: {type(exc).__name__}: {exc}")
        code = 1

    print("\n== where to look ==")
    print(f"  dashboard:   {settings.dashboard_path}  (and {settings.observability_page.name} next to it)")
    print("  DataOps:     .venv/bin/lifecycle metrics | alarms | logs <dag> <task> | lineage")
    print("  query:       .venv/bin/lifecycle query \"select * from serving.daily_sales\"")
    print("  similar:     .venv/bin/lifecycle recommend 1")
    print(f"  Airflow UI:  make airflow   → {settings.services.airflow_url}")
    print(f"  services:    .venv/bin/lifecycle services status  (state in {settings.home})")
    print(f"\ndemo {'OK' if code == 0 else 'FAILED'} in {time.monotonic() - t0:.0f} s")
    return code
