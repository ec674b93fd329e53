# One entry point. `make demo` and `make test` on a fresh machine with Python 3.11+ and git.
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock requirements-spark.lock pyproject.toml | cksum | cut -d' ' -f1)
export AIRFLOW__COSMOS__ENABLE_TELEMETRY := False
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DO_NOT_TRACK := 1

SCALE ?= 1000000
EVENTS ?= 200000

.PHONY: help install browser demo test lint airflow up down status dbt-manifest dbt-docs lock clean reset bench chaos

help:
	@echo "make demo      install, start the embedded services, run the whole lifecycle once, report"
	@echo "make test      the whole test suite (starts and stops its own services)"
	@echo "make airflow   Airflow 3 on the embedded services, UI on http://localhost:8080"
	@echo "make up|down|status   the embedded services (Postgres + moto)"
	@echo "make lint      ruff (with Airflow's AIR rules)"
	@echo "make chaos     the fault-injection suite (tests/chaos, quick and slow cases); table in .lifecycle/chaos-report.md"
	@echo "make bench     stage throughput vs raw baselines (SCALE=1000000 EVENTS=200000); results in bench/results/"
	@echo "make dbt-docs  generate dbt docs into dbt_project/target"
	@echo "make browser   install Chromium (Debian package) for the dashboard test, if missing"
	@echo "make reset     stop services and delete .lifecycle/ (all local state)"

install: $(STAMP)

$(STAMP): requirements.lock requirements-spark.lock pyproject.toml
	@$(PY) -c 'import sys; assert sys.version_info >= (3, 11) and sys.version_info < (3, 13), "Python 3.11 or 3.12 is required (set PY=/path/to/python3.11)"'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.8
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install -q -r requirements.lock
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install -q --no-deps -e .
	@# real Apache Spark (optional): only where a Java runtime is found (README, "Spark engine")
	@if command -v java >/dev/null 2>&1; then VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install -q -r requirements-spark.lock; \
	else echo "java not found: skipping pyspark (the Spark engine test will be skipped)"; fi
	@rm -f $(VENV)/.installed-*
	@touch $@

# Chromium for the dashboard test (driven by Playwright's Python client; never
# `playwright install`, which downloads a browser). Debian/Ubuntu package, as root in CI.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then echo "chromium: $(CHROMIUM)"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null \
	  || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null; }; \
	  echo "chromium: installed $$($(CHROMIUM) --version)"; \
	else echo "chromium not found at $(CHROMIUM): install it (apt-get install chromium) or the dashboard test is skipped"; fi

dbt-manifest: install
	@$(BIN)/python -c 'from lifecycle.orchestrate import build_dbt_manifest; build_dbt_manifest()'

demo: install dbt-manifest
	$(BIN)/lifecycle demo

test: install dbt-manifest
	$(BIN)/python -m pytest

# every chaos case, the slow ones too (the quick ones also run in `make test`); docs/chaos.md
chaos: install dbt-manifest
	$(BIN)/python -m pytest tests/chaos -m chaos -p no:cacheprovider

bench: install dbt-manifest
	$(BIN)/python -m lifecycle.bench --scale $(SCALE) --events $(EVENTS)

lint: install
	$(BIN)/ruff check dags plugins tests

airflow: install dbt-manifest up
	$(BIN)/lifecycle infra apply > /dev/null
	$(BIN)/lifecycle airflow

up: install
	$(BIN)/lifecycle services up

down: install
	$(BIN)/lifecycle services down

status: install
	$(BIN)/lifecycle services status

dbt-docs: install dbt-manifest
	cd dbt_project && ../$(BIN)/dbt docs generate --profiles-dir . && echo "open dbt_project/target/index.html"

# Re-resolve the pinned dependencies (needs the package registry).
lock: install
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile requirements-spark.in -c requirements.lock --python-version 3.11 -o requirements-spark.lock

reset: down
	rm -rf .lifecycle

clean: reset
	rm -rf $(VENV) dbt_project/target dbt_project/logs
