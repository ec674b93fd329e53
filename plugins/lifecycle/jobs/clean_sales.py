"""Glue job ``clean_sales``: the DMS files of the ``sales`` database → current-state clean tables.

Arguments: ``--JOB_NAME --raw_bucket --clean_bucket --pii_salt_secret``.
Input: ``s3://<raw>/sales/public/<table>/`` for customers, products, orders, order_items
(``LOAD*.parquet`` + CDC ``YYYYMMDD-HHMMSSffffff-<lsn>.parquet`` with ``Op`` I/U/D) and the
Secrets Manager secret named by ``--pii_salt_secret``.
Output (full current state, docs/lake-layout.md; Iceberg tables of ``lake_clean`` under
``s3://<clean>/``, one commit each): ``customers`` (PII masked:
salted SHA-256 of the lower-cased email, first letter of the name, last 4 phone digits),
``products/``, ``orders/order_date=<UTC date of order_ts>/``, ``order_items/order_date=<the
order's date>/`` (items of orders that no longer exist are dropped).

``order_status_history/order_date=<the order's date>/``: SCD type 2 of each order's status
(valid_from/valid_to/is_current), replayed from the same change rows; history starts at the
full load.

Current state of a table: LOAD rows, then CDC files in name order, rows in file order; the
last row per key wins; a key whose last row is a ``D`` is gone.

Schema evolution: a column that appears in the source (a new nullable column) flows
through to the clean table after the contract's columns, and from there to the Glue
Catalog and the warehouse. On ``customers`` new columns are held back (reported, not
written): a new customer column may be personal data and needs a masking decision first.
"""

from __future__ import annotations

from pyspark.sql import Window
from pyspark.sql import functions as F

from lifecycle.jobs.columns import typed
from lifecycle.jobs.engine.contract import get_resolved_options

ARGUMENTS = ["JOB_NAME", "raw_bucket", "clean_bucket", "pii_salt_secret"]

# source table -> (key columns, source columns with logical types), as DMS delivers them
SOURCES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "customers": (("customer_id",), {
        "customer_id": "bigint", "email": "string", "full_name": "string", "phone": "string",
        "country": "string", "created_at": "timestamptz", "updated_at": "timestamptz"}),
    "products": (("product_id",), {
        "product_id": "bigint", "sku": "string", "name": "string", "category": "string",
        "description": "string", "unit_price": "decimal(10,2)", "active": "boolean",
        "updated_at": "timestamptz"}),
    "orders": (("order_id",), {
        "order_id": "bigint", "customer_id": "bigint", "status": "string",
        "order_ts": "timestamptz", "updated_at": "timestamptz"}),
    "order_items": (("order_id", "line_no"), {
        "order_id": "bigint", "line_no": "int", "product_id": "bigint", "quantity": "int",
        "unit_price": "decimal(10,2)"}),
}


def _replay_order(keys: tuple[str, ...]):
    return (F.when(F.col("_file").startswith("LOAD"), F.lit(0)).otherwise(F.lit(1)),
            Window.partitionBy(*keys).orderBy(F.col("_phase"), F.col("_file"), F.col("_row")))


def new_columns(changes, declared: dict[str, str]) -> list[str]:
    """Source columns that are not in the contract (additive schema change)."""
    known = {c.lower() for c in declared} | {"op"}
    return [c for c in changes.columns if c.lower() not in known and not c.startswith("_")]


def order_status_history(changes):
    """SCD type 2 of order status: one row per status an order had, with its validity.

    A version starts at the row's ``updated_at`` (the source's business time) and ends where
    the next version starts; a delete closes the last version at its commit time. Rows that
    repeat the previous status (other columns changed) are not new versions.
    """
    phase, ordered = _replay_order(("order_id",))
    steps = (
        changes.withColumn("_phase", phase)
        .withColumn("_op", F.coalesce(F.col("Op"), F.lit("I")))
        .withColumn("_prev_status", F.lag("status").over(ordered))
        .withColumn("_prev_op", F.lag("_op").over(ordered))
    )
    versions = steps.where(
        (F.col("_op") == "D")
        | F.col("_prev_status").isNull()
        | (F.col("_prev_op") == "D")
        | (F.col("status") != F.col("_prev_status"))
    )
    ordered_v = Window.partitionBy("order_id").orderBy(F.col("_phase"), F.col("_file"), F.col("_row"))
    with_next = (
        versions.withColumn("_next_op", F.lead("_op").over(ordered_v))
        .withColumn("_next_from", F.lead(F.coalesce(F.col("updated_at"), F.col("_commit_ts"))).over(ordered_v))
        .withColumn("_next_commit", F.lead("_commit_ts").over(ordered_v))
    )
    return (
        with_next.where(F.col("_op") != "D")
        .select(
            *typed(order_id="bigint", status="string"),
            F.col("updated_at").cast("timestamp").alias("valid_from"),
            F.when(F.col("_next_op") == "D", F.col("_next_commit"))
            .otherwise(F.col("_next_from")).cast("timestamp").alias("valid_to"),
            F.col("_next_op").isNull().alias("is_current"),
            F.col("_op").cast("string").alias("change_op"),
            F.to_date(F.col("order_ts")).alias("order_date"),  # the order's: I/U rows carry it
        )
    )


def without_redeliveries(changes):
    """Drop change rows delivered twice: the same row (every column, ``Op`` and commit time)
    at the same position of a batch, in a later file. DMS and our CDC writer deliver at least
    once; a batch written again under another name would otherwise replay its changes twice,
    interleaved with themselves (the status history then gets versions that never were)."""
    same = [c for c in changes.columns if c not in ("_file",)]
    first = Window.partitionBy(*same).orderBy(F.col("_file"))
    return changes.withColumn("_copy", F.row_number().over(first)).where(F.col("_copy") == 1).drop("_copy")


def current_state(changes, keys: tuple[str, ...], columns: list[str]):
    """Replay DMS change rows (``Op``, ``_file``, ``_row``) into the table's current rows."""
    phase = F.when(F.col("_file").startswith("LOAD"), F.lit(0)).otherwise(F.lit(1))
    newest_first = Window.partitionBy(*keys).orderBy(
        F.col("_phase").desc(), F.col("_file").desc(), F.col("_row").desc()
    )
    return (
        changes.withColumn("_phase", phase)
        .withColumn("_rn", F.row_number().over(newest_first))
        # a LOAD file written without IncludeOpForFullLoad has no Op: those rows are inserts
        .where((F.col("_rn") == 1) & (F.coalesce(F.col("Op"), F.lit("I")) != "D"))
        .select(*columns)
    )


def mask_customers(customers, salt: str):
    digits = F.regexp_replace(F.col("phone"), "[^0-9]", "")
    return customers.select(
        F.col("customer_id").cast("bigint").alias("customer_id"),
        F.sha2(F.concat(F.lit(salt), F.lower(F.col("email"))), 256).alias("email_hash"),
        F.when(F.col("full_name").isNotNull(),
               F.concat(F.substring(F.col("full_name"), 1, 1), F.lit("***"))).alias("full_name_masked"),
        F.lpad(F.substring(digits, -4, 4), F.length(digits).cast("int"), "*").alias("phone_masked"),
        *typed(country="string", created_at="timestamp", updated_at="timestamp"),
    )


def clean_products(products, extras=()):
    return products.select(
        *typed(product_id="bigint", sku="string", name="string", category="string", description="string",
               unit_price="decimal(10,2)", active="boolean", updated_at="timestamp"),
        *[F.col(c) for c in extras],
    )


def clean_orders(orders, extras=()):
    return orders.select(
        *typed(order_id="bigint", customer_id="bigint", status="string", order_ts="timestamp",
               updated_at="timestamp"),
        *[F.col(c) for c in extras],
        F.to_date(F.col("order_ts")).alias("order_date"),  # UTC: the session time zone
    )


def clean_order_items(items, orders, extras=()):
    order_dates = orders.select(F.col("order_id").alias("o_order_id"), F.col("order_date"))
    return items.join(order_dates, items["order_id"] == order_dates["o_order_id"], "inner").select(
        *typed(order_id="bigint", line_no="int", product_id="bigint", quantity="int",
               unit_price="decimal(10,2)"),
        *[items[c] for c in extras],
        F.col("order_date"),
    )


def history_seed(current):
    """The current versions of the changed orders as change rows (for an incremental run): the
    new changes then extend or close them exactly as a full replay would."""
    return current.select(
        F.col("change_op").alias("Op"), F.lit(None).cast("timestamp").alias("_commit_ts"),
        F.col("order_id"), F.lit(None).cast("bigint").alias("customer_id"), F.col("status"),
        # midnight UTC of the order's date: to_date gives the partition back
        F.col("order_date").cast("timestamp").alias("order_ts"), F.col("valid_from").alias("updated_at"),
        # sorts before every CDC file (and is not a LOAD file): replayed first
        F.lit("").alias("_file"), F.lit(0).cast("bigint").alias("_row"),
    )


def _keys(changes, keys: tuple[str, ...]):
    return changes.select(*keys).distinct()


def main(argv: list[str], ctx) -> None:
    """A full run replays every DMS file; an incremental run (job bookmark) replays the new
    CDC files only and merges the changed keys into the clean tables."""
    args = get_resolved_options(argv, ARGUMENTS)
    raw, clean = args["raw_bucket"], args["clean_bucket"]
    state, extras, changes = {}, {}, {}
    for table, (keys, columns) in SOURCES.items():
        changes[table] = without_redeliveries(
            ctx.read_dms(raw, f"sales/public/{table}", columns, name=table))
        if table == "orders":
            # read three times (current state, status history, changed keys): computed once.
            # Measured at 1M orders: the two window passes were a third of the job, thrice.
            changes[table] = ctx.persist(changes[table], "order_changes")
        extras[table] = new_columns(changes[table], columns)
        state[table] = current_state(changes[table], keys, list(columns) + extras[table])

    ctx.hold_back_columns("customers", extras["customers"])
    salt = ctx.get_secret(args["pii_salt_secret"])
    ctx.upsert_clean(mask_customers(state["customers"], salt), _keys(changes["customers"], ("customer_id",)),
                     clean, "customers")
    ctx.upsert_clean(clean_products(state["products"], extras["products"]),
                     _keys(changes["products"], ("product_id",)), clean, "products")
    orders = ctx.persist(clean_orders(state["orders"], extras["orders"]), "orders")  # also dates the items
    changed_orders = _keys(changes["orders"], ("order_id",))
    ctx.upsert_clean(orders, changed_orders, clean, "orders")
    if not ctx.incremental:
        ctx.write_clean(clean_order_items(state["order_items"], orders, extras["order_items"]),
                        clean, "order_items")
        ctx.write_clean(order_status_history(changes["orders"]), clean, "order_status_history")
        return
    # the order date of an item comes from its order, which may be in an earlier batch; the
    # items of an order deleted in this batch go with it
    touched_orders = ctx.persist(changed_orders.unionByName(
        _keys(changes["order_items"], ("order_id",))).distinct(), "touched_orders")
    all_orders = ctx.read_clean(clean, "orders", where_in=("order_id", touched_orders))
    deleted = ctx.persist(changed_orders.join(
        all_orders.select(F.col("order_id").alias("_live")), F.col("order_id") == F.col("_live"), "left_anti"),
        "deleted_orders")
    gone_items = ctx.read_clean(clean, "order_items", columns=["order_id", "line_no"],
                                where_in=("order_id", deleted))
    ctx.upsert_clean(clean_order_items(state["order_items"], all_orders, extras["order_items"]),
                     _keys(changes["order_items"], ("order_id", "line_no")).unionByName(gone_items),
                     clean, "order_items")
    # the versions that can change: the current one of each changed order (re-emitted from
    # the seed) and the new ones; closed versions stay as they are
    current = ctx.read_clean(clean, "order_status_history",
                             where_in=("order_id", changed_orders)).where(F.col("is_current"))
    seed = history_seed(current)
    # materialized: the replay's window plan then starts from one table, not from the join
    replayed = ctx.persist(order_status_history(ctx.persist(seed.unionByName(
        changes["orders"].select(*seed.columns)), "history_input")), "history_replayed")
    ctx.upsert_clean(replayed, current.select("order_id", "valid_from").unionByName(
        replayed.select("order_id", "valid_from")), clean, "order_status_history")
