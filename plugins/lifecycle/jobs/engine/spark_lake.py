"""Where the Spark engine's lake is: a local mirror of the buckets, or the real S3.

Input: a root directory (``LocalLake``) or boto3 clients (``S3Lake``). Output: the few object
operations ``spark_context.SparkJobContext`` needs besides Spark's readers and writers (URIs,
listings by glob, bytes, deletes, the PII salt) and the Iceberg catalog its tables of an
Iceberg zone are committed to (``iceberg_table``); ``mirror_lake`` copies the target's buckets
into a ``LocalLake`` (Spark here cannot read ``s3://``: the hadoop-aws jars come from Maven).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lifecycle.jobs.engine.contract import literal_prefix, matches


class LocalLake:
    """A directory that mirrors the buckets: ``<root>/<bucket>/<key>``.

    Spark here cannot read ``s3://`` (the hadoop-aws jars come from Maven), so the local
    Spark engine runs on a mirror of the buckets; secrets are files ``<root>/_secrets/<name>``.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def path(self, bucket: str, key: str = "") -> Path:
        return self.root / bucket / key

    def uri(self, bucket: str, key: str = "") -> str:
        # Spark's `path` column for local files is "file:" + the absolute path
        return "file:" + str(self.path(bucket, key)) + ("/" if key.endswith("/") or not key else "")

    def list_keys(self, bucket: str, pattern: str) -> list[str]:
        base = self.path(bucket)
        start = base / literal_prefix(pattern)
        if not start.exists():
            return []
        keys = []
        for dirpath, _, files in os.walk(start):
            for f in files:
                key = str(Path(dirpath, f).relative_to(base)).replace(os.sep, "/")
                if matches(key, pattern):
                    keys.append(key)
        return sorted(keys)

    def read_bytes(self, bucket: str, key: str) -> bytes:
        return self.path(bucket, key).read_bytes()

    def get_secret(self, name: str) -> str:
        return (self.root / "_secrets" / name).read_text()

    def iceberg_catalog(self):
        """A pyiceberg SQL catalog (SQLite under ``<root>/_iceberg/``) over the mirror: the
        local stand-in for the Glue Catalog (one namespace per bucket: ``iceberg_identifier``)."""
        from pyiceberg.catalog.sql import SqlCatalog

        (self.root / "_iceberg").mkdir(parents=True, exist_ok=True)
        return SqlCatalog("local", uri=f"sqlite:///{self.root / '_iceberg' / 'catalog.db'}",
                          warehouse=f"file://{self.root}")

    @staticmethod
    def iceberg_identifier(spec, bucket: str) -> tuple[str, str]:
        """``(namespace, table)`` of a table written to ``bucket`` on the mirror: the bucket
        (``/`` and ``-`` as ``_``) is the namespace, so tables of one name in two buckets
        (the probe's copies) are two tables."""
        return re.sub(r"[^0-9A-Za-z_]", "_", bucket), spec.name

    def iceberg_table(self, spec, bucket: str):
        """The Iceberg table of ``spec`` at ``<root>/<bucket>/<table>`` (made if missing)."""
        from lifecycle.lake.iceberg import ensure_in

        cat = self.iceberg_catalog()
        ident = self.iceberg_identifier(spec, bucket)
        cat.create_namespace_if_not_exists(ident[0])
        return ensure_in(cat, ident, f"file://{self.path(bucket, spec.name)}", spec)


class S3Lake:
    """The real buckets through boto3 (on AWS Glue / EMR, where Spark reads ``s3://``)."""

    def __init__(self, s3=None, secretsmanager=None, databases: dict[str, str] | None = None):
        import boto3

        self._s3 = s3 or boto3.client("s3")
        self._sm = secretsmanager or boto3.client("secretsmanager")
        self._databases = databases or {}  # zone -> Glue database (the job's arguments)

    def uri(self, bucket: str, key: str = "") -> str:
        return f"s3://{bucket}/{key}"

    def list_keys(self, bucket: str, pattern: str) -> list[str]:
        keys = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=literal_prefix(pattern)):
            keys.extend(o["Key"] for o in page.get("Contents", []) if matches(o["Key"], pattern))
        return sorted(keys)

    def read_bytes(self, bucket: str, key: str) -> bytes:
        return self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def get_secret(self, name: str) -> str:
        return self._sm.get_secret_value(SecretId=name)["SecretString"]

    def iceberg_table(self, spec, bucket: str):
        """The Iceberg table of ``spec`` in the Glue Catalog (the job's database of its zone),
        at ``s3://<bucket>/<table>``; pyiceberg with the job role's credentials."""
        from pyiceberg.catalog import load_catalog

        from lifecycle.lake.iceberg import ensure_in

        cat = load_catalog("glue", type="glue", **{"glue.region": self._s3.meta.region_name})
        return ensure_in(cat, (self._databases[spec.zone], spec.name), f"s3://{bucket}/{spec.name}", spec)


def mirror_lake(settings, root: str | os.PathLike, zones: tuple[str, ...] = ("raw",)) -> dict:
    """Copy the buckets of ``zones`` and the PII salt from the settings' target (moto,
    LocalStack, S3) into a ``LocalLake`` at ``root``; the salt file is readable by its owner
    only. Returns ``{bucket: objects copied}``."""
    from lifecycle.clients import aws

    root = Path(root)
    s3, out = aws(settings, "s3"), {}
    for zone in zones:
        bucket, n = settings.names.bucket(zone), 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                target = root / bucket / o["Key"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
                n += 1
        out[bucket] = n
    secret = root / "_secrets" / settings.names.pii_salt_secret
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.touch(mode=0o600)
    secret.chmod(0o600)
    secret.write_text(aws(settings, "secretsmanager").get_secret_value(
        SecretId=settings.names.pii_salt_secret)["SecretString"])
    return out
