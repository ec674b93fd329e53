"""Glue job ``clean_events``: Firehose objects of ``user-activity`` → clean events + quarantine.

Arguments: ``--JOB_NAME --raw_bucket --clean_bucket --quarantine_bucket --interval_start``.
Input: ``s3://<raw>/events/YYYY/MM/DD/HH/<object>`` (newline-delimited JSON, possibly
malformed lines) and the clean ``products`` table (written by ``clean_sales`` before).
Output: the Iceberg table ``lake_clean.events`` (partition ``event_date``, the UTC date of event_ts) with every valid event
once, and ``s3://<quarantine>/events/data_0.parquet`` with
every rejected record of the current raw state (``source, reason, payload, raw_key``).

Each rejected record gets one reason, the first that applies, in this order:
``oversized_record`` (longer than ``MAX_RECORD_BYTES``), ``malformed_json`` (not a JSON
object), ``missing_field`` (event_id, event_type or event_ts
absent, null or empty; also a field whose value does not have its contract type, e.g. an
unparseable event_ts or a non-integer product_id), ``unknown_event_type``,
``future_timestamp`` (event_ts more than ``FUTURE_TOLERANCE_HOURS`` after the hour its batch
arrived in, from the Firehose prefix: a clock or producer bug, not a real event),
``unknown_product`` (product_id set but not a clean product), ``negative_quantity``,
``duplicate_event_id`` (of the otherwise valid records with one event_id the first
delivered is kept: the first by raw key — Firehose names objects by arrival time — then line;
a record whose event_id is already in the clean table is a duplicate of it).

A record quarantined as ``unknown_product`` whose product has reached the clean zone since
(the event was ingested before the product's CDC) makes the next run a full one, which
delivers it: no event is lost to the order in which the sources arrive.

Incremental runs (job bookmark): only the raw objects not processed before are read; their
valid events are merged into the partitions of their dates and their rejected records added
to the quarantine table. The first-delivered rule makes this give the same tables as a full
run over the same objects.
"""

from __future__ import annotations

from pyspark.sql import Window
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType

from lifecycle.jobs.columns import typed
from lifecycle.jobs.engine.contract import get_resolved_options

ARGUMENTS = ["JOB_NAME", "raw_bucket", "clean_bucket", "quarantine_bucket", "interval_start"]

EVENT_TYPES = ["page_view", "add_to_cart", "checkout", "purchase"]
# a user-activity event is a few hundred bytes; anything this large is a producer bug
MAX_RECORD_BYTES = 64 * 1024
# records arrive after they happen; a batch can hold a day of backlog, so be generous
FUTURE_TOLERANCE_HOURS = 24
REQUIRED = ["event_id", "event_type", "event_ts"]
# integer fields: digits only (as JSON numbers or strings); 18 digits always fit a bigint
INTEGER_FIELDS = {"customer_id": ("bigint", 18), "product_id": ("bigint", 18),
                  "order_id": ("bigint", 18), "quantity": ("int", 9)}


def parse(lines):
    """Raw lines → one row per record with the typed fields and the raw string values."""
    fields = F.when(F.col("json_ok"), F.from_json(F.col("payload"), MapType(StringType(), StringType())))
    df = lines.withColumn("_m", fields)
    for name in ["event_id", "event_type", "event_ts", "page", *INTEGER_FIELDS]:
        df = df.withColumn(f"_s_{name}", F.col("_m").getItem(name))
    typed = [
        F.col("_s_event_id").alias("event_id"),
        F.col("_s_event_type").alias("event_type"),
        F.expr("try_cast(_s_event_ts AS TIMESTAMP)").alias("event_ts"),
        F.col("_s_page").alias("page"),
    ]
    bad_type = F.lit(False)
    for name, (spark_type, digits) in INTEGER_FIELDS.items():
        raw = F.col(f"_s_{name}")
        ok = raw.rlike(f"^-?[0-9]{{1,{digits}}}$")
        typed.append(F.when(ok, raw.cast(spark_type)).alias(name))
        bad_type = bad_type | (raw.isNotNull() & ~ok)
    ts_bad = F.col("_s_event_ts").isNotNull() & F.expr("try_cast(_s_event_ts AS TIMESTAMP)").isNull()
    return df.select(
        "raw_key", "line_no", "payload", "json_ok", *typed,
        (bad_type | ts_bad).alias("_bad_type"),
    )


def classify(records, products, existing_ids=None):
    """Adds ``reason`` (null for a valid record) to the parsed records. ``existing_ids``: the
    event ids already in the clean table (an incremental run), duplicates of the new ones."""
    known = products.select(F.col("product_id").alias("_known_product_id")).distinct()
    df = records.join(known, records["product_id"] == known["_known_product_id"], "left")
    if existing_ids is not None:
        seen = existing_ids.select(F.col("event_id").alias("_seen_event_id")).distinct()
        df = df.join(seen, df["event_id"] == seen["_seen_event_id"], "left")
    else:
        df = df.withColumn("_seen_event_id", F.lit(None).cast("string"))
    missing = F.lit(False)
    for name in REQUIRED:
        missing = missing | F.col(name).isNull() | (F.trim(F.col(name).cast("string")) == "")
    # the Firehose prefix events/YYYY/MM/DD/HH/ is the arrival hour of the batch
    arrived = F.to_timestamp(
        F.regexp_extract(F.col("raw_key"), r"^events/(\d{4}/\d{2}/\d{2}/\d{2})/", 1), "yyyy/MM/dd/HH")
    too_late_for_now = F.col("event_ts") > arrived + F.expr(f"INTERVAL {FUTURE_TOLERANCE_HOURS + 1} HOURS")
    reason = (
        F.when(F.length(F.col("payload")) > MAX_RECORD_BYTES, F.lit("oversized_record"))
        .when(~F.col("json_ok"), F.lit("malformed_json"))
        .when(missing | F.col("_bad_type"), F.lit("missing_field"))
        .when(~F.col("event_type").isin(*EVENT_TYPES), F.lit("unknown_event_type"))
        .when(arrived.isNotNull() & too_late_for_now, F.lit("future_timestamp"))
        .when(F.col("product_id").isNotNull() & F.col("_known_product_id").isNull(),
              F.lit("unknown_product"))
        .when(F.col("quantity") < 0, F.lit("negative_quantity"))
    )
    df = df.withColumn("_reason", reason)
    first = Window.partitionBy("event_id", "_reason_null").orderBy("raw_key", "line_no")
    duplicate = F.col("_reason").isNull() & ((F.col("_rn") > 1) | F.col("_seen_event_id").isNotNull())
    return (
        df.withColumn("_reason_null", F.col("_reason").isNull())
        .withColumn("_rn", F.row_number().over(first))
        .withColumn("reason", F.when(duplicate, F.lit("duplicate_event_id")).otherwise(F.col("_reason")))
    )


def valid_events(classified):
    return classified.where(F.col("reason").isNull()).select(
        *typed(event_id="string", event_type="string", event_ts="timestamp", customer_id="bigint",
               product_id="bigint", order_id="bigint", page="string", quantity="int"),
        F.to_date(F.col("event_ts")).alias("event_date"),  # UTC: the session time zone
    )


def rejected_events(classified):
    return classified.where(F.col("reason").isNotNull()).select(
        F.lit("events").cast("string").alias("source"),
        *typed(reason="string", payload="string", raw_key="string"),
    )


def main(argv: list[str], ctx) -> None:
    args = get_resolved_options(argv, ARGUMENTS)
    lines = ctx.read_lines(args["raw_bucket"], "events/*/*/*/*/*", name="events")
    products = ctx.read_clean(args["clean_bucket"], "products")
    # events that named a product before its row reached the lake are not lost for good
    ctx.require_no_late_references(args["quarantine_bucket"], "events", "unknown_product", "product_id",
                                   products.select("product_id"))
    existing = (ctx.read_clean(args["clean_bucket"], "events", columns=["event_id"])
                if ctx.incremental else None)
    classified = ctx.persist(classify(parse(lines), products, existing), "classified")
    valid = valid_events(classified)
    ctx.upsert_clean(valid, valid.select("event_id"), args["clean_bucket"], "events")
    ctx.merge_quarantine(rejected_events(classified), args["quarantine_bucket"], "events")
