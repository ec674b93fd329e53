"""The snapshot helpers of ``lifecycle.lake.iceberg`` on a local pyiceberg catalog (no services).

Asserts: ``data_files`` gives each data file's partition value (a null as Hive's default
partition); ``files_holding`` keeps exactly the files whose key bounds may hold a wanted key
(string and integer keys, truncated string bounds included); ``overwrite_partitions``
replaces only the named partitions, drops an emptied one, and is one commit.
"""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from lifecycle.lake import iceberg
from lifecycle.lake.catalog import TableSpec

SPEC = TableSpec("probe", (("id", "bigint"), ("name", "string")), ("id",), ("day", "date"))
ARROW = pa.schema([("id", pa.int64()), ("name", pa.string()), ("day", pa.date32())])


@pytest.fixture
def table(tmp_path):
    from pyiceberg.catalog.sql import SqlCatalog

    cat = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=f"file://{tmp_path}")
    cat.create_namespace("n")
    t = iceberg.ensure_in(cat, ("n", "probe"), f"file://{tmp_path}/probe", SPEC)
    rows = [{"id": i, "name": f"{'x' * 20}{i:03d}", "day": date(2026, 1, 1 + i // 100)} for i in range(300)]
    rows.append({"id": 999, "name": "null day", "day": None})
    t.append(pa.Table.from_pylist(rows, schema=ARROW))
    return t


def test_data_files_and_their_partitions(table):
    assert sorted(iceberg.data_files(table).values()) == [
        "2026-01-01", "2026-01-02", "2026-01-03", iceberg.NULL_PARTITION]


def holding(table, column: str, values: list) -> list[str]:
    return iceberg.files_holding(table, iceberg.data_file_entries(table), column, values)


def test_files_holding_prunes_on_bounds(table):
    by_part = {v: f for f, v in iceberg.data_files(table).items()}
    assert holding(table, "id", [150]) == [by_part["2026-01-02"]]
    assert holding(table, "id", [5000]) == []  # above every file's maximum
    assert sorted(holding(table, "id", [1, 250])) == sorted([by_part["2026-01-01"], by_part["2026-01-03"]])
    # string bounds are truncated to 16 characters: still a valid range
    assert holding(table, "name", [f"{'x' * 20}150"]) == sorted(
        [by_part["2026-01-01"], by_part["2026-01-02"], by_part["2026-01-03"]])
    assert holding(table, "name", ["a"]) == []


def test_overwrite_partitions_is_one_commit(table):
    before = len(table.metadata.metadata_log)
    new = pa.Table.from_pylist([{"id": 1, "name": "changed", "day": date(2026, 1, 1)}], schema=ARROW)
    iceberg.overwrite_partitions(table, new, "day", ["2026-01-01", "2026-01-02"])
    rows = table.scan().to_arrow().to_pylist()
    assert {r["day"] for r in rows} == {date(2026, 1, 1), date(2026, 1, 3), None}
    assert [r["name"] for r in rows if r["day"] == date(2026, 1, 1)] == ["changed"]
    assert len(rows) == 1 + 100 + 1
    assert len(table.metadata.metadata_log) == before + 1
