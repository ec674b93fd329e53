"""The failure alert's message (``lifecycle.dataops.alerts``), built without services.
"""

from __future__ import annotations


def test_alert_message_says_what_where_when_and_what_to_do():
    from lifecycle.dataops.alerts import build_alert

    a = build_alert(dag_id="d", task_id="t", run_id="r", try_number=3, interval="x/y",
                    error="ValueError: boom" + "!" * 5000, log_url="http://ui/log", target="embedded")
    assert {"dag_id", "task_id", "run_id", "try_number", "data_interval", "error", "log_url",
            "runbook"} <= a.keys()
    assert len(a["error"]) <= 2000 and "rerun is safe" in a["runbook"]
