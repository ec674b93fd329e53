"""Glue job ``curate_features``: clean tables → the curated zone's ML features and a training set.

Arguments: ``--JOB_NAME --clean_bucket --curated_bucket``.
Input: the clean tables ``customers, products, orders, order_items, events, sessions,
reviews`` (written by the clean jobs, which run first: ``runner.JOBS``).
Output (contracts in ``lifecycle.lake.catalog.CURATED_TABLES``, Glue database ``lake_curated``):

- ``s3://<curated>/product_features/``: one row per product — counted orders (status not
  ``cancelled``, as the warehouse counts them), units, revenue (quantity x the line's price),
  distinct buyers, first/last day sold, page views and add-to-carts from the events and the
  view→cart rate, review count and mean rating.
- ``s3://<curated>/customer_features/``: one row per customer — counted orders, items,
  revenue, mean order value, first/last order time, days since the last order, sessions and
  converted sessions, reviews and mean rating. Only PII-free columns: the clean customers
  table is already masked and no masked value is carried over.
- ``s3://<curated>/training_repeat_purchase/``: the training set of a next-day
  repeat-purchase model. ``as_of_date`` is the newest order day in the data, the cutoff the
  day before it: features of every customer with a counted order up to the cutoff, computed
  from data up to the cutoff only (no leakage), and the label ``label_repurchase``: the
  customer placed a counted order after the cutoff.

Every output is a function of the clean tables only (``as_of_date`` comes from the data, not
the clock), so a run on unchanged inputs changes nothing; an incremental run (job bookmark)
whose clean inputs did not change skips the work. When they changed, the aggregates are
rebuilt in full: they are small (a row per product or customer) and a full rebuild keeps
them exact.
"""

from __future__ import annotations

from datetime import timedelta

from pyspark.sql import functions as F

from lifecycle.jobs.columns import typed
from lifecycle.jobs.engine.contract import get_resolved_options

ARGUMENTS = ["JOB_NAME", "clean_bucket", "curated_bucket"]
INPUTS = ["customers", "products", "orders", "order_items", "events", "sessions", "reviews"]
LABEL_DAYS = 1  # the label window after the cutoff, in days


def _count_if(condition):
    return F.sum(F.when(condition, F.lit(1)).otherwise(F.lit(0)))


def _date(value):
    return F.lit(value.isoformat() if value else None).cast("date")


def counted_lines(orders, items):
    """Order lines of counted (not cancelled) orders with the order's customer, time and date."""
    counted = orders.where(F.col("status") != "cancelled").select(
        F.col("order_id").alias("o_id"), "customer_id", "order_ts", "order_date")
    lines = items.select("order_id", "product_id", "quantity", "unit_price")  # not its order_date
    return lines.join(counted, F.col("order_id") == F.col("o_id"), "inner").select(
        "order_id", "product_id", "quantity", "unit_price", "customer_id", "order_ts", "order_date",
        (F.col("quantity") * F.col("unit_price")).alias("line_revenue"))


def product_features(products, lines, events, reviews, as_of):
    sales = lines.groupBy("product_id").agg(
        F.countDistinct("order_id").alias("orders"), F.sum("quantity").alias("units_sold"),
        F.sum("line_revenue").alias("revenue"), F.countDistinct("customer_id").alias("buyers"),
        F.min("order_date").alias("first_sold_date"), F.max("order_date").alias("last_sold_date"))
    behaviour = events.where(F.col("product_id").isNotNull()).groupBy("product_id").agg(
        _count_if(F.col("event_type") == "page_view").alias("views"),
        _count_if(F.col("event_type") == "add_to_cart").alias("add_to_carts"))
    rated = reviews.groupBy("product_id").agg(F.count(F.lit(1)).alias("reviews"),
                                              F.avg("rating").alias("avg_rating"))
    base = products.select("product_id", "category", "unit_price")
    joined = (base.join(sales.withColumnRenamed("product_id", "s_pid"), F.col("product_id") == F.col("s_pid"), "left")
              .join(behaviour.withColumnRenamed("product_id", "b_pid"), F.col("product_id") == F.col("b_pid"), "left")
              .join(rated.withColumnRenamed("product_id", "r_pid"), F.col("product_id") == F.col("r_pid"), "left"))
    views = F.coalesce(F.col("views"), F.lit(0))
    return joined.select(
        *typed(product_id="bigint", category="string", unit_price="decimal(10,2)"),
        F.coalesce(F.col("orders"), F.lit(0)).cast("bigint").alias("orders"),
        F.coalesce(F.col("units_sold"), F.lit(0)).cast("bigint").alias("units_sold"),
        F.coalesce(F.col("revenue"), F.lit(0)).cast("decimal(18,2)").alias("revenue"),
        F.coalesce(F.col("buyers"), F.lit(0)).cast("bigint").alias("buyers"),
        views.cast("bigint").alias("views"),
        F.coalesce(F.col("add_to_carts"), F.lit(0)).cast("bigint").alias("add_to_carts"),
        F.when(views > 0, F.coalesce(F.col("add_to_carts"), F.lit(0)).cast("double") / views.cast("double"))
        .cast("double").alias("view_to_cart_rate"),
        F.coalesce(F.col("reviews"), F.lit(0)).cast("bigint").alias("reviews"),
        *typed(avg_rating="double", first_sold_date="date", last_sold_date="date"),
        _date(as_of).alias("as_of_date"),
    )


def _order_totals(lines, orders):
    """Per customer: counted orders, items, revenue, first/last order time."""
    counted = orders.where(F.col("status") != "cancelled")
    per_order = counted.groupBy("customer_id").agg(
        F.count(F.lit(1)).alias("orders"), F.min("order_ts").alias("first_order_ts"),
        F.max("order_ts").alias("last_order_ts"))
    per_line = lines.groupBy("customer_id").agg(
        F.sum("quantity").alias("items"), F.sum("line_revenue").alias("revenue"),
        F.countDistinct("product_id").alias("distinct_products"))
    return per_order.join(per_line.withColumnRenamed("customer_id", "l_cid"),
                          F.col("customer_id") == F.col("l_cid"), "left").drop("l_cid")


def customer_features(customers, orders, lines, sessions, reviews, as_of):
    totals = _order_totals(lines, orders).withColumnRenamed("customer_id", "t_cid")
    visits = sessions.where(F.col("customer_id").isNotNull()).groupBy("customer_id").agg(
        F.count(F.lit(1)).alias("sessions"), _count_if(F.col("converted")).alias("converted_sessions")
    ).withColumnRenamed("customer_id", "v_cid")
    rated = reviews.groupBy("customer_id").agg(
        F.count(F.lit(1)).alias("reviews"), F.avg("rating").alias("avg_rating")
    ).withColumnRenamed("customer_id", "r_cid")
    joined = (customers.select("customer_id", "country")
              .join(totals, F.col("customer_id") == F.col("t_cid"), "left")
              .join(visits, F.col("customer_id") == F.col("v_cid"), "left")
              .join(rated, F.col("customer_id") == F.col("r_cid"), "left"))
    orders_n = F.coalesce(F.col("orders"), F.lit(0))
    revenue = F.coalesce(F.col("revenue"), F.lit(0))
    return joined.select(
        *typed(customer_id="bigint", country="string"),
        orders_n.cast("bigint").alias("orders"),
        F.coalesce(F.col("items"), F.lit(0)).cast("bigint").alias("items"),
        revenue.cast("decimal(18,2)").alias("revenue"),
        F.when(orders_n > 0, revenue.cast("double") / orders_n.cast("double")).cast("double")
        .alias("avg_order_value"),
        *typed(first_order_ts="timestamp", last_order_ts="timestamp"),
        F.datediff(_date(as_of), F.to_date(F.col("last_order_ts"))).cast("int").alias("days_since_last_order"),
        F.coalesce(F.col("sessions"), F.lit(0)).cast("bigint").alias("sessions"),
        F.coalesce(F.col("converted_sessions"), F.lit(0)).cast("bigint").alias("converted_sessions"),
        F.coalesce(F.col("reviews"), F.lit(0)).cast("bigint").alias("reviews"),
        F.col("avg_rating").cast("double").alias("avg_rating"),
        _date(as_of).alias("as_of_date"),
    )


def training_repeat_purchase(orders, lines, sessions, as_of):
    """Features up to the cutoff (the day before ``as_of``) and the label after it."""
    cutoff = as_of - timedelta(days=LABEL_DAYS) if as_of else None
    before = F.col("order_date") <= _date(cutoff)
    history = _order_totals(lines.where(before), orders.where(before))
    later = orders.where((F.col("status") != "cancelled") & ~before).select(
        F.col("customer_id").alias("later_cid")).distinct()
    visits = sessions.where(F.col("customer_id").isNotNull() & (F.col("session_date") <= _date(cutoff))
                            ).groupBy("customer_id").agg(F.count(F.lit(1)).alias("sessions_before")
                                                         ).withColumnRenamed("customer_id", "v_cid")
    joined = (history.join(later, F.col("customer_id") == F.col("later_cid"), "left")
              .join(visits, F.col("customer_id") == F.col("v_cid"), "left"))
    return joined.where(F.col("customer_id").isNotNull()).select(
        F.col("customer_id").cast("bigint").alias("customer_id"),
        _date(cutoff).alias("cutoff_date"),
        F.col("orders").cast("bigint").alias("orders_before"),
        F.coalesce(F.col("revenue"), F.lit(0)).cast("decimal(18,2)").alias("revenue_before"),
        F.coalesce(F.col("distinct_products"), F.lit(0)).cast("bigint").alias("distinct_products_before"),
        F.datediff(_date(cutoff), F.to_date(F.col("last_order_ts"))).cast("int").alias("days_since_last_order"),
        F.coalesce(F.col("sessions_before"), F.lit(0)).cast("bigint").alias("sessions_before"),
        F.col("later_cid").isNotNull().alias("label_repurchase"),
    )


def main(argv: list[str], ctx) -> None:
    args = get_resolved_options(argv, ARGUMENTS)
    clean, curated = args["clean_bucket"], args["curated_bucket"]
    if ctx.clean_inputs_unchanged(clean, INPUTS):
        return
    t = {name: ctx.read_clean(clean, name) for name in INPUTS}
    as_of = t["orders"].agg(F.max("order_date").alias("d")).collect()[0]["d"]
    lines = ctx.persist(counted_lines(t["orders"], t["order_items"]), "counted_lines")
    ctx.write_clean(product_features(t["products"], lines, t["events"], t["reviews"], as_of),
                    curated, "product_features")
    ctx.write_clean(customer_features(t["customers"], t["orders"], lines, t["sessions"], t["reviews"], as_of),
                    curated, "customer_features")
    ctx.write_clean(training_repeat_purchase(t["orders"], lines, t["sessions"], as_of),
                    curated, "training_repeat_purchase")
