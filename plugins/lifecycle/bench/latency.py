"""Event-to-serving latency through the real Airflow pipeline (scheduler + assets).

Input: ``--events N`` (default 3), ``--out DIR``.
Output: for each of N events, the seconds from its ``PutRecord`` to (a) its row in
``warehouse.landing.events`` and (b) the page view counted in ``serving.funnel_daily``,
with Airflow's scheduler, dag-processor, triggerer and api-server running and every DAG
downstream of ingestion triggered by assets, as in production. Written to
``<out>/latency-<UTC timestamp>.json`` and printed.

After each put the producer announces it as the simulator DAG does: an asset event on
``source_user_activity_kinesis`` (``POST /api/v2/assets/events``). ``ingest_user_activity``
is scheduled on that asset *or* hourly, so the scheduler starts it on the event; without an
announcing producer, add up to one schedule interval (60 min) to the figures measured here.
Every DAG downstream runs on its assets, as in production.

Run: ``python -m lifecycle.bench.latency --events 3``. Takes a few minutes: it starts its
own environment (see ``bench.environment``) and stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from lifecycle.bench.environment import bench_environment, free_port
from lifecycle.clients import pg
from lifecycle.pipeline.assets import SOURCE_EVENTS


def _api(base: str, path: str, token: str | None = None, body: dict | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, headers=headers, method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _asset_id(base: str, token: str, uri: str) -> int:
    """The id Airflow gave the asset ``uri`` (known once the dag-processor parsed the DAGs)."""
    def find():
        found = _api(base, f"/api/v2/assets?uri_pattern={urllib.parse.quote(uri)}", token)["assets"]
        return next((a["id"] for a in found if a["uri"] == uri), None)
    return _wait(find, 180, 2)


def _wait(predicate, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"condition not met within {timeout:.0f} s")


def _serving_ready(settings, day: date) -> int | None:
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('serving.funnel_daily')")
        if cur.fetchone()[0] is None:
            return None
        cur.execute("SELECT page_views FROM serving.funnel_daily WHERE event_date = %s", (day,))
        row = cur.fetchone()
        return row[0] if row else 0


def _in_landing(settings, event_id: str) -> bool:
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('landing.events')")
        if cur.fetchone()[0] is None:
            return False
        cur.execute("SELECT 1 FROM landing.events WHERE event_id = %s", (event_id,))
        return cur.fetchone() is not None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lifecycle.bench.latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=3)
    p.add_argument("--out", default="bench/results")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for one event")
    args = p.parse_args(argv)

    from lifecycle.ops.airflow import start_components, stop_components, wait_healthy
    from lifecycle.sources.simulator import put_events, simulate_day

    results = []
    load_start = [round(x, 2) for x in os.getloadavg()]
    with bench_environment() as bench:
        s = bench.settings
        today = datetime.now(UTC).date()
        simulate_day(s, today - timedelta(days=1), scale=20)
        port = free_port()
        procs = start_components(s, port)
        try:
            base = f"http://127.0.0.1:{port}"
            if not wait_healthy(port, timeout=180):
                raise RuntimeError("Airflow did not become healthy")
            token = _api(base, "/auth/token")["access_token"]
            asset_id = _asset_id(base, token, SOURCE_EVENTS.uri)
            # the first scheduled cycle (full load, first dbt build) is the warm-up
            print("waiting for the first scheduled cycle to publish serving ...", flush=True)
            started = time.monotonic()
            _wait(lambda: _serving_ready(s, today - timedelta(days=1)) is not None, args.timeout, 5)
            print(f"  first cycle published after {time.monotonic() - started:.0f} s", flush=True)
            for i in range(args.events):
                # a quiet moment: nothing of the pipeline still running
                time.sleep(5)
                before = _serving_ready(s, today) or 0
                event_id = str(uuid.uuid4())
                payload = {"event_id": event_id, "event_type": "page_view", "customer_id": 1, "product_id": 1,
                           "event_ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "page": "/latency"}
                t0 = time.monotonic()
                put_events(s, [json.dumps(payload).encode()], ["latency"])
                _api(base, "/api/v2/assets/events", token, {"asset_id": asset_id, "extra": {"latency_probe": event_id}})
                _wait(lambda: _in_landing(s, event_id), args.timeout, 0.5)  # noqa: B023
                t_landing = time.monotonic() - t0
                _wait(lambda: (_serving_ready(s, today) or 0) > before, args.timeout, 0.5)  # noqa: B023
                t_serving = time.monotonic() - t0
                results.append({"event_id": event_id, "to_landing_s": round(t_landing, 1),
                                "to_serving_s": round(t_serving, 1)})
                print(f"  event {i + 1}: landing after {t_landing:.1f} s, serving after {t_serving:.1f} s", flush=True)
        finally:
            stop_components(procs)
    serving = [r["to_serving_s"] for r in results]
    summary = {"events": results, "median_to_serving_s": statistics.median(serving) if serving else None,
               "worst_to_serving_s": max(serving) if serving else None,
               "note": "each put announced by an asset event on source_user_activity_kinesis (as the simulator "
                       "does); without it, add up to one hourly schedule interval",
               "load_average_start": load_start, "load_average_end": [round(x, 2) for x in os.getloadavg()]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"latency-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
