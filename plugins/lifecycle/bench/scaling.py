"""Scaling report: the same stages at several scales, time per row and peak memory side by side.

Input: the runs of ``harness.run_scale`` in increasing scale (each ``{"meta", "results"}``).
Output: ``<out>/scaling-<UTC timestamp>.json`` (machine; scales; per stage and scale: rows,
seconds, µs per row for the stage and its baseline, peak RSS total and of the benchmark
process; per stage and step between two scales: the growth of the time per row, of the
baseline's and of the peak RSS, and ``suspect`` when the stage's time per row grew more than
``GROWTH_LIMIT``; the incremental cost of each scale) and ``scaling-<timestamp>.md`` (the
tables), and the Markdown text.

Time per row should stay flat (or fall, as fixed costs spread) as data grows; a growth past
1.5× from one scale to the next is flagged as possibly super-linear (quadratic suspicion).
The baseline's growth is shown next to it: when both grew, the machine (or the emulator)
slowed down, not the stage. ``cdc_lag`` runs for a fixed time at a fixed rate and is not
checked.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GROWTH_LIMIT = 1.5
NOT_CHECKED = {"cdc_lag"}  # fixed duration at a fixed offered load: rows do not grow with scale


def _per_row_us(seconds: float, rows: int) -> float | None:
    return round(seconds / rows * 1e6, 3) if rows and seconds > 0 else None


def _growth(a: float | None, b: float | None) -> float | None:
    return round(b / a, 3) if a and b else None


def summarise(runs: list[dict]) -> dict[str, Any]:
    scales = [r["meta"]["params"]["scale"] for r in runs]
    stages: dict[str, dict] = {}
    for run in runs:
        scale = run["meta"]["params"]["scale"]
        for r in run["results"]:
            st = stages.setdefault(r.stage, {"per_scale": {}, "steps": []})
            st["per_scale"][str(scale)] = {
                "rows": r.rows, "seconds": round(r.seconds, 3), "error": r.error,
                "us_per_row": _per_row_us(r.seconds, r.rows),
                "baseline_us_per_row": _per_row_us(r.baseline_seconds, r.baseline_rows),
                "ratio": round(r.ratio, 4) if r.ratio else None,
                "peak_rss_mb": r.peak_rss_mb.get("total"),
                "peak_rss_bench_process_mb": r.peak_rss_mb.get("bench_process"),
            }
    suspects = []
    for name, st in stages.items():
        present = [s for s in scales if str(s) in st["per_scale"]]
        for lo, hi in zip(present, present[1:], strict=False):
            a, b = st["per_scale"][str(lo)], st["per_scale"][str(hi)]
            step = {"from": lo, "to": hi,
                    "time_per_row_growth": _growth(a["us_per_row"], b["us_per_row"]),
                    "baseline_time_per_row_growth": _growth(a["baseline_us_per_row"], b["baseline_us_per_row"]),
                    "peak_rss_growth": _growth(a["peak_rss_mb"], b["peak_rss_mb"])}
            g = step["time_per_row_growth"]
            step["suspect"] = name not in NOT_CHECKED and g is not None and g > GROWTH_LIMIT
            if step["suspect"]:
                suspects.append(f"{name} {lo:,}→{hi:,} ×{g}")
            st["steps"].append(step)
    incremental = {}
    for run in runs:
        for r in run["results"]:
            if r.stage in ("clean_incremental", "lifecycle_incremental") and not r.error:
                incremental.setdefault(str(run["meta"]["params"]["scale"]), {})[r.stage] = {
                    "cost_vs_full": r.details.get("cost_vs_full"),
                    "per_stage": r.details.get("per_stage")}
    last = runs[-1]["meta"]
    return {"timestamp": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"), "scales": scales,
            "events": [r["meta"]["params"]["events"] for r in runs],
            "runs": [str(r["json"]) for r in runs if r.get("json")],
            "machine": last.get("machine"), "versions": last.get("versions"),
            "growth_limit": GROWTH_LIMIT, "suspects": suspects, "stages": stages,
            "incremental": incremental}


def _f(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def render(doc: dict[str, Any]) -> str:
    scales = doc["scales"]
    m = doc.get("machine") or {}
    head = " | ".join(f"µs/row {s:,}" for s in scales)
    steps = " | ".join(f"×{b // a if b % a == 0 else round(b / a, 1)}" for a, b in zip(scales, scales[1:], strict=False))
    out = [f"# Scaling {doc['timestamp']}", "",
           f"scales {', '.join(f'{s:,}' for s in scales)} orders; events {', '.join(f'{e:,}' for e in doc['events'])}; "
           f"{m.get('cpu_logical')} cores, {m.get('memory_total_gib')} GiB; load average at end {m.get('load_average')}",
           "", f"Time per row (stage seconds ÷ stage rows, µs) and its growth per step "
           f"(baseline's growth in brackets); growth > {doc['growth_limit']} is flagged.", "",
           f"| stage | {head} | growth {steps} |", "|---|" + "---:|" * (len(scales) + 1)]
    for name, st in doc["stages"].items():
        cells = " | ".join(_f(st["per_scale"].get(str(s), {}).get("us_per_row")) for s in scales)
        growth = "; ".join(
            f"{_f(x['time_per_row_growth'])} ({_f(x['baseline_time_per_row_growth'])})"
            + (" **suspect**" if x["suspect"] else "") for x in st["steps"])
        out.append(f"| {name} | {cells} | {growth or '–'} |")
    out += ["", "Peak RSS while the stage runs (MiB, all processes: this one, Postgres, moto; "
            "benchmark process in brackets).", "",
            "| stage | " + " | ".join(f"{s:,}" for s in scales) + " |", "|---|" + "---:|" * len(scales)]
    for name, st in doc["stages"].items():
        cells = " | ".join(
            f"{_f(p.get('peak_rss_mb'), 0)} ({_f(p.get('peak_rss_bench_process_mb'), 0)})"
            for p in (st["per_scale"].get(str(s), {}) for s in scales))
        out.append(f"| {name} | {cells} |")
    if doc["incremental"]:
        out += ["", "Incremental cost after 1 % new data (incremental seconds ÷ full seconds; target ≤ 0.05).", "",
                "| scale | lake jobs | whole lifecycle | per stage |", "|---:|---:|---:|---|"]
        for s in scales:
            inc = doc["incremental"].get(str(s), {})
            whole = inc.get("lifecycle_incremental", {})
            per = ", ".join(f"{k} {v['cost']}" for k, v in (whole.get("per_stage") or {}).items())
            out.append(f"| {s:,} | {inc.get('clean_incremental', {}).get('cost_vs_full', '–')} | "
                       f"{whole.get('cost_vs_full', '–')} | {per or '–'} |")
    out += ["", "Suspect (time per row grew past the limit): " + ("; ".join(doc["suspects"]) or "none"), ""]
    return "\n".join(out)


def write(out_dir: Path, runs: list[dict]) -> tuple[Path, Path, str]:
    doc = summarise(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"scaling-{doc['timestamp']}"
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    text = render(doc)
    md_path.write_text(text)
    return json_path, md_path, text
