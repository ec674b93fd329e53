"""The lake's table contracts (clean and curated zones) and what the Glue Data Catalog adds to them.

Input: ``Settings`` (Glue databases ``settings.names.clean_database`` / ``curated_database``).
Output: ``CLEAN_TABLES`` and ``CURATED_TABLES``, the single statement of docs/lake-layout.md's
tables (columns, logical types, keys, partition column), their type names per engine, and
``effective_spec``: a clean table's contract plus the columns its catalog entry gained since.

The tables are Apache Iceberg tables (``lifecycle.lake.iceberg`` creates, evolves and commits
them through pyiceberg's Glue catalog: a commit is its own registration, so there are no Glue
partitions or SerDe settings to keep in step by hand). The job runner checks every job's
output against the contracts and the warehouse loader derives the landing tables from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from lifecycle.clients import aws
from lifecycle.settings import Settings

# logical type -> (DuckDB, Hive/Glue, Postgres); decimal(p,s) of any precision is derived
TYPES: dict[str, tuple[str, str, str]] = {
    "bigint": ("BIGINT", "bigint", "bigint"),
    "int": ("INTEGER", "int", "integer"),
    "double": ("DOUBLE", "double", "double precision"),
    "string": ("VARCHAR", "string", "text"),
    "timestamptz": ("TIMESTAMP WITH TIME ZONE", "timestamp", "timestamptz"),
    "timestamp": ("TIMESTAMP", "timestamp", "timestamp"),
    "boolean": ("BOOLEAN", "boolean", "boolean"),
    "date": ("DATE", "date", "date"),
}
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$", re.IGNORECASE)


def _types(logical: str) -> tuple[str, str, str]:
    m = _DECIMAL.match(logical)
    if m:
        p, s = m.groups()
        return f"DECIMAL({p},{s})", f"decimal({p},{s})", f"numeric({p},{s})"
    return TYPES[logical]


def duckdb_type(logical: str) -> str:
    return _types(logical)[0]


def hive_type(logical: str) -> str:
    return _types(logical)[1]


def postgres_type(logical: str) -> str:
    return _types(logical)[2]


_FROM_DUCKDB = {"BIGINT": "bigint", "INTEGER": "int", "SMALLINT": "int", "TINYINT": "int",
                "DOUBLE": "double", "FLOAT": "double", "REAL": "double", "VARCHAR": "string",
                "TIMESTAMP WITH TIME ZONE": "timestamptz", "TIMESTAMP": "timestamp",
                "BOOLEAN": "boolean", "DATE": "date"}
_FROM_HIVE = {"bigint": "bigint", "int": "int", "smallint": "int", "double": "double", "float": "double",
              "string": "string", "timestamp": "timestamptz", "boolean": "boolean", "date": "date"}


def logical_from_duckdb(duck_type: str) -> str:
    """The logical type of a DuckDB column type (new source columns are typed this way)."""
    t = duck_type.upper()
    m = re.match(r"^DECIMAL\((\d+),\s*(\d+)\)$", t)
    if m:
        return f"decimal({m.group(1)},{m.group(2)})"
    if t not in _FROM_DUCKDB:
        raise ValueError(f"no lake type for DuckDB type {duck_type}")
    return _FROM_DUCKDB[t]


def logical_from_hive(hive: str) -> str:
    return hive.lower() if _DECIMAL.match(hive) else _FROM_HIVE[hive.lower()]


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, logical type), data columns in file order
    keys: tuple[str, ...]
    partition: tuple[str, str] | None = None  # (name, logical type), hive-style prefix
    zone: str = "clean"  # the lake zone (bucket) and so the Glue database

    @property
    def all_columns(self) -> tuple[tuple[str, str], ...]:
        """Data columns, then the partition column: the table as a query engine sees it."""
        return self.columns + ((self.partition,) if self.partition else ())

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.all_columns]


CLEAN_TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            "customers",
            (("customer_id", "bigint"), ("email_hash", "string"), ("full_name_masked", "string"),
             ("phone_masked", "string"), ("country", "string"), ("created_at", "timestamptz"),
             ("updated_at", "timestamptz")),
            ("customer_id",),
        ),
        TableSpec(
            "products",
            (("product_id", "bigint"), ("sku", "string"), ("name", "string"), ("category", "string"),
             ("description", "string"), ("unit_price", "decimal(10,2)"), ("active", "boolean"),
             ("updated_at", "timestamptz")),
            ("product_id",),
        ),
        TableSpec(
            "orders",
            (("order_id", "bigint"), ("customer_id", "bigint"), ("status", "string"),
             ("order_ts", "timestamptz"), ("updated_at", "timestamptz")),
            ("order_id",),
            ("order_date", "date"),
        ),
        TableSpec(
            "order_items",
            (("order_id", "bigint"), ("line_no", "int"), ("product_id", "bigint"), ("quantity", "int"),
             ("unit_price", "decimal(10,2)")),
            ("order_id", "line_no"),
            ("order_date", "date"),
        ),
        TableSpec(
            # SCD type 2 of each order's status, replayed from the CDC stream
            "order_status_history",
            (("order_id", "bigint"), ("status", "string"), ("valid_from", "timestamptz"),
             ("valid_to", "timestamptz"), ("is_current", "boolean"), ("change_op", "string")),
            ("order_id", "valid_from"),
            # with its order: the versions that change are those of recent orders
            ("order_date", "date"),
        ),
        TableSpec(
            "events",
            (("event_id", "string"), ("event_type", "string"), ("event_ts", "timestamptz"),
             ("customer_id", "bigint"), ("product_id", "bigint"), ("order_id", "bigint"),
             ("page", "string"), ("quantity", "int")),
            ("event_id",),
            ("event_date", "date"),
        ),
        TableSpec(
            "reviews",
            (("product_id", "bigint"), ("review_id", "string"), ("customer_id", "bigint"),
             ("rating", "int"), ("title", "string"), ("body", "string"), ("created_at", "timestamptz")),
            ("product_id", "review_id"),
        ),
        TableSpec(
            # one row per session (30-minute inactivity rule), curated from the clean events
            # by the curate_sessions job; the warehouse reads sessions from here
            "sessions",
            (("session_id", "string"), ("customer_id", "bigint"), ("session_start", "timestamptz"),
             ("session_end", "timestamptz"), ("event_count", "bigint"), ("page_views", "bigint"),
             ("add_to_carts", "bigint"), ("checkouts", "bigint"), ("purchases", "bigint"),
             ("converted", "boolean")),
            ("session_id",),
            ("session_date", "date"),
        ),
    )
}

# the curated zone (s3://<curated>/<table>/, Glue database lake_curated): ML features and a
# training set, rebuilt by the curate_features job from the clean tables
CURATED_TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            "product_features",
            (("product_id", "bigint"), ("category", "string"), ("unit_price", "decimal(10,2)"),
             ("orders", "bigint"), ("units_sold", "bigint"), ("revenue", "decimal(18,2)"),
             ("buyers", "bigint"), ("views", "bigint"), ("add_to_carts", "bigint"),
             ("view_to_cart_rate", "double"), ("reviews", "bigint"), ("avg_rating", "double"),
             ("first_sold_date", "date"), ("last_sold_date", "date"), ("as_of_date", "date")),
            ("product_id",), zone="curated",
        ),
        TableSpec(
            "customer_features",
            (("customer_id", "bigint"), ("country", "string"), ("orders", "bigint"),
             ("items", "bigint"), ("revenue", "decimal(18,2)"), ("avg_order_value", "double"),
             ("first_order_ts", "timestamptz"), ("last_order_ts", "timestamptz"),
             ("days_since_last_order", "int"), ("sessions", "bigint"), ("converted_sessions", "bigint"),
             ("reviews", "bigint"), ("avg_rating", "double"), ("as_of_date", "date")),
            ("customer_id",), zone="curated",
        ),
        TableSpec(
            # features before a cutoff date + the label after it: "does this customer buy again
            # within LABEL_DAYS of the cutoff" (a repeat-purchase model's training set)
            "training_repeat_purchase",
            (("customer_id", "bigint"), ("cutoff_date", "date"), ("orders_before", "bigint"),
             ("revenue_before", "decimal(18,2)"), ("distinct_products_before", "bigint"),
             ("days_since_last_order", "int"), ("sessions_before", "bigint"),
             ("label_repurchase", "boolean")),
            ("customer_id",), zone="curated",
        ),
    )
}


def lake_table(name: str) -> TableSpec:
    """The contract of a clean or curated table."""
    if name in CLEAN_TABLES:
        return CLEAN_TABLES[name]
    if name in CURATED_TABLES:
        return CURATED_TABLES[name]
    raise KeyError(f"no lake table {name!r}; clean: {', '.join(CLEAN_TABLES)}; "
                   f"curated: {', '.join(CURATED_TABLES)}")


# quarantine/<source>/data_0.parquet (not a catalog table)
QUARANTINE = TableSpec(
    "quarantine",
    (("source", "string"), ("reason", "string"), ("payload", "string"), ("raw_key", "string")),
    ("raw_key", "payload", "reason"),
)

def table_location(settings: Settings, table: str, zone: str = "clean") -> str:
    return f"s3://{settings.names.bucket(zone)}/{table}/"


def database_of(settings: Settings, spec: TableSpec) -> str:
    """The Glue database of a table's zone."""
    return settings.names.clean_database if spec.zone == "clean" else settings.names.curated_database


def with_extra_columns(spec: TableSpec, extras: list[tuple[str, str]]) -> TableSpec:
    """The contract of ``spec`` plus columns that appeared in the source (additive change)."""
    known = {c for c, _ in spec.all_columns}
    return replace(spec, columns=spec.columns + tuple(e for e in extras if e[0] not in known))


def effective_spec(settings: Settings, name: str) -> TableSpec:
    """A clean table as the Glue Catalog has it: the contract plus any added columns.

    The catalog is the source of truth downstream (as it is for Athena or Redshift
    Spectrum): a new nullable source column registered there reaches the warehouse too. The
    table is Iceberg: pyiceberg writes its schema (partition column included, in schema
    order) as the Glue columns, with Hive's type names (a ``timestamptz`` is ``timestamp``).
    """
    spec = CLEAN_TABLES[name]
    glue = aws(settings, "glue")
    try:
        table = glue.get_table(DatabaseName=settings.names.clean_database, Name=name)["Table"]
    except glue.exceptions.EntityNotFoundException:
        return spec
    registered = [(c["Name"], logical_from_hive(c["Type"]))
                  for c in table.get("StorageDescriptor", {}).get("Columns", [])]
    return with_extra_columns(spec, registered[len(spec.columns):])
