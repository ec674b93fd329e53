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

pytestmark = pytest.mark.timeout(480)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from lifecycle.bench import main

    out = tmp_path_factory.mktemp("bench")
    code = main(["--scale", "2000", "--events", "2000", "--out", str(out)])
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


def test_report_describes_the_machine_and_versions(report):
    doc = report["doc"]
    assert doc["params"]["scale"] == 2000 and doc["params"]["events"] == 2000
    assert doc["machine"]["cpu_logical"] >= 1 and doc["machine"]["memory_total_gib"] > 0
    for pkg in ("duckdb", "postgres", "moto"):
        assert doc["versions"][pkg], pkg
    lag = doc["stages"]["cdc_lag"]["details"]
    assert lag["samples"] > 0 and lag["lag_seconds"]["max"] is not None
    assert isinstance(doc["below_target"], list)
