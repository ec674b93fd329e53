"""DAG simulate_sales_platform: the sales platform's day, played into the sources."""

from airflow.sdk import Param, dag

from lifecycle.pipeline.assets import SOURCE_EVENTS, SOURCE_REVIEWS, SOURCE_SALES
from lifecycle.pipeline.tasks import dag_args, stage_task

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
    **dag_args("source", doc=DOC, extra_tags=("simulator",), retries=0),
    params={
        "scale": Param(200, type="integer", minimum=1, description="orders per day"),
        "seed": Param(42, type="integer"),
        "bad_rate": Param(0.02, type="number", minimum=0, maximum=0.5),
        "late_rate": Param(0.01, type="number", minimum=0, maximum=0.5),
    },
)
def simulate_sales_platform():
    # the day played is the run's interval start; the DAG's params are the simulator's options
    stage_task("simulate", task_id="simulate_day", outlets=[SOURCE_SALES, SOURCE_EVENTS, SOURCE_REVIEWS])()


simulate_sales_platform()
