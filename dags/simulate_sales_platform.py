"""DAG simulate_sales_platform: the sales platform's day, played into the sources."""

from datetime import UTC, datetime

from airflow.sdk import Param, dag, task

from lifecycle.dataops.callbacks import default_args, run_deadline
from lifecycle.pipeline.assets import SOURCE_EVENTS, SOURCE_REVIEWS, SOURCE_SALES
from lifecycle.pipeline.tags import doc_footer, tags

DOC = """
### Simulator (optional)
Plays one business day of the sales platform (the data interval's day) into the sources:
orders and items in RDS `sales`, reviews in DynamoDB, user-activity events in Kinesis.
Deterministic per (day, seed); a rerun writes nothing. `bad_rate` adds deliberately bad
event records (malformed JSON, missing fields, unknown event type, far-future timestamp,
oversized record, unknown product, negative quantity, duplicate event id); `late_rate`
adds yesterday's events that only arrive today.
"""


@dag(
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=0),
    deadline=run_deadline(),
    tags=tags("source", extra=("simulator",)),
    doc_md=DOC + doc_footer("source"),
    params={
        "scale": Param(200, type="integer", minimum=1, description="orders per day"),
        "seed": Param(42, type="integer"),
        "bad_rate": Param(0.02, type="number", minimum=0, maximum=0.5),
        "late_rate": Param(0.01, type="number", minimum=0, maximum=0.5),
    },
)
def simulate_sales_platform():
    @task(outlets=[SOURCE_SALES, SOURCE_EVENTS, SOURCE_REVIEWS])
    def simulate_day(**context) -> dict:
        from lifecycle.pipeline.context import interval
        from lifecycle.settings import Settings
        from lifecycle.sources.simulator import simulate_day as play

        start, _ = interval(context)
        p = context["params"]
        summary = play(Settings.from_env(), start.date(), seed=int(p["seed"]), scale=int(p["scale"]),
                       bad_rate=float(p["bad_rate"]), late_rate=float(p["late_rate"]))
        return {**summary, "rows_out": summary.get("events_sent", 0)}

    simulate_day()


simulate_sales_platform()
