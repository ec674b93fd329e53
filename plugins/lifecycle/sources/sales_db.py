"""The `sales` database (the RDS stand-in): schema and read-side helpers.

Input: ``Settings``. Output: the tables of DESIGN §3 exist (``sales_schema.sql``, idempotent),
plus the queries the reconciliation uses as the source of truth.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from lifecycle.clients import pg
from lifecycle.settings import Settings

SCHEMA_SQL = Path(__file__).with_name("sales_schema.sql")
TABLES = ("customers", "products", "orders", "order_items")
PUBLICATION = "lifecycle_cdc"


def ensure_schema(settings: Settings) -> None:
    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA_SQL.read_text())


def source_truth(settings: Settings) -> dict:
    """What the serving layer must show, computed straight from the source tables."""
    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute(
            """
            SELECT count(DISTINCT o.order_id), coalesce(sum(i.quantity), 0),
                   coalesce(sum(i.quantity * i.unit_price), 0)
            FROM orders o JOIN order_items i USING (order_id)
            WHERE o.status <> 'cancelled'
            """
        )
        orders, items, revenue = cur.fetchone()
        cur.execute("SELECT count(*) FROM orders")
        (all_orders,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM products")
        (products,) = cur.fetchone()
    return {
        "orders_not_cancelled": int(orders),
        "items_not_cancelled": int(items),
        "revenue_not_cancelled": Decimal(revenue).quantize(Decimal("0.01")),
        "orders_all": int(all_orders),
        "products": int(products),
    }
