"""Glue job ``clean_reviews``: the newest DynamoDB export of ``product_reviews`` → clean reviews.

Arguments: ``--JOB_NAME --raw_bucket --clean_bucket``.
Input: ``s3://<raw>/reviews/AWSDynamoDB/<exportId>/data/*.json`` of the newest export that
has its ``manifest-summary.json`` (one ``{"Item": {<attr>: {<type>: value}}}`` per line).
Output: ``s3://<clean>/reviews/data_0.parquet``: one row per (product_id, review_id) in the
export, typed. Lines without both key attributes (impossible in a real export) are dropped
and counted as rejected.
"""

from __future__ import annotations

from pyspark.sql import Window
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType

from lifecycle.jobs.runner import get_resolved_options

ARGUMENTS = ["JOB_NAME", "raw_bucket", "clean_bucket"]

# DynamoDB JSON: {"Item": {attribute: {type descriptor: value}}}
DYNAMODB_ITEM = MapType(StringType(), MapType(StringType(), MapType(StringType(), StringType())))


def _attr(kind: str, name: str):
    return F.col("_item").getItem(name).getItem(kind)


def _integer(name: str, spark_type: str, digits: int):
    raw = _attr("N", name)
    return F.when(raw.rlike(f"^-?[0-9]{{1,{digits}}}$"), raw.cast(spark_type))


def parse_items(lines):
    items = lines.withColumn(
        "_item", F.when(F.col("json_ok"), F.from_json(F.col("payload"), DYNAMODB_ITEM)).getItem("Item")
    ).withColumn("_s_created_at", _attr("S", "created_at"))
    return items.select(
        "raw_key", "line_no",
        _integer("product_id", "bigint", 18).alias("product_id"),
        _attr("S", "review_id").alias("review_id"),
        _integer("customer_id", "bigint", 18).alias("customer_id"),
        _integer("rating", "int", 9).alias("rating"),
        _attr("S", "title").alias("title"),
        _attr("S", "body").alias("body"),
        F.expr("try_cast(_s_created_at AS TIMESTAMP)").alias("created_at"),
    )


def clean_reviews(items):
    first = Window.partitionBy("product_id", "review_id").orderBy("raw_key", "line_no")
    return (
        items.where(F.col("product_id").isNotNull() & F.col("review_id").isNotNull())
        .withColumn("_rn", F.row_number().over(first))
        .where(F.col("_rn") == 1)
        .select(
            F.col("product_id").cast("bigint").alias("product_id"),
            F.col("review_id").cast("string").alias("review_id"),
            F.col("customer_id").cast("bigint").alias("customer_id"),
            F.col("rating").cast("int").alias("rating"),
            F.col("title").cast("string").alias("title"),
            F.col("body").cast("string").alias("body"),
            F.col("created_at").cast("timestamp").alias("created_at"),
        )
    )


def main(argv: list[str], ctx) -> None:
    args = get_resolved_options(argv, ARGUMENTS)
    export = ctx.latest_dynamodb_export(args["raw_bucket"], "reviews/AWSDynamoDB/")
    lines = ctx.read_lines(args["raw_bucket"], f"{export}data/*.json" if export else None, name="reviews")
    written = ctx.write_clean(clean_reviews(parse_items(lines)), args["clean_bucket"], "reviews")
    ctx.add_rejected(ctx.metrics["rows_in"]["reviews"] - written)
