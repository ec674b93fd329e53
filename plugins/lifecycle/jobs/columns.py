"""The jobs' one idiom for output columns: each named column cast to its contract type.

Input: ``name="type"`` pairs in output order (Spark SQL types: ``bigint``, ``decimal(10,2)``...).
Output: the column expressions ``F.col(name).cast(type).alias(name)`` for a ``select``, on
PySpark (Glue) and SQLFrame (DuckDB) alike; the contract check (``jobs.engine.contract``)
then sees exactly the catalog's columns in order.
"""

from __future__ import annotations

from pyspark.sql import functions as F


def typed(**columns: str) -> list:
    return [F.col(name).cast(type_).alias(name) for name, type_ in columns.items()]
