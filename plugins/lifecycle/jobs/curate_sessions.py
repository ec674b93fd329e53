"""Glue job ``curate_sessions``: clean events → clean ``sessions`` (30-minute inactivity rule).

Arguments: ``--JOB_NAME --clean_bucket``.
Input: the clean ``events`` Iceberg table (its data files changed since the bookmark) — valid,
deduplicated events only, late ones included (``clean_events`` runs first, see
``runner.CLEAN_JOBS``).
Output: the Iceberg table ``lake_clean.sessions`` (partition ``session_date``, the UTC date of session_start), one row per
session (contract in ``lifecycle.lake.catalog.CLEAN_TABLES`` and docs/lake-layout.md):
``session_id, customer_id, session_start, session_end, event_count, page_views,
add_to_carts, checkouts, purchases, converted`` and the partition ``session_date``.

The session rule lives here and only here (the warehouse reads it from ``landing.sessions``):

- A customer's events, ordered by ``event_ts`` then ``event_id`` (ties), are split where the
  gap to the previous event is MORE than 30 minutes: exactly 30 minutes apart is still the
  same session, 30 minutes and a microsecond is a new one (interval arithmetic on the
  timestamps, no rounding to seconds).
- An anonymous event (``customer_id`` null) is its own one-event session: nothing ties two
  anonymous events to one visitor, so this never merges visitors (it over-counts anonymous
  browsing sessions).
- ``session_id``: ``c<customer_id>-<n>`` with n = 1, 2, ... the customer's sessions in time
  order, or ``a-<event_id>`` for an anonymous event — the ids the warehouse always had.
  It is a function of the customer's current clean events, so it is deterministic; a late
  event that merges or inserts sessions renumbers that customer's later sessions, and every
  consumer is rebuilt from the same snapshot (the warehouse reloads and rebuilds in full).
- ``session_start`` / ``session_end``: first and last event_ts (a one-event session has
  start = end); ``session_date`` = UTC date of ``session_start`` (a session crossing
  midnight belongs to the day it started); counts per event type; ``converted`` = the
  session has a purchase.

A full run rebuilds all sessions from all clean events (the interval is not a filter):
a late or out-of-order event can extend a session, merge two, or move a session's start
to an earlier day. An incremental run (job bookmark) gets the same right with less work:
the customers with events in the event partitions rewritten (or removed) since the last
run, or with a session over one of those days, have all their sessions rebuilt from all
their events (a late event can renumber a customer's later sessions), and those replace the
customer's old sessions; anonymous sessions of those days are rebuilt too; every other
session stays.
Rerunning on the same events gives byte-identical objects.
"""

from __future__ import annotations

from pyspark.sql import Window
from pyspark.sql import functions as F

from lifecycle.jobs.columns import typed
from lifecycle.jobs.engine.contract import get_resolved_options

ARGUMENTS = ["JOB_NAME", "clean_bucket"]

# a gap of MORE than this between two events of a customer starts a new session
INACTIVITY_MINUTES = 30
EVENT_COUNTS = {"page_views": "page_view", "add_to_carts": "add_to_cart",
                "checkouts": "checkout", "purchases": "purchase"}


def sessionize(events):
    """Clean events → the same events with ``session_id`` (the rule of the module docstring)."""
    by_customer = Window.partitionBy("customer_id").orderBy("event_ts", "event_id")
    running = by_customer.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    previous = F.lag("event_ts").over(by_customer)
    gap_exceeded = F.col("event_ts") > F.col("_previous_ts") + F.expr(f"INTERVAL {INACTIVITY_MINUTES} MINUTES")
    starts = F.when(F.col("_previous_ts").isNull() | gap_exceeded, F.lit(1)).otherwise(F.lit(0))
    session_id = (
        F.when(F.col("customer_id").isNull(), F.concat(F.lit("a-"), F.col("event_id")))
        .otherwise(F.concat(F.lit("c"), F.col("customer_id").cast("string"), F.lit("-"),
                            F.col("_session_number").cast("bigint").cast("string")))
    )
    return (
        events.select("event_id", "event_type", "event_ts", "customer_id")
        .withColumn("_previous_ts", previous)
        .withColumn("_is_start", starts)
        # anonymous events share the null partition; their number is unused (own session each)
        .withColumn("_session_number", F.sum("_is_start").over(running))
        .withColumn("session_id", session_id)
    )


def sessions(sessionized):
    """One row per session, in the contract's column order and types."""
    counts = [F.sum(F.when(F.col("event_type") == t, F.lit(1)).otherwise(F.lit(0))).alias(name)
              for name, t in EVENT_COUNTS.items()]
    grouped = sessionized.groupBy("session_id", "customer_id").agg(
        F.min("event_ts").alias("session_start"),
        F.max("event_ts").alias("session_end"),
        F.count(F.lit(1)).alias("event_count"),
        *counts,
    )
    return grouped.select(
        *typed(session_id="string", customer_id="bigint", session_start="timestamp",
               session_end="timestamp"),
        # F.sum gives HUGEINT on DuckDB (a double in Parquet): cast every count explicitly
        F.col("event_count").cast("bigint").alias("event_count"),
        *[F.col(name).cast("bigint").alias(name) for name in EVENT_COUNTS],
        (F.col("purchases") > 0).alias("converted"),
        F.to_date(F.col("session_start")).alias("session_date"),  # UTC: the session time zone
    )


def main(argv: list[str], ctx) -> None:
    args = get_resolved_options(argv, ARGUMENTS)
    clean = args["clean_bucket"]
    changed = ctx.read_clean(clean, "events", changed_only=True)  # every event in a full run
    if not ctx.incremental:
        ctx.write_clean(sessions(sessionize(changed)), clean, "sessions")
        return
    dates = ctx.changed_partition_values("events")
    existing = ctx.read_clean(clean, "sessions")
    # the customers whose sessions can change: those with events in a rewritten partition now,
    # and those with a session over one of its days (an event may have left it)
    on_changed_day = F.lit(False)
    for d in dates:
        day = F.lit(d).cast("date")
        on_changed_day = on_changed_day | (
            (F.to_date(F.col("session_start")) <= day) & (F.to_date(F.col("session_end")) >= day))
    customers = changed.where(F.col("customer_id").isNotNull()).select(F.col("customer_id").alias("_affected")) \
        .unionByName(existing.where(F.col("customer_id").isNotNull() & on_changed_day)
                     .select(F.col("customer_id").alias("_affected"))).distinct()
    customers = ctx.persist(customers, "affected")
    events = ctx.read_clean(clean, "events", where_in=("customer_id", customers))
    of_affected = events.join(customers, F.col("customer_id") == F.col("_affected"), "inner").drop("_affected")
    touched = ctx.persist(of_affected.unionByName(changed.where(F.col("customer_id").isNull())), "touched")
    rebuilt = ctx.persist(sessions(sessionize(touched)), "rebuilt")
    old = existing.join(customers, F.col("customer_id") == F.col("_affected"), "inner").select("session_id") \
        .unionByName(existing.where(F.col("customer_id").isNull() & on_changed_day).select("session_id"))
    ctx.upsert_clean(rebuilt, old.unionByName(rebuilt.select("session_id")), clean, "sessions")
