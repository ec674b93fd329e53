"""The Redshift path of the warehouse load (aws target): settings, manifest and SQL.

Redshift cannot run here; these tests pin what is sent to it: a COPY manifest with each
object's content length (required for Parquet), one staging table per partition with the
file's columns only (COPY from Parquet maps by position and needs the same column count),
and the insert that adds the partition value (from the object's path) and the load time.
"""

from __future__ import annotations

import pytest

from lifecycle.lake.catalog import CLEAN_TABLES
from lifecycle.settings import Settings, SettingsError
from lifecycle.warehouse.redshift import manifest, partition_copy_sql, redshift_type

AWS = {"LIFECYCLE_TARGET": "aws", "LIFECYCLE_PG_HOST": "cluster.example"}


def test_redshift_only_on_aws_and_with_a_copy_role():
    with pytest.raises(SettingsError, match="LIFECYCLE_TARGET=aws"):
        Settings.from_env({"LIFECYCLE_WAREHOUSE_ENGINE": "redshift"})
    with pytest.raises(SettingsError, match="LIFECYCLE_REDSHIFT_COPY_ROLE_ARN"):
        Settings.from_env({**AWS, "LIFECYCLE_WAREHOUSE_ENGINE": "redshift"})
    s = Settings.from_env({**AWS, "LIFECYCLE_WAREHOUSE_ENGINE": "redshift",
                           "LIFECYCLE_REDSHIFT_COPY_ROLE_ARN": "arn:aws:iam::1:role/copy"})
    assert s.engines.warehouse == "redshift" and s.engines.redshift_copy_role_arn.endswith("role/copy")
    assert Settings.from_env({}).engines.warehouse == "postgres"


def test_manifest_lists_every_object_with_its_length():
    m = manifest("clean-bucket", {"orders/order_date=2026-01-02/data_0.parquet": 120,
                                  "orders/order_date=2026-01-01/data_0.parquet": 99})
    assert m == {"entries": [
        {"url": "s3://clean-bucket/orders/order_date=2026-01-01/data_0.parquet", "mandatory": True,
         "meta": {"content_length": 99}},
        {"url": "s3://clean-bucket/orders/order_date=2026-01-02/data_0.parquet", "mandatory": True,
         "meta": {"content_length": 120}}]}


def test_a_partition_is_copied_through_a_staging_table_of_the_file_columns():
    spec = CLEAN_TABLES["orders"]
    sql = partition_copy_sql(spec, "landing.\"orders\"", "s3://b/_lifecycle/redshift-manifests/orders/x.json",
                             "arn:aws:iam::1:role/copy", "2026-01-02", "_loaded_at")
    create, copy, insert, drop = sql
    file_cols = [c for c, _ in spec.columns]
    assert create.startswith('CREATE TEMP TABLE "stage_orders" (')
    assert [part.strip().split(" ")[0].strip('"') for part in create[create.index("(") + 1:-1].split(", ")] == file_cols
    assert '"order_date"' not in create and "VARCHAR(65535)" in create  # strings: not Redshift's TEXT
    assert copy == ("COPY \"stage_orders\" FROM 's3://b/_lifecycle/redshift-manifests/orders/x.json' "
                    "IAM_ROLE 'arn:aws:iam::1:role/copy' FORMAT AS PARQUET MANIFEST")
    assert insert.endswith("CAST('2026-01-02' AS date), GETDATE() FROM \"stage_orders\"")
    assert '"order_date", "_loaded_at")' in insert
    assert drop == 'DROP TABLE "stage_orders"'
    assert redshift_type("decimal(10,2)") == "numeric(10,2)"


def test_spectrum_ddl_maps_each_lake_database_as_an_external_schema():
    """The lakehouse arrangement on Redshift: one external schema per Glue database of the lake,
    through the role Redshift assumes, usable by the dbt login; printed by the CLI."""
    from typer.testing import CliRunner

    from lifecycle.cli import app
    from lifecycle.warehouse.redshift import spectrum_ddl

    env = {**AWS, "LIFECYCLE_NAME_PREFIX": "acme", "AWS_DEFAULT_REGION": "eu-west-1",
           "LIFECYCLE_REDSHIFT_COPY_ROLE_ARN": "arn:aws:iam::1:role/spectrum"}
    settings = Settings.from_env(env)
    ddl = spectrum_ddl(settings)
    statements = [s.strip() for s in ddl.split(";") if s.strip() and not s.strip().startswith("--")]
    for database in ("lake_clean", "lake_curated"):
        assert (f'CREATE EXTERNAL SCHEMA IF NOT EXISTS "{database}"\n  FROM DATA CATALOG DATABASE '
                f"'{database}' REGION '{settings.aws.region}'\n  IAM_ROLE 'arn:aws:iam::1:role/spectrum'") in ddl
        assert f'GRANT USAGE ON SCHEMA "{database}" TO "lifecycle_dbt";' in ddl
    assert len([s for s in statements if "CREATE EXTERNAL SCHEMA" in s]) == 2
    with pytest.raises(ValueError, match="LIFECYCLE_REDSHIFT_COPY_ROLE_ARN"):
        spectrum_ddl(Settings.from_env(AWS))
    assert "arn:aws:iam::2:role/other" in spectrum_ddl(Settings.from_env(AWS), "arn:aws:iam::2:role/other")
    printed = CliRunner().invoke(app, ["lake", "spectrum-ddl"], env=env)
    assert printed.exit_code == 0, printed.output
    assert printed.output == ddl + "\n"
