"""The warehouse load on Redshift: ``COPY ... FORMAT AS PARQUET MANIFEST`` of the changed partitions.

Input: ``Settings`` (``engines.warehouse = "redshift"``, aws target only;
``redshift_copy_role_arn``: the role Redshift assumes to read the clean bucket), a table's
contract and, per partition to replace, its objects with their sizes (``load.load_table``
decides which partitions changed, exactly as on Postgres).
Output: the manifest object ``s3://<clean>/_lifecycle/redshift-manifests/<table>/<partition>.json``
and the SQL that loads it, run on the load's transaction: rows of ``landing.<table>``.

Why a staging table: COPY from Parquet maps the file's columns to the target's by position
and needs the same number of columns; the partition column lives in the object's path, not
in the file, and ``_loaded_at`` is ours. So each partition is COPY'd into a temporary table of
the file's columns, then inserted with the partition value and the load time.
Strings are ``VARCHAR(65535)`` here: Redshift's ``TEXT`` is ``VARCHAR(256)``.
"""

from __future__ import annotations

import json

from lifecycle.clients import aws
from lifecycle.lake.catalog import TableSpec, postgres_type
from lifecycle.settings import Settings
from lifecycle.sql import ident, literal

MANIFESTS = "_lifecycle/redshift-manifests"


def redshift_type(logical: str) -> str:
    return "VARCHAR(65535)" if logical == "string" else postgres_type(logical)


def manifest(bucket: str, sizes: dict[str, int]) -> dict:
    """A COPY manifest of ``{key: size}``; Parquet manifests need ``content_length``."""
    return {"entries": [{"url": f"s3://{bucket}/{k}", "mandatory": True, "meta": {"content_length": n}}
                        for k, n in sorted(sizes.items())]}


def put_manifest(settings: Settings, spec: TableSpec, partition: str, sizes: dict[str, int]) -> str:
    bucket = settings.names.bucket("clean")
    key = f"{MANIFESTS}/{spec.name}/{partition or 'all'}.json"
    aws(settings, "s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest(bucket, sizes)).encode(),
                                   ContentType="application/json")
    return f"s3://{bucket}/{key}"


def partition_copy_sql(spec: TableSpec, target: str, manifest_url: str, role_arn: str,
                       partition: str | None, loaded_at_column: str) -> list[str]:
    """The statements that add one partition's objects (listed in ``manifest_url``) to
    ``target``; the caller has already deleted that partition's old rows."""
    stage = ident(f"stage_{spec.name}")
    data = ", ".join(ident(c) for c, _ in spec.columns)
    ddl = ", ".join(f"{ident(c)} {redshift_type(t)}" for c, t in spec.columns)
    cols, values = [data], [data]
    if spec.partition:
        cols.append(ident(spec.partition[0]))
        values.append("NULL" if partition is None else f"CAST({literal(partition)} AS {redshift_type(spec.partition[1])})")
    cols.append(ident(loaded_at_column))
    values.append("GETDATE()")
    return [
        f"CREATE TEMP TABLE {stage} ({ddl})",
        f"COPY {stage} FROM {literal(manifest_url)} IAM_ROLE {literal(role_arn)} FORMAT AS PARQUET MANIFEST",
        f"INSERT INTO {target} ({', '.join(cols)}) SELECT {', '.join(values)} FROM {stage}",
        f"DROP TABLE {stage}",
    ]


def copy_partitions(settings: Settings, cur, spec: TableSpec, target: str, keys: list[str],
                    partition_of, null_partition: str, loaded_at_column: str) -> int:
    """COPY ``keys`` (grouped by partition) into ``target`` on cursor ``cur``; rows inserted."""
    s3, bucket = aws(settings, "s3"), settings.names.bucket("clean")
    groups: dict[str, dict[str, int]] = {}
    for k in keys:
        size = s3.head_object(Bucket=bucket, Key=k)["ContentLength"]
        groups.setdefault(partition_of(spec, k), {})[k] = size
    inserted = 0
    for part, sizes in sorted(groups.items()):
        url = put_manifest(settings, spec, part, sizes)
        value = None if part == null_partition else part
        for sql in partition_copy_sql(spec, target, url, settings.engines.redshift_copy_role_arn, value, loaded_at_column):
            cur.execute(sql)
            if sql.startswith("INSERT"):
                inserted += cur.rowcount
    return inserted


def spectrum_ddl(settings: Settings, role_arn: str | None = None) -> str:
    """The lakehouse arrangement on Redshift: one external schema per Glue database of the lake
    (``lake_clean``, ``lake_curated``), so Redshift Spectrum reads the Iceberg tables where they
    are (``SELECT ... FROM lake_clean.orders`` beside ``landing.orders``), with usage granted to
    the dbt login (its models may join them). ``role_arn``: the IAM role Redshift assumes to read
    the Glue Catalog and the lake buckets (default: ``redshift_copy_role_arn``); docs/aws.md
    lists what it needs."""
    role = role_arn or settings.engines.redshift_copy_role_arn
    if not role:
        raise ValueError("a role for Redshift to assume is needed: LIFECYCLE_REDSHIFT_COPY_ROLE_ARN or --role-arn")
    out = ["-- Redshift Spectrum over the lake's Iceberg tables in the Glue Data Catalog",
           "-- (run once, as a superuser; docs/aws.md, \"The lakehouse on Redshift\")"]
    for database in (settings.names.clean_database, settings.names.curated_database):
        out += [f"CREATE EXTERNAL SCHEMA IF NOT EXISTS {ident(database)}",
                f"  FROM DATA CATALOG DATABASE {literal(database)} REGION {literal(settings.aws.region)}",
                f"  IAM_ROLE {literal(role)};",
                f"GRANT USAGE ON SCHEMA {ident(database)} TO {ident(settings.pg.dbt_user)};"]
    return "\n".join(out) + "\n"
