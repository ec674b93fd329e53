"""The benchmark harness (``make bench``) at a tiny scale: shape and row counts, never timings.

Input: nothing; ``lifecycle.bench.main`` starts and stops its own embedded environment on
free ports under ``/tmp`` (it does not use the session fixture's environment nor touch
``os.environ``). Output: assertions on the JSON report it writes into a temp folder: every
stage present, positive row counts, finite positive ratios, and each stage's rows equal
to its baseline's rows (the same data went through both).
"""

from __future__ import annotations

import json
import math

import pytest

from lifecycle.bench.harness import STAGES

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from lifecycle.bench import main

    out = tmp_path_factory.mktemp("bench")
    # the orchestration stage runs two small DAGs only (all of them take minutes even at this scale)
    code = main(["--scale", "2000", "--events", "2000", "--out", str(out), "--lag-seconds", "2",
                 "--orchestration-dags", "ingest_reviews,warehouse_load"])
    files = sorted(out.glob("*.json"))
    assert len(files) == 1, f"expected one JSON report in {out}, got {files}"
    doc = json.loads(files[0].read_text())
    md = files[0].with_suffix(".md")
    return {"code": code, "doc": doc, "md": md.read_text() if md.exists() else None}


def test_every_stage_ran_and_is_reported(report):
    doc = report["doc"]
    failed = {name: st["error"] for name, st in doc["stages"].items() if st.get("error")}
    assert failed == {}
    assert report["code"] == 0
    assert set(doc["stages"]) == {*STAGES, "whole"}
    assert report["md"] and "| stage |" in report["md"]


def test_rows_are_positive_and_ratios_finite(report):
    for name, st in report["doc"]["stages"].items():
        assert st["rows"] > 0, name
        assert st["baseline_rows"] > 0, name
        for key in ("ratio", "rows_per_s", "baseline_rows_per_s"):
            value = st[key]
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (name, key, value)
        assert st["seconds"] > 0 and st["baseline_seconds"] > 0, name


def test_each_stage_processed_the_same_rows_as_its_baseline(report):
    stages = report["doc"]["stages"]
    for name, st in stages.items():
        if name == "clean_incremental":  # its baseline is the full clean run, not the same rows
            continue
        assert st["rows"] == st["baseline_rows"], (name, st["rows"], st["baseline_rows"])
    inc = stages["clean_incremental"]["details"]
    assert inc["modes"]["clean_sales"] == inc["modes"]["clean_events"] == "incremental"
    assert inc["cost_vs_full"] > 0 and inc["raw_rows_in"]["orders"] == inc["new_orders_changed"]
    # and the rows are the workload's: 2,000 orders changed once, 2,000 events read
    assert stages["cdc"]["rows"] == 2000
    assert stages["kinesis"]["rows"] == 2000
    assert stages["full_load"]["details"]["rows_per_table"]["orders"] == 2000
    # the load's rerun on an unchanged clean zone copies nothing (incremental by manifest)
    assert stages["load"]["details"]["rerun_rows_copied"] == 0
    # dbt after 1 % new data: new orders and events went in, same serving as a full refresh
    inc = stages["dbt_incremental"]["details"]
    assert 0 < inc["new_orders"] <= 2000 // 100 and inc["new_events"] > 0
    # the whole lifecycle after 1 % new data: every stage timed against its full run
    whole = stages["lifecycle_incremental"]["details"]
    assert set(whole["per_stage"]) == {"ingest_sales", "ingest_events", "clean", "load", "dbt"}
    assert all(v["incremental_s"] > 0 and v["cost"] > 0 for v in whole["per_stage"].values())
    assert whole["cost_vs_full"] > 0 and whole["load_rows_copied"] > 0
    # Airflow's overhead: two DAG runs with their tasks, and every DAG file parsed
    orch = stages["orchestration"]["details"]
    assert set(orch["overhead"]["runs"]) == {"ingest_reviews", "warehouse_load"}
    for run in orch["overhead"]["runs"].values():
        assert run["state"] == "success" and run["tasks"] >= 1 and 0 < run["task_seconds"] <= run["wall_s"]
    assert orch["parse"]["warm"]["import_errors"] == {}
    assert {"dbt_build.py", "lake_clean.py", "ingest_sales.py"} <= set(orch["parse"]["warm"]["files"])


def test_report_describes_the_machine_and_versions(report):
    doc = report["doc"]
    assert doc["params"]["scale"] == 2000 and doc["params"]["events"] == 2000
    assert doc["machine"]["cpu_logical"] >= 1 and doc["machine"]["memory_total_gib"] > 0
    for pkg in ("duckdb", "postgres", "moto"):
        assert doc["versions"][pkg], pkg
    lag = doc["stages"]["cdc_lag"]["details"]
    assert lag["samples"] > 0 and lag["lag_seconds"]["max"] is not None
    assert isinstance(doc["below_target"], list)


@pytest.fixture(scope="module")
def scaling(tmp_path_factory):
    from lifecycle.bench import main

    out = tmp_path_factory.mktemp("bench-scaling")
    # two stages suffice to check the per-scale report (every stage is the same code path)
    code = main(["--scale", "1000,2000", "--events", "500", "--stages", "full_load,kinesis",
                 "--out", str(out)])
    files = sorted(out.glob("scaling-*.json"))
    assert len(files) == 1, f"expected one scaling report in {out}, got {sorted(out.iterdir())}"
    return {"code": code, "doc": json.loads(files[0].read_text()),
            "runs": sorted(p for p in out.glob("*.json") if not p.name.startswith("scaling-"))}


def test_scaling_mode_reports_time_per_row_and_memory_per_scale(scaling):
    doc = scaling["doc"]
    assert scaling["code"] == 0 and len(scaling["runs"]) == 2
    assert doc["scales"] == [1000, 2000] and doc["machine"]["cpu_logical"] >= 1
    for name in ("full_load", "kinesis"):
        st = doc["stages"][name]
        assert set(st["per_scale"]) == {"1000", "2000"}, name
        for cell in st["per_scale"].values():
            assert cell["us_per_row"] > 0 and cell["peak_rss_mb"] > 0, (name, cell)
        (step,) = st["steps"]
        assert step["from"] == 1000 and step["to"] == 2000 and step["time_per_row_growth"] > 0
        assert step["suspect"] == (step["time_per_row_growth"] > doc["growth_limit"])
    assert doc["stages"]["full_load"]["per_scale"]["2000"]["rows"] > doc["stages"]["full_load"]["per_scale"]["1000"]["rows"]


def test_scaling_flags_a_stage_whose_time_per_row_grows():
    from lifecycle.bench import scaling
    from lifecycle.bench.measure import StageResult

    def run(scale, secs):
        return {"meta": {"params": {"scale": scale, "events": 10}},
                "results": [StageResult("linear", scale, scale * 1e-6, scale, scale * 1e-6, 0.5),
                            StageResult("quadratic", scale, secs, scale, scale * 1e-6, 0.5)]}

    doc = scaling.summarise([run(1000, 0.001), run(10_000, 0.1)])  # 10× rows, 100× time
    assert [s["suspect"] for s in doc["stages"]["linear"]["steps"]] == [False]
    assert [s["suspect"] for s in doc["stages"]["quadratic"]["steps"]] == [True]
    assert doc["suspects"] == ["quadratic 1,000→10,000 ×10.0"]
    assert "**suspect**" in scaling.render(doc)
