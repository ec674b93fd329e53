"""Case 5: the AWS emulator unreachable for a while.

The stages talk to moto through a loopback forwarder (``lifecycle.chaos.proxy.Outage``) that
is taken down and brought back; moto keeps its state (stopping moto would reset AWS).

- A short outage in the middle of a stage's write: the AWS calls retry with backoff
  (botocore's adaptive mode, ``LIFECYCLE_AWS_MAX_ATTEMPTS``) and the stage succeeds when the
  endpoint returns; the data reconciles. The same 3 s in every later stage that calls AWS
  (CDC, the review stream, the lake's commit, the warehouse load, the serving swap), on day 2
  over a published day 1: the stage rides it out or fails cleanly, its retry succeeds, and
  every layer reconciles at values through serving.
- An outage that outlasts every retry: the task fails; its failure alert, which cannot
  reach SNS either, is kept and sent once AWS is back (one alert, even if the failure is
  reported twice); the next run catches up and the data reconciles.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from chaos.harness import (
    assert_reconciled,
    child,
    child_popen,
    fresh,
    reconcile,
    run_in_process,
    up_to_day_two,
    wait_for,
)
from lifecycle.chaos.proxy import Outage


@pytest.fixture
def outage(settings):
    proxy = Outage("127.0.0.1", settings.services.moto_port)
    proxy.up()
    yield proxy
    proxy.down()


@pytest.mark.chaos_slow
def test_short_outage_mid_write_is_retried(settings, chaos_case, outage, tmp_path):
    chaos_case.fault = "AWS endpoint refused for 3 s, in the middle of ingest_events' write"
    fresh(settings, scale=15)
    run_in_process(settings, "ingest_sales", "ingest_reviews")
    proc = child_popen(settings, "ingest_events", "lake", fault="user_activity.write:pause",
                       env={"AWS_ENDPOINT_URL": outage.url, "LIFECYCLE_FAULT_DIR": str(tmp_path),
                            # ample: botocore's backoff is random (one run of 8 attempts did not
                            # outlast the 3 s); the case is about retrying, not the budget
                            "LIFECYCLE_AWS_MAX_ATTEMPTS": "15"})
    marker = tmp_path / "user_activity.write.paused"
    wait_for(marker, proc)
    outage.down()
    marker.unlink()  # the stage goes on into the outage: its next call is refused
    time.sleep(3)
    outage.up()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"the stage did not survive a 3 s outage:\n{out[-2000:]}\n{err[-4000:]}"
    run_in_process(settings, "warehouse")
    report = reconcile(settings, chaos_case)
    assert_reconciled(report)
    chaos_case.outcome = "calls retried with backoff; stage succeeded after the outage; reconciled"


@pytest.mark.chaos_slow
def test_long_outage_one_alert_then_catch_up(settings, chaos_case, outage, monkeypatch):
    from lifecycle.dataops import alerts, callbacks

    chaos_case.fault = "AWS endpoint down for a whole task (3 tries), then back"
    fresh(settings, scale=15)
    alerts.read_alerts(settings)  # empty the queue
    down_env = {"AWS_ENDPOINT_URL": outage.url, "LIFECYCLE_AWS_MAX_ATTEMPTS": "2"}
    outage.down()
    tries = [child(settings, "ingest_events", env=down_env) for _ in range(3)]  # retries=2: 3 tries
    assert all(t.returncode != 0 for t in tries)
    assert "AWS_ENDPOINT_URL" in tries[-1].stderr  # the preflight names what is wrong
    # no retry left: Airflow calls the failure callback (here twice, as when both the task
    # runner and the scheduler report the same try)
    for name, value in down_env.items():
        monkeypatch.setenv(name, value)
    ti = SimpleNamespace(dag_id="ingest_user_activity", task_id="consume_stream", run_id="scheduled__chaos",
                         try_number=3, map_index=-1, max_tries=2, log_url=None)
    context = {"ti": ti, "exception": RuntimeError("AWS endpoint unreachable")}
    callbacks.on_task_failure(context)
    callbacks.on_task_failure(context)
    outage.up()
    # the next run: its first task sends what was kept, then catches up on the data
    callbacks.on_task_start({})
    proc = child(settings, "ingest_events", env={"AWS_ENDPOINT_URL": outage.url})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = [a for a in alerts.read_alerts(settings) if a.get("kind") == "task_failed"]
    assert len(got) == 1, got
    assert got[0]["dag_id"] == "ingest_user_activity" and "unreachable" in got[0]["error"]
    run_in_process(settings, "ingest_sales", "ingest_reviews", "lake", "warehouse")
    report = reconcile(settings, chaos_case)
    assert_reconciled(report)
    chaos_case.outcome = "3 tries failed; 1 alert (kept while AWS was down, sent after); next run caught up"


# stage -> its pause point mid-write; the stages before it run first, the ones after it later
# (dbt talks to Postgres only: an AWS outage cannot reach it)
OUTAGE_CASES = {"ingest_sales": "sales_cdc.write", "ingest_reviews": "review_stream.write",
                "lake": "lake.staged", "warehouse": "warehouse.before_commit", "serve": "serve.before_commit"}


@pytest.mark.chaos_slow
@pytest.mark.parametrize("stage", list(OUTAGE_CASES))
def test_short_outage_in_the_later_stages(settings, chaos_case, outage, tmp_path, stage):
    """The endpoint refused for 3 s in the middle of the CDC's and the review stream's writes,
    the lake's commit, the warehouse load and the serving swap (day 2, over a published day 1;
    ingest_events is the case above). Each stage
    either rides it out on its retries or fails cleanly; then its retry succeeds and every
    layer reconciles at values."""
    from chaos.harness import ok
    from lifecycle.pipeline.stages import STAGES

    point = OUTAGE_CASES[stage]
    chaos_case.fault = f"AWS endpoint refused for 3 s while {stage} is at {point} (day 2)"
    up_to_day_two(settings, stage, STAGES, bad_rate=0.05)
    proc = child_popen(settings, stage, fault=f"{point}:pause",
                       env={"AWS_ENDPOINT_URL": outage.url, "LIFECYCLE_FAULT_DIR": str(tmp_path),
                            "LIFECYCLE_AWS_MAX_ATTEMPTS": "15"})
    marker = tmp_path / f"{point}.paused"
    wait_for(marker, proc)
    outage.down()
    marker.unlink()
    time.sleep(3)
    outage.up()
    out, err = proc.communicate(timeout=600)
    if proc.returncode:
        assert proc.returncode > 0, f"exit {proc.returncode}: not a clean failure\n{err[-3000:]}"
        ok(child(settings, stage))  # the task's retry
        first = f"failed cleanly ({err.strip().splitlines()[-1][:120] if err.strip() else 'no message'}), retried"
    else:
        first = "rode it out on its retries"
    run_in_process(settings, *STAGES[STAGES.index(stage) + 1:])
    report = reconcile(settings, chaos_case, serving=True)
    assert_reconciled(report)
    chaos_case.outcome = f"the stage {first}; reconciled at values through serving"
