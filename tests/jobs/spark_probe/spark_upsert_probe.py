"""A job module for the engine-equivalence test: exercises ``SparkJobContext.upsert_clean``
and the quarantine append on real Spark (run by ``run_job_spark`` after the clean jobs).

Arguments: ``--clean_bucket`` (read: clean ``orders`` as the clean jobs wrote it) and
``--probe_bucket`` (written). Output in ``<probe_bucket>``: ``orders/`` = the clean orders,
then upserted: in the newest partition the smallest order's status becomes ``probe`` and
the second smallest is deleted, every order of the oldest partition is deleted (the
partition must disappear), order ``max + 1000`` is added on 2030-01-01 (a new partition);
``fresh/orders/`` = an upsert into a table that did not exist (a plain write);
``quarantine/probe/`` = the same two rejected rows appended twice (two objects).
"""

from pyspark.sql import functions as F

from lifecycle.jobs.engine.contract import get_resolved_options


def main(argv, ctx):
    args = get_resolved_options(argv, ["clean_bucket", "probe_bucket"])
    probe = args["probe_bucket"]
    orders = ctx.read_clean(args["clean_bucket"], "orders")
    ctx.write_clean(orders, probe, "orders")
    dates = sorted(r["order_date"] for r in orders.select("order_date").distinct().collect())
    newest = sorted(r["order_id"] for r in orders.where(F.col("order_date") == dates[-1]).collect())
    updated, deleted = newest[0], newest[1]
    oldest = [r["order_id"] for r in orders.where(F.col("order_date") == dates[0]).collect()]
    top = orders.agg(F.max("order_id")).collect()[0][0]
    new_row = (orders.where(F.col("order_id") == updated)
               .withColumn("order_id", F.lit(top + 1000).cast("bigint"))
               .withColumn("order_date", F.to_date(F.lit("2030-01-01"))))
    changes = (orders.where(F.col("order_id") == updated).withColumn("status", F.lit("probe"))
               .unionByName(new_row))
    keys = ctx.spark.createDataFrame([(k,) for k in [updated, deleted, top + 1000, *oldest]], "order_id bigint")
    ctx.upsert_clean(changes, keys, probe, "orders")
    ctx.upsert_clean(changes, keys, f"{probe}/fresh", "orders")
    rejected = ctx.spark.createDataFrame(
        [("probe", "r1", "{}", "k1"), ("probe", "r2", "x", "k2")], "source string, reason string, "
        "payload string, raw_key string")
    ctx.write_quarantine(rejected, probe, "quarantine/probe")
    ctx.write_quarantine(rejected, probe, "quarantine/probe")
    # the Spark 3.5 (Glue 5.0) shim of F.lpad gives what PySpark 4's F.lpad gives
    from lifecycle.jobs.engine.spark_context import lpad_by_name

    phones = ctx.spark.createDataFrame([("+1 (555) 123-4567",), ("12",), (None,)], "phone string")
    digits = F.regexp_replace(F.col("phone"), "[^0-9]", "")
    both = phones.select(F.lpad(F.substring(digits, -4, 4), F.length(digits).cast("int"), "*").alias("a"),
                         lpad_by_name(F.substring(digits, -4, 4), F.length(digits).cast("int"), "*").alias("b"))
    ctx.metrics["lpad"] = [[r["a"], r["b"]] for r in both.collect()]
    ctx.metrics["probe"] = {"updated": updated, "deleted": deleted, "oldest": oldest, "added": top + 1000,
                            "dates": [str(d) for d in dates]}
