"""Glue job ``clean_sales``: the DMS files of the ``sales`` database → current-state clean tables.

Arguments: ``--JOB_NAME --raw_bucket --clean_bucket --pii_salt_secret``.
Input: ``s3://<raw>/sales/public/<table>/`` for customers, products, orders, order_items
(``LOAD*.parquet`` + CDC ``YYYYMMDD-HHMMSSffffff-<lsn>.parquet`` with ``Op`` I/U/D) and the
Secrets Manager secret named by ``--pii_salt_secret``.
Output (full current state, docs/lake-layout.md): ``s3://<clean>/customers/`` (PII masked:
salted SHA-256 of the lower-cased email, first letter of the name, last 4 phone digits),
``products/``, ``orders/order_date=<UTC date of order_ts>/``, ``order_items/order_date=<the
order's date>/`` (items of orders that no longer exist are dropped).

Current state of a table: LOAD rows, then CDC files in name order, rows in file order; the
last row per key wins; a key whose last row is a ``D`` is gone.
"""

from __future__ import annotations

from pyspark.sql import Window
from pyspark.sql import functions as F

from lifecycle.jobs.runner import get_resolved_options

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
        F.col("country").cast("string").alias("country"),
        F.col("created_at").cast("timestamp").alias("created_at"),
        F.col("updated_at").cast("timestamp").alias("updated_at"),
    )


def clean_products(products):
    return products.select(
        F.col("product_id").cast("bigint").alias("product_id"),
        F.col("sku").cast("string").alias("sku"),
        F.col("name").cast("string").alias("name"),
        F.col("category").cast("string").alias("category"),
        F.col("description").cast("string").alias("description"),
        F.col("unit_price").cast("decimal(10,2)").alias("unit_price"),
        F.col("active").cast("boolean").alias("active"),
        F.col("updated_at").cast("timestamp").alias("updated_at"),
    )


def clean_orders(orders):
    return orders.select(
        F.col("order_id").cast("bigint").alias("order_id"),
        F.col("customer_id").cast("bigint").alias("customer_id"),
        F.col("status").cast("string").alias("status"),
        F.col("order_ts").cast("timestamp").alias("order_ts"),
        F.col("updated_at").cast("timestamp").alias("updated_at"),
        F.to_date(F.col("order_ts")).alias("order_date"),  # UTC: the session time zone
    )


def clean_order_items(items, orders):
    order_dates = orders.select(F.col("order_id").alias("o_order_id"), F.col("order_date"))
    return items.join(order_dates, items["order_id"] == order_dates["o_order_id"], "inner").select(
        F.col("order_id").cast("bigint").alias("order_id"),
        F.col("line_no").cast("int").alias("line_no"),
        F.col("product_id").cast("bigint").alias("product_id"),
        F.col("quantity").cast("int").alias("quantity"),
        F.col("unit_price").cast("decimal(10,2)").alias("unit_price"),
        F.col("order_date"),
    )


def main(argv: list[str], ctx) -> None:
    args = get_resolved_options(argv, ARGUMENTS)
    raw, clean = args["raw_bucket"], args["clean_bucket"]
    state = {}
    for table, (keys, columns) in SOURCES.items():
        changes = ctx.read_dms(raw, f"sales/public/{table}", columns, name=table)
        state[table] = current_state(changes, keys, list(columns))

    ctx.write_clean(mask_customers(state["customers"], ctx.get_secret(args["pii_salt_secret"])),
                    clean, "customers")
    ctx.write_clean(clean_products(state["products"]), clean, "products")
    orders = clean_orders(state["orders"])
    ctx.write_clean(orders, clean, "orders")
    ctx.write_clean(clean_order_items(state["order_items"], orders), clean, "order_items")
