"""The lake's Iceberg tables in the Glue Data Catalog: the catalog, the tables, how DuckDB reads them.

Input: ``Settings`` (the target's Glue and S3 endpoints and the stage's credentials) and a
table contract (``lifecycle.lake.catalog.TableSpec``).
Output: ``catalog(settings)``, pyiceberg's ``GlueCatalog`` on the target; ``iceberg_schema``
and ``partition_spec`` of a contract (format v2; a partitioned contract is partitioned by its
date column, identity: one partition per day); ``ensure_table`` (create, or add the columns a
source gained, without a rewrite); ``metadata_location`` as Glue has it (``get_table``'s
``Parameters.metadata_location``: never the newest file guessed from a listing, since a lost
or failed commit leaves metadata files that are not the table) and ``scan_sql``
(``iceberg_scan`` of that location, optionally as of a snapshot, on a connection of
``clients.connect_duckdb``, which loads the avro and iceberg extensions from their wheels).

pyiceberg, not code of our own, writes and commits: a commit is Glue's ``UpdateTable`` with
the ``VersionId`` it read, so of two writers at once one gets ``ConcurrentModificationException``
and pyiceberg retries it on the new metadata (``commit.retry.*`` properties below). The
embedded target's moto honours ``VersionId`` through ``lifecycle.ops.moto_server``.
"""

from __future__ import annotations

import re
import threading
from typing import NamedTuple

from lifecycle.clients import aws, credentials
from lifecycle.lake.catalog import TableSpec, database_of, duckdb_type
from lifecycle.settings import Settings
from lifecycle.sql import ident, literal

# the zones whose tables are Iceberg (raw stays as delivered; quarantine is one object a source)
ICEBERG_ZONES = ("clean", "curated")
# a data file's partition value when the partition column is null (as Hive and Glue write it)
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"

# commit retries (pyiceberg's table properties): two jobs may commit to one table at once
TABLE_PROPERTIES = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    "commit.retry.num-retries": "8",
    "commit.retry.min-wait-ms": "50",
    "commit.retry.max-wait-ms": "2000",
    # a commit deletes the metadata files past the newest 20 (pyiceberg's default keeps all)
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
}

_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$", re.IGNORECASE)
_CATALOGS: dict[tuple, object] = {}
_LOCK = threading.Lock()


def iceberg_type(logical: str):
    """The Iceberg type of a logical type of ``lifecycle.lake.catalog``."""
    from pyiceberg import types as t

    m = _DECIMAL.match(logical)
    if m:
        return t.DecimalType(int(m.group(1)), int(m.group(2)))
    return {"bigint": t.LongType(), "int": t.IntegerType(), "double": t.DoubleType(),
            "string": t.StringType(), "timestamptz": t.TimestamptzType(),
            "timestamp": t.TimestampType(), "boolean": t.BooleanType(),
            "date": t.DateType()}[logical]


def logical_type(kind) -> str:
    """The logical type (``lifecycle.lake.catalog``) of an Iceberg type: ``iceberg_type`` reversed."""
    from pyiceberg import types as t

    if isinstance(kind, t.DecimalType):
        return f"decimal({kind.precision},{kind.scale})"
    return {t.LongType: "bigint", t.IntegerType: "int", t.DoubleType: "double", t.StringType: "string",
            t.TimestamptzType: "timestamptz", t.TimestampType: "timestamp", t.BooleanType: "boolean",
            t.DateType: "date"}[type(kind)]


def iceberg_schema(spec: TableSpec):
    """The Iceberg schema of a contract: its columns (the partition column too), all optional."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

    return Schema(*[NestedField(i, name, iceberg_type(logical), required=False)
                    for i, (name, logical) in enumerate(spec.all_columns, start=1)])


def partition_spec(spec: TableSpec, schema):
    """Partitioned by the contract's date column (identity on a date: one partition a day)."""
    from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionField, PartitionSpec
    from pyiceberg.transforms import IdentityTransform

    if not spec.partition:
        return UNPARTITIONED_PARTITION_SPEC
    column = spec.partition[0]
    return PartitionSpec(PartitionField(source_id=schema.find_field(column).field_id, field_id=1000,
                                        transform=IdentityTransform(), name=column))


def catalog_properties(settings: Settings) -> dict[str, str]:
    """pyiceberg's Glue catalog on the target: Glue and S3 endpoints, region, credentials."""
    key_id, secret, token = credentials(settings)
    props = {"type": "glue", "glue.region": settings.aws.region, "s3.region": settings.aws.region}
    glue_endpoint, s3_endpoint = settings.aws.endpoint_for("glue"), settings.aws.endpoint_for("s3")
    if glue_endpoint:
        props["glue.endpoint"] = glue_endpoint
    if s3_endpoint:
        props["s3.endpoint"] = s3_endpoint
    if key_id and secret:
        for service in ("glue", "s3"):
            props[f"{service}.access-key-id"] = key_id
            props[f"{service}.secret-access-key"] = secret
            if token:
                props[f"{service}.session-token"] = token
    return props


def catalog(settings: Settings):
    """pyiceberg's ``GlueCatalog`` for ``settings`` (one per endpoint and credentials)."""
    from pyiceberg.catalog import load_catalog

    props = catalog_properties(settings)
    key = tuple(sorted(props.items()))
    with _LOCK:
        if key not in _CATALOGS:
            _CATALOGS[key] = load_catalog("lifecycle", **props)
        return _CATALOGS[key]


def identifier(settings: Settings, spec: TableSpec) -> tuple[str, str]:
    return database_of(settings, spec), spec.name


def location(settings: Settings, spec: TableSpec) -> str:
    """Where a table's data and metadata live: ``s3://<zone bucket>/<table>`` (Iceberg puts its
    files under ``data/`` and ``metadata/`` there)."""
    return f"s3://{settings.names.bucket(spec.zone)}/{spec.name}"


def load_table(settings: Settings, spec: TableSpec):
    """The Iceberg table of ``spec``, or None when it does not exist yet."""
    return load_from(catalog(settings), identifier(settings, spec))


def load_from(cat, ident_: tuple[str, str]):
    """The Iceberg table ``ident_`` of the pyiceberg catalog ``cat``, or None (none, or a Glue
    table that is not Iceberg: the Parquet table of an older version of this project, which
    the jobs' next full run replaces, ``ensure_table``)."""
    # NoSuchIcebergTableError (a NoSuchTableError) for a table_type other than ICEBERG,
    # NoSuchPropertyException for a Glue table without table_type
    from pyiceberg.exceptions import NoSuchPropertyException, NoSuchTableError

    try:
        return cat.load_table(ident_)
    except (NoSuchTableError, NoSuchPropertyException):
        return None


def ensure_table(settings: Settings, spec: TableSpec, bucket: str | None = None):
    """The Iceberg table of ``spec`` in the Glue Catalog (at ``s3://<bucket>/<table>``, the
    zone's bucket by default), made as ``ensure_in`` says. A Glue table of that name that is
    not Iceberg (the Parquet table of an older version of this project) is replaced: the job
    writing it is rebuilding it (an incremental run on a table without a snapshot is made a
    full one), so nothing is lost."""
    where = f"s3://{bucket}/{spec.name}" if bucket else location(settings, spec)
    glue = aws(settings, "glue")
    database, name = identifier(settings, spec)
    try:
        if not is_iceberg(glue.get_table(DatabaseName=database, Name=name)["Table"]):
            glue.delete_table(DatabaseName=database, Name=name)
    except glue.exceptions.EntityNotFoundException:
        pass
    return ensure_in(catalog(settings), (database, name), where, spec)


def ensure_in(cat, ident_: tuple[str, str], where: str, spec: TableSpec):
    """The Iceberg table ``ident_`` of ``cat``: created at ``where`` when missing (schema and
    partitions from ``spec``); columns of ``spec`` the table lacks (a source's additive change)
    are added, a metadata-only change (no data file is rewritten)."""
    from pyiceberg.exceptions import TableAlreadyExistsError

    table = load_from(cat, ident_)
    if table is None:
        schema = iceberg_schema(spec)
        try:
            return cat.create_table(ident_, schema=schema, location=where,
                                    partition_spec=partition_spec(spec, schema), properties=TABLE_PROPERTIES)
        except TableAlreadyExistsError:  # another writer created it first
            table = load_from(cat, ident_)
    return add_columns(table, spec)


def add_columns(table, spec: TableSpec):
    """``table`` with the columns of ``spec`` it lacks added (a source's additive change): a
    metadata-only commit, no data file is rewritten; ``table`` itself when it has them all."""
    have = {f.name for f in table.schema().fields}
    missing = [(c, t) for c, t in spec.all_columns if c not in have]
    if missing:
        with table.update_schema() as update:
            for column, logical in missing:
                update.add_column(column, iceberg_type(logical))
        table = table.refresh()
    return table


def _in_table_order(table, rows):
    """``rows`` (Arrow) with the table's columns in the table's order."""
    return rows.select([f.name for f in table.schema().fields if f.name in rows.column_names])


def partition_value(value) -> str:
    """A partition column's value as ``data_files`` spells it (ISO for a date, ``NULL_PARTITION``
    for null): what a job compares with the partitions of a snapshot."""
    return NULL_PARTITION if value is None else str(value)


def replace_rows(table, rows, properties: dict[str, str] | None = None) -> int:
    """Make ``rows`` (an Arrow table with the table's columns, any order) the whole content of
    ``table`` in one commit (pyiceberg's ``overwrite``: a ``delete`` snapshot of every file and
    an ``append`` of the new ones, made current together; the first write is an append). A
    writer killed before the commit leaves the previous snapshot as it was (its new files are
    orphans: no snapshot names them, so no reader sees them). ``properties`` go into the
    snapshot's summary (maintenance marks its rewrites)."""
    rows, props = _in_table_order(table, rows), properties or {}
    if table.current_snapshot() is None:
        table.append(rows, snapshot_properties=props)
    else:
        table.overwrite(rows, snapshot_properties=props)
    return rows.num_rows


def overwrite_partitions(table, rows, column: str | None, values: list[str],
                         properties: dict[str, str] | None = None) -> int:
    """Replace the partitions ``values`` of ``column`` (``NULL_PARTITION`` for null) by ``rows``
    in one commit (pyiceberg's ``overwrite`` with a filter on the partition column: the data
    files of those partitions are dropped whole, no file of another partition is read or
    rewritten, and ``rows`` are appended in the same snapshot commit). ``rows`` must lie in
    those partitions. A table without partitions (``column`` None) is replaced whole."""
    if column is None or table.current_snapshot() is None:
        return replace_rows(table, rows, properties)
    rows, props = _in_table_order(table, rows), properties or {}
    where = partition_filter(column, values)
    if where is None:
        if rows.num_rows:
            table.append(rows, snapshot_properties=props)
    elif rows.num_rows:
        table.overwrite(rows, overwrite_filter=where, snapshot_properties=props)
    else:
        table.delete(where, snapshot_properties=props)
    return rows.num_rows


def partition_filter(column: str, values: list[str]):
    """pyiceberg's row filter for the partitions ``values`` of ``column`` (``NULL_PARTITION``
    for null), or None when ``values`` is empty."""
    from pyiceberg.expressions import In, IsNull, Or

    named = sorted(v for v in values if v != NULL_PARTITION)
    where = In(column, named) if named else None
    if NULL_PARTITION in values:
        where = IsNull(column) if where is None else Or(where, IsNull(column))
    return where


class DataFile(NamedTuple):
    """One data file of a snapshot: where, its partition value, its size and rows, and its
    columns' lower and upper bounds as the manifest has them (``{field id: bytes}``)."""

    uri: str
    partition: str
    bytes: int
    rows: int
    lower: dict
    upper: dict


def data_file_entries(table, snapshot_id: int | None = None) -> list[DataFile]:
    """The data files of the table's current snapshot (or ``snapshot_id``), from its manifests
    (never a listing: files of failed or expired commits are not the table), sorted; the
    partition value is ``""`` for a table without partitions, ``NULL_PARTITION`` for a null.
    Every file is whole: our writers copy on write, so a file with delete files is refused
    (its rows could not be read from the Parquet alone)."""
    if table is None or (snapshot_id is None and table.current_snapshot() is None):
        return []
    spec = table.spec()
    kind = spec.partition_type(table.schema()).fields[0].field_type if spec.fields else None
    out = []
    for task in table.scan(snapshot_id=snapshot_id).plan_files():
        if task.delete_files:
            raise RuntimeError(f"{task.file.file_path} has delete files (merge-on-read); this "
                               "project's readers expect copy-on-write tables")
        value = ""
        if spec.fields:
            raw = task.file.partition[0]
            value = NULL_PARTITION if raw is None else spec.fields[0].transform.to_human_string(kind, raw)
        out.append(DataFile(task.file.file_path, value, int(task.file.file_size_in_bytes),
                            int(task.file.record_count), task.file.lower_bounds or {},
                            task.file.upper_bounds or {}))
    return sorted(out, key=lambda f: f.uri)


def data_files(table, snapshot_id: int | None = None) -> dict[str, str]:
    """``{data file URI: partition value}`` of ``data_file_entries``."""
    return {f.uri: f.partition for f in data_file_entries(table, snapshot_id)}


def files_holding(table, files: list[DataFile], column: str, values: list) -> list[str]:
    """The ``files`` (``data_file_entries`` of ``table``) whose bounds of ``column`` (Iceberg's
    column statistics) may hold one of ``values``; a file without bounds counts.

    By hand rather than ``table.scan(row_filter=In(column, values)).plan_files()``: pyiceberg
    binds the whole IN list again for every file's residual (measured: most of an incremental
    run's time with 3,000 keys over 300 files); here each file is one binary search."""
    from bisect import bisect_left

    from pyiceberg.conversions import from_bytes

    field = table.schema().find_field(column)
    wanted = sorted(v for v in values if v is not None)
    out = []
    for f in files:
        lo, hi = f.lower.get(field.field_id), f.upper.get(field.field_id)
        if lo is None or hi is None:
            out.append(f.uri)
            continue
        lo, hi = from_bytes(field.field_type, lo), from_bytes(field.field_type, hi)
        i = bisect_left(wanted, lo)
        if i < len(wanted) and wanted[i] <= hi:
            out.append(f.uri)
    return out


def partitions(settings: Settings, spec: TableSpec) -> list[str]:
    """The partition values that hold rows in the table's current snapshot, sorted."""
    return sorted({v for v in data_files(load_table(settings, spec)).values() if v})


def describe_tables(settings: Settings, specs: list[TableSpec]) -> dict[str, dict]:
    """``{table: {"table": "iceberg" | "absent", "snapshot_id", "files", "rows"}}`` as the Glue
    Catalog and each table's current snapshot have it (a commit registers itself: pyiceberg
    updates the Glue table's ``metadata_location``, so there is nothing to register after a run)."""
    out = {}
    for spec in specs:
        table = load_table(settings, spec)
        snapshot = table.current_snapshot() if table is not None else None
        if snapshot is None:
            out[spec.name] = {"table": "absent" if table is None else "iceberg", "snapshot_id": None}
            continue
        summary = snapshot.summary or {}
        out[spec.name] = {"table": "iceberg", "snapshot_id": snapshot.snapshot_id,
                          "files": int(summary.get("total-data-files", 0)),
                          "rows": int(summary.get("total-records", 0))}
    return out


def damage(settings: Settings, spec: TableSpec) -> str | None:
    """Why the table's current snapshot cannot be read whole, or None (absent or whole): its
    metadata, manifest list or a manifest unreadable, or data files it names gone from S3
    (objects deleted by hand under the table; one listing of its ``data/`` folder)."""
    from urllib.parse import urlparse

    try:
        table = load_table(settings, spec)
        files = data_file_entries(table)
    except Exception as exc:  # noqa: BLE001 - any failure to read the metadata is the finding
        return f"metadata unreadable: {type(exc).__name__}: {str(exc)[:200]}"
    if not files:
        return None
    where = urlparse(table.location())
    prefix = f"{where.path.lstrip('/')}/data/"
    present = set()
    for page in aws(settings, "s3").get_paginator("list_objects_v2").paginate(Bucket=where.netloc, Prefix=prefix):
        present.update(f"s3://{where.netloc}/{o['Key']}" for o in page.get("Contents", []))
    missing = [f.uri for f in files if f.uri not in present]
    return f"{len(missing)} of {len(files)} data files gone, e.g. {missing[0]}" if missing else None


def drop_table(settings: Settings, spec: TableSpec) -> int:
    """Forget a damaged table: its Glue entry and every object under its location (the next
    full run of its job creates it anew). Returns the objects deleted."""
    glue = aws(settings, "glue")
    database, name = identifier(settings, spec)
    try:
        glue.delete_table(DatabaseName=database, Name=name)
    except glue.exceptions.EntityNotFoundException:
        pass
    s3, bucket, deleted = aws(settings, "s3"), settings.names.bucket(spec.zone), 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{spec.name}/"):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted


def files_sql(con, uris: list[str], columns: list[tuple[str, str]]) -> str:
    """A DuckDB ``SELECT`` of ``columns`` (name, logical type) from the Parquet data files
    ``uris`` of one table: files written before a column was added lack it (Iceberg adds
    columns without rewriting files), so a column no file has is NULL, and files with and
    without it are read by name. ``uris`` must not be empty."""
    files = "[" + ", ".join(literal(u) for u in uris) + "]"
    source = f"read_parquet({files}, union_by_name=true)"
    have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    cols = ", ".join(f"CAST({ident(c) if c in have else 'NULL'} AS {duckdb_type(t)}) AS {ident(c)}"
                     for c, t in columns)
    return f"SELECT {cols} FROM {source}"


def is_iceberg(glue_table: dict) -> bool:
    """Whether a Glue ``get_table`` answer is an Iceberg table."""
    return glue_table.get("Parameters", {}).get("table_type", "").upper() == "ICEBERG"


def metadata_location(settings: Settings, spec: TableSpec) -> str | None:
    """The table's current metadata file as the Glue Catalog names it, or None (no table)."""
    glue = aws(settings, "glue")
    database, name = identifier(settings, spec)
    try:
        table = glue.get_table(DatabaseName=database, Name=name)["Table"]
    except glue.exceptions.EntityNotFoundException:
        return None
    return table.get("Parameters", {}).get("metadata_location")


def parse_as_of(text: str):
    """A snapshot named by ``text``: its id (``int``, digits) or a time (an aware UTC
    ``datetime`` from ISO 8601, UTC when it has no offset); ``ValueError`` for anything else."""
    from datetime import UTC, datetime

    if text.strip().isdigit():
        return int(text)
    when = datetime.fromisoformat(text.strip())
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def scan_of(metadata_location: str, as_of: str | None = None) -> str:
    """DuckDB's ``iceberg_scan`` of a metadata file, as of ``as_of`` (``parse_as_of``)."""
    travel = ""
    point = parse_as_of(as_of) if as_of is not None else None
    if isinstance(point, int):
        travel = f", snapshot_from_id => {point}"
    elif point is not None:
        travel = f", snapshot_from_timestamp => TIMESTAMPTZ {literal(point.isoformat())}"
    return f"iceberg_scan({literal(metadata_location)}{travel})"


def scan_sql(settings: Settings, spec: TableSpec, columns: list[str] | None = None,
             as_of: str | None = None) -> str:
    """A DuckDB relation over the table: ``scan_of`` Glue's metadata location (as of a snapshot
    id or a time), or, before the first commit, no rows with the contract's columns."""
    wanted = [(c, t) for c, t in spec.all_columns if columns is None or c in columns]
    found = metadata_location(settings, spec)
    if found is None:
        cols = ", ".join(f"CAST(NULL AS {duckdb_type(t)}) AS {ident(c)}" for c, t in wanted)
        return f"(SELECT {cols} WHERE false)"
    select = "*" if columns is None else ", ".join(ident(c) for c, _ in wanted)
    return f"(SELECT {select} FROM {scan_of(found, as_of)})"
