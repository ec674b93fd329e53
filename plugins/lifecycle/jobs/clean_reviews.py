"""Glue job ``clean_reviews``: the newest DynamoDB export + the DynamoDB stream → clean reviews.

Arguments: ``--JOB_NAME --raw_bucket --clean_bucket``.
Input:
- ``s3://<raw>/reviews/AWSDynamoDB/<exportId>/data/*.json`` of the newest export that has its
  ``manifest-summary.json`` (one ``{"Item": {<attr>: {<type>: value}}}`` per line), and the
  manifest's ``exportTime``;
- ``s3://<raw>/reviews/stream/YYYY/MM/DD/HH/*.json``: DynamoDB Streams records, one per line
  as the API returns them (``eventName``, ``dynamodb.Keys``, ``dynamodb.NewImage``,
  ``dynamodb.SequenceNumber``, ``dynamodb.ApproximateCreationDateTime`` as ISO-8601).
Output: the Iceberg table ``lake_clean.reviews`` (``s3://<clean>/reviews/``): one row per
(product_id, review_id) present in the table now, typed.

Replay rule: start from the export; apply every stream record whose
``ApproximateCreationDateTime`` is at or after the export's ``exportTime`` (truncated to the
second, the stream's precision on AWS) in (``ApproximateCreationDateTime``,
``SequenceNumber`` as a big integer) order; per key the last record wins, its ``NewImage``
for INSERT/MODIFY, nothing for REMOVE. Records from before the export that are replayed
anyway are harmless: a key's last record is its state at the end of the stream, and a key
without records since the export is as the export has it. A manifest without
``exportTime`` (or no export at all) lets every stream record apply.

Rejected (counted, not kept): export lines without both key attributes or repeating a key,
and stream lines that are not a usable record (malformed JSON, no keys, an unknown
``eventName``, no creation time or sequence number, an INSERT/MODIFY without ``NewImage``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import Window
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType

from lifecycle.jobs.columns import typed
from lifecycle.jobs.engine.contract import get_resolved_options

ARGUMENTS = ["JOB_NAME", "raw_bucket", "clean_bucket"]
EXPORTS = "reviews/AWSDynamoDB/"
STREAM_PATTERN = "reviews/stream/*/*/*/*/*.json"
EVENT_NAMES = ["INSERT", "MODIFY", "REMOVE"]
SEQUENCE_DIGITS = 40  # DynamoDB Streams sequence numbers have 21 to 40 digits
CONTRACT = ["product_id", "review_id", "customer_id", "rating", "title", "body", "created_at"]

# One JSON level at a time, as a map of strings (a nested object comes back as its JSON
# text). On DuckDB, from_json raises on input that does not fit where Spark returns null,
# so each level is parsed only when it is a JSON object (the line itself: ``json_ok``).
JSON_OBJECT = MapType(StringType(), StringType())


def _obj(text):
    return F.when(text.rlike(r"^\{.*\}$"), F.from_json(text, JSON_OBJECT))


def _value(attrs: str, name: str, kind: str):
    """``<kind>`` value of attribute ``name`` of a DynamoDB-JSON attribute map column."""
    return _obj(F.col(attrs).getItem(name)).getItem(kind)


def _integer(raw, spark_type: str, digits: int):
    return F.when(raw.rlike(f"^-?[0-9]{{1,{digits}}}$"), raw.cast(spark_type))


def _with_attributes(df, keys: str, image: str):
    """The contract's columns from a key map and an item image (DynamoDB JSON maps)."""
    return (
        df.withColumn("product_id", _integer(_value(keys, "product_id", "N"), "bigint", 18))
        .withColumn("review_id", _value(keys, "review_id", "S"))
        .withColumn("customer_id", _integer(_value(image, "customer_id", "N"), "bigint", 18))
        .withColumn("rating", _integer(_value(image, "rating", "N"), "int", 9))
        .withColumn("title", _value(image, "title", "S"))
        .withColumn("body", _value(image, "body", "S"))
        .withColumn("_s_created_at", _value(image, "created_at", "S"))
        .withColumn("created_at", F.expr("try_cast(_s_created_at AS TIMESTAMP)"))
    )


def parse_items(lines):
    """Export lines → ``raw_key, line_no`` and the contract's columns."""
    top = lines.withColumn("_top", F.when(F.col("json_ok"), F.from_json(F.col("payload"), JSON_OBJECT)))
    items = top.withColumn("_item", _obj(F.col("_top").getItem("Item")))
    return _with_attributes(items, "_item", "_item").select("raw_key", "line_no", *CONTRACT)


def parse_stream(lines):
    """Stream lines → the contract's columns (from ``Keys`` and ``NewImage``), ``_event``,
    ``_acdt`` (timestamp), ``_seq`` (zero-padded: sorts as a big integer) and ``_usable``."""
    top = lines.withColumn("_top", F.when(F.col("json_ok"), F.from_json(F.col("payload"), JSON_OBJECT)))
    dyn = top.withColumn("_dyn", _obj(F.col("_top").getItem("dynamodb")))
    parts = (
        dyn.withColumn("_event", F.col("_top").getItem("eventName"))
        .withColumn("_s_acdt", F.col("_dyn").getItem("ApproximateCreationDateTime"))
        .withColumn("_s_seq", F.col("_dyn").getItem("SequenceNumber"))
        .withColumn("_keys", _obj(F.col("_dyn").getItem("Keys")))
        .withColumn("_image", _obj(F.col("_dyn").getItem("NewImage")))
    )
    records = _with_attributes(parts, "_keys", "_image").withColumn(
        "_acdt", F.expr("try_cast(_s_acdt AS TIMESTAMP)"))
    seq_ok = F.col("_s_seq").rlike(f"^[0-9]{{1,{SEQUENCE_DIGITS}}}$")
    usable = (
        F.col("json_ok") & F.col("product_id").isNotNull() & F.col("review_id").isNotNull()
        & F.col("_event").isin(*EVENT_NAMES) & F.col("_acdt").isNotNull() & seq_ok
        & ((F.col("_event") == "REMOVE") | F.col("_image").isNotNull())
    )
    return records.select(
        "raw_key", "line_no", *CONTRACT, "_event", "_acdt",
        F.when(seq_ok, F.lpad(F.col("_s_seq"), SEQUENCE_DIGITS, "0")).alias("_seq"),
        F.coalesce(usable, F.lit(False)).alias("_usable"),
    )


def export_state(items):
    """One row per key of the export (the first line of a repeated key)."""
    first = Window.partitionBy("product_id", "review_id").orderBy("raw_key", "line_no")
    return (
        items.where(F.col("product_id").isNotNull() & F.col("review_id").isNotNull())
        .withColumn("_rn", F.row_number().over(first))
        .where(F.col("_rn") == 1)
        .drop("_rn")
    )


def replay(state, changes, since: datetime | None):
    """``state`` (the export) with ``changes`` (parsed stream records) applied."""
    applied = changes.where(F.col("_usable"))
    if since is not None:
        applied = applied.where(
            F.col("_acdt") >= F.expr(f"CAST('{since:%Y-%m-%d %H:%M:%S}' AS TIMESTAMP)"))
    base = state.select(
        "raw_key", "line_no", *CONTRACT, F.lit(0).alias("_phase"),
        F.lit(None).cast("timestamp").alias("_acdt"), F.lit("").alias("_seq"),
        F.lit(False).alias("_deleted"))
    delta = applied.select(
        "raw_key", "line_no", *CONTRACT, F.lit(1).alias("_phase"), "_acdt", "_seq",
        (F.col("_event") == "REMOVE").alias("_deleted"))
    last = Window.partitionBy("product_id", "review_id").orderBy(
        F.col("_phase").desc(), F.col("_acdt").desc(), F.col("_seq").desc(),
        F.col("raw_key").desc(), F.col("line_no").desc())
    return (
        base.unionByName(delta)
        .withColumn("_rn", F.row_number().over(last))
        .where((F.col("_rn") == 1) & ~F.col("_deleted"))
        .select(
            *typed(product_id="bigint", review_id="string", customer_id="bigint", rating="int",
                   title="string", body="string", created_at="timestamp"),
        )
    )


def export_time(ctx, bucket: str, export: str | None) -> datetime | None:
    """The export's ``exportTime`` (manifest), truncated to the second; None if absent."""
    if export is None:
        return None
    manifest = ctx.read_lines(bucket, f"{export}manifest-summary.json", name="reviews_manifest")
    for metric in ("rows_in", "files_in"):  # metadata, not records
        ctx.metrics[metric].pop("reviews_manifest", None)
    rows = manifest.where(F.col("json_ok")).select(
        F.from_json(F.col("payload"), JSON_OBJECT).getItem("exportTime").alias("t")).collect()
    value = rows[0]["t"] if rows else None
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{export}manifest-summary.json: exportTime {value!r} is not ISO-8601") from exc
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return ts.replace(microsecond=0)


def main(argv: list[str], ctx) -> None:
    """A full run replays the stream on the newest export; an incremental run (job bookmark,
    same export) applies the stream objects that are new since on the clean table."""
    args = get_resolved_options(argv, ARGUMENTS)
    raw = args["raw_bucket"]
    export = ctx.latest_dynamodb_export(raw, EXPORTS)  # a newer export: a full run
    if ctx.incremental:
        stream_lines = ctx.read_lines(raw, STREAM_PATTERN, name="review_stream")
        if not ctx.metrics["files_in"]["review_stream"]:
            return  # nothing new: the clean table is current
        state = ctx.read_clean(args["clean_bucket"], "reviews").select(
            F.lit("").alias("raw_key"), F.lit(0).cast("bigint").alias("line_no"), *CONTRACT)
        changes = ctx.persist(parse_stream(stream_lines), "review_stream")
        ctx.add_rejected(changes.where(~F.col("_usable")).count())
        ctx.write_clean(replay(state, changes, None), args["clean_bucket"], "reviews")
        return
    lines = ctx.read_lines(raw, f"{export}data/*.json" if export else None, name="reviews")
    state = ctx.persist(export_state(parse_items(lines)), "review_export")
    stream_lines = ctx.read_lines(raw, STREAM_PATTERN, name="review_stream")
    rejected = ctx.metrics["rows_in"]["reviews"] - state.count()
    if ctx.metrics["files_in"]["review_stream"]:
        changes = ctx.persist(parse_stream(stream_lines), "review_stream")
        rejected += changes.where(~F.col("_usable")).count()
        current = replay(state, changes, export_time(ctx, raw, export))
    else:  # nothing streamed yet: the export is the table
        for metric in ("rows_in", "files_in"):
            ctx.metrics[metric].pop("review_stream", None)
        current = replay(state, parse_stream(stream_lines), None)
    ctx.write_clean(current, args["clean_bucket"], "reviews")
    ctx.add_rejected(rejected)
