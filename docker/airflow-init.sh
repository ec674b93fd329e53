#!/usr/bin/env bash
# One-shot setup of the compose stack, run by the `airflow-init` service before any other
# Airflow component starts (they wait for it with condition: service_completed_successfully).
#
# Input: the environment set in docker-compose.yml (LIFECYCLE_TARGET=compose, endpoints, DB).
# Output: an up-to-date Airflow metadata DB, the AWS resources of infra/ on LocalStack + moto,
# the source tables of database `sales` and the read-only BI role `bi_reader`.
# Every step is idempotent: `docker compose run --rm airflow-init` can be rerun at any time,
# for instance after `docker compose restart localstack`, which loses LocalStack's state.
#
# No admin user is created: Airflow 3's SimpleAuthManager runs with
# AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True in this local stack.
set -euo pipefail

echo "[airflow-init] Airflow $(airflow version)"

echo "[airflow-init] migrating the metadata database"
airflow db migrate

echo "[airflow-init] applying infra/ to the AWS emulators (lifecycle infra apply)"
lifecycle infra apply

echo "[airflow-init] creating the source tables in database sales (if missing)"
# The schema the sales platform owns (plugins/lifecycle/sources/sales_schema.sql), as the
# embedded demo does; CREATE ... IF NOT EXISTS, so reruns change nothing.
python - <<'PY'
from lifecycle.settings import Settings
from lifecycle.sources.sales_db import ensure_schema

ensure_schema(Settings.from_env())
PY

echo "[airflow-init] creating the read-only role bi_reader in database warehouse (if missing)"
# Metabase connects as bi_reader (metabase-provision); serve_publish grants it `serving`.
python - <<'PY'
from lifecycle.clients import pg
from lifecycle.serve.publish import ensure_reader
from lifecycle.settings import Settings

settings = Settings.from_env()
with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
    ensure_reader(settings, cur)
PY

echo "[airflow-init] done"
