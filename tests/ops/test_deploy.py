"""`lifecycle deploy` (make deploy): the MWAA bucket layout, against moto in-process.

Input: the repository, packaged by ``lifecycle.ops.deploy.package``; an empty versioned bucket.
Output: assertions that the objects land where MWAA reads them, that ``plugins.zip`` holds an
importable ``lifecycle`` package (by ``zipimport`` and unzipped), that ``requirements.txt``
pins the lock's versions, and that a rerun uploads nothing while a changed or removed DAG
file is uploaded or deleted alone.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
import zipimport
from pathlib import Path
from unittest import mock

import pytest
from botocore.client import BaseClient

REPO = Path(__file__).resolve().parents[2]
BUCKET = "airflow-lifecycle-test"


@pytest.fixture(scope="module")
def packaged():
    from lifecycle.ops.deploy import package

    return package()


@pytest.fixture
def mwaa(packaged):
    from moto import mock_aws

    from lifecycle import clients
    from lifecycle.settings import Settings

    env = {"LIFECYCLE_TARGET": "aws", "LIFECYCLE_PG_HOST": "warehouse.example.internal",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "LIFECYCLE_MWAA_BUCKET": BUCKET}
    clients.forget_clients()  # a session made before moto was imported lacks its hook
    try:
        with mock_aws():
            s = Settings.from_env(env)
            s3 = clients.aws(s, "s3")
            s3.create_bucket(Bucket=BUCKET)
            s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
            yield s, s3
    finally:
        clients.forget_clients()


def _puts():
    calls = []
    original = BaseClient._make_api_call

    def spy(self, operation_name, api_params):
        if operation_name == "PutObject":
            calls.append(api_params["Key"])
        return original(self, operation_name, api_params)

    return calls, mock.patch.object(BaseClient, "_make_api_call", spy)


def test_objects_land_where_mwaa_reads_them(mwaa, packaged):
    from lifecycle.ops.deploy import sync

    settings, s3 = mwaa
    result = sync(settings, packaged)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    dag_files = {f"dags/{p.name}" for p in (REPO / "dags").glob("*.py")}
    assert dag_files and dag_files <= keys
    assert {"plugins.zip", "requirements.txt", "startup.sh", "dags/dbt_project/dbt_project.yml",
            "dags/dbt_project/target/manifest.json"} <= keys
    assert not [k for k in keys if "__pycache__" in k or k.endswith(".pyc") or "/logs/" in k]
    assert not [k for k in keys if k.startswith("dags/dbt_project/") and k.endswith(".py")], "not DAG files"
    assert not [k for k in keys if k.startswith("dags/dbt_project/target/") and not k.endswith("manifest.json")]
    assert sorted(result["uploaded"]) == sorted(keys)
    assert all(result["versions"].values()), "MWAA needs object versions (a versioned bucket)"

    reqs = s3.get_object(Bucket=BUCKET, Key="requirements.txt")["Body"].read().decode()
    pins = [line for line in reqs.splitlines() if line and not line.startswith("#")]
    assert "astronomer-cosmos==1.15.1" in pins and "apache-airflow-providers-amazon==9.39.0" in pins
    assert all("==" in p for p in pins)
    assert not [p for p in pins if p.startswith(("apache-airflow==", "pgserver", "moto", "pytest"))]
    assert "--constraint" in reqs


def test_plugins_zip_imports(mwaa, packaged, tmp_path):
    from lifecycle.ops.deploy import sync

    settings, s3 = mwaa
    sync(settings, packaged)
    body = s3.get_object(Bucket=BUCKET, Key="plugins.zip")["Body"].read()
    names = zipfile.ZipFile(io.BytesIO(body)).namelist()
    assert "lifecycle/settings.py" in names and "infra/resources.yaml" in names
    assert not [n for n in names if "__pycache__" in n or n.startswith("plugins/")]
    archive = tmp_path / "plugins.zip"
    archive.write_bytes(body)
    assert zipimport.zipimporter(str(archive)).find_spec("lifecycle") is not None

    # as MWAA does: unzipped into <airflow home>/plugins, importable from there, infra/ beside it
    home = tmp_path / "airflow"
    zipfile.ZipFile(archive).extractall(home / "plugins")
    (home / "infra").symlink_to(home / "plugins" / "infra")  # what startup.sh does
    code = ("import lifecycle.settings as s, lifecycle.infra.apply as i, lifecycle.ops.deploy, lifecycle.cli; "
            "print(s.__file__); print(sorted(i.load_spec(s.Settings())))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIFECYCLE_", "AIRFLOW"))}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(home / "plugins")}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == str(home / "plugins" / "lifecycle" / "settings.py")
    assert "buckets" in proc.stdout


def test_rerun_uploads_only_what_changed(mwaa, packaged):
    from lifecycle.ops.deploy import package, sync

    settings, s3 = mwaa
    sync(settings, packaged)
    puts, spy = _puts()
    with spy:
        again = sync(settings, package())  # packaged anew: the zip is reproducible
    assert puts == [] and again["uploaded"] == [] and again["deleted"] == []
    assert sorted(again["unchanged"]) == sorted(packaged)

    changed = dict(packaged)
    changed["dags/lake_clean.py"] = packaged["dags/lake_clean.py"] + b"\n# changed\n"
    del changed["dags/observe.py"]
    with spy:
        result = sync(settings, changed)
    assert puts == ["dags/lake_clean.py"] == result["uploaded"]
    assert result["deleted"] == ["dags/observe.py"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert "dags/observe.py" not in keys and "plugins.zip" in keys


def test_deploy_needs_the_bucket_setting():
    from lifecycle.ops.deploy import sync
    from lifecycle.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="LIFECYCLE_MWAA_BUCKET"):
        sync(Settings(target="aws"), {})
