#!/usr/bin/env bash
# One-shot setup of the compose stack, run by the `airflow-init` service before any other
# Airflow component starts (they wait for it with condition: service_completed_successfully).
#
# Input: the environment set in docker-compose.yml (LIFECYCLE_TARGET=compose, endpoints, DB).
# Output: an up-to-date Airflow metadata DB and the AWS resources of infra/ on LocalStack + moto.
# Both steps are idempotent: `docker compose run --rm airflow-init` can be rerun at any time,
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

echo "[airflow-init] done"
