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
LATENCY_EVENTS ?= 5

.PHONY: help install browser demo test test-unit lint airflow up down status dbt-manifest dbt-docs lock clean reset bench bench-latency deploy pre-commit secrets chaos

# `make help` lists every target with a `## ` description on its line (tests/test_make.py
# checks that each .PHONY target has one), so the list cannot go stale.
help: ## list every target with what it does (this list)
	@echo "usage: make <target>   (the two to start with: make demo, make test)"
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z0-9_.-]+:[^=]*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "variables: SCALE=$(SCALE) EVENTS=$(EVENTS) (make bench), PY=$(PY), CHROMIUM=$(CHROMIUM)"

install: $(STAMP) ## create .venv from the lock (uv; pyspark too when java is found)

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

# Chromium for the browser tests (driven by Playwright's Python client; never
# `playwright install`, which downloads a browser). Debian/Ubuntu package, as root in CI.
# Elsewhere (macOS: `brew install --cask chromium`) point LIFECYCLE_CHROMIUM at the binary.
CHROMIUM ?= $(or $(LIFECYCLE_CHROMIUM),/usr/bin/chromium)
browser: ## install Chromium (Debian package) for the browser tests, if missing
	@if [ -x "$(CHROMIUM)" ]; then echo "chromium: $(CHROMIUM)"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null \
	  || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null; }; \
	  echo "chromium: installed $$($(CHROMIUM) --version)"; \
	else echo "chromium not found at $(CHROMIUM): install it (Debian/Ubuntu: apt-get install chromium; macOS: brew install --cask chromium, then export LIFECYCLE_CHROMIUM=/Applications/Chromium.app/Contents/MacOS/Chromium) or the browser tests are skipped"; fi

dbt-manifest: install ## parse the dbt project (dbt_project/target/manifest.json) for Cosmos
	@$(BIN)/python -c 'from lifecycle.ops.dag_runs import build_dbt_manifest; build_dbt_manifest()'

demo: install dbt-manifest ## install, start the embedded services, run the whole lifecycle once, report
	$(BIN)/lifecycle demo

test: install dbt-manifest ## the whole test suite (starts and stops its own services)
	$(BIN)/python -m pytest

# the tests that need no Postgres, moto or Airflow (marker `services`, tests/conftest.py)
test-unit: install dbt-manifest ## the tests that need no services (under a minute)
	$(BIN)/python -m pytest -m "not services and not chaos_slow" -p no:cacheprovider

# every chaos case, the slow ones too (the quick ones also run in `make test`); docs/chaos.md
chaos: install dbt-manifest ## the fault-injection suite (tests/chaos, quick and slow cases); table in .lifecycle/chaos-report.md
	$(BIN)/python -m pytest tests/chaos -m chaos -p no:cacheprovider

bench: install dbt-manifest ## stage throughput vs raw baselines (SCALE, EVENTS); results in bench/results/
	$(BIN)/python -m lifecycle.bench --scale $(SCALE) --events $(EVENTS)

bench-latency: install dbt-manifest ## event produced -> visible in serving, under the real scheduler (LATENCY_EVENTS)
	$(BIN)/python -m lifecycle.bench.latency --events $(LATENCY_EVENTS)

lint: install ## ruff (with Airflow's AIR rules) and the import contracts (lint-imports, pyproject.toml)
	$(BIN)/ruff check dags plugins tests
	$(BIN)/lint-imports

# .pre-commit-config.yaml (local hooks with the venv's tools)
pre-commit: install ## every pre-commit hook on all files: ruff, sqlfluff, yamllint, detect-secrets
	$(BIN)/pre-commit run --all-files

airflow: install dbt-manifest up ## Airflow 3 on the embedded services, UI on http://localhost:8080
	$(BIN)/lifecycle infra apply > /dev/null
	$(BIN)/lifecycle airflow

up: install ## start the embedded services (Postgres + moto)
	$(BIN)/lifecycle services up

down: install ## stop the embedded services
	$(BIN)/lifecycle services down

status: install ## the embedded services: ports, pids, memory
	$(BIN)/lifecycle services status

dbt-docs: install dbt-manifest ## generate the dbt docs into dbt_project/target
	cd dbt_project && ../$(BIN)/dbt docs generate --profiles-dir . && echo "open dbt_project/target/index.html"

# Amazon MWAA: dags/, plugins.zip, requirements.txt, startup.sh to the environment's bucket
# (LIFECYCLE_MWAA_BUCKET; AWS credentials from the usual chain). docs/aws.md.
deploy: install dbt-manifest ## package dags/, plugins.zip, requirements.txt for Amazon MWAA; sync to LIFECYCLE_MWAA_BUCKET
	$(BIN)/lifecycle deploy

# Secret scanner: re-scan a copy of the baseline (line numbers move); fail on any finding not
# audited as a false positive there (docs/security.md).
secrets: install ## secret scanner (detect-secrets) over the tracked files, against .secrets.baseline
	@tmp=$$(mktemp) && cp .secrets.baseline $$tmp && $(BIN)/detect-secrets scan --baseline $$tmp \
	  && $(BIN)/python -m lifecycle.security.secrets_check $$tmp; rc=$$?; rm -f $$tmp; exit $$rc

# Re-resolve the pinned dependencies (needs the package registry).
lock: install ## re-resolve the pinned dependencies (needs the package registry)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile requirements-spark.in -c requirements.lock --python-version 3.11 -o requirements-spark.lock

reset: down ## stop the services and delete .lifecycle/ (all local state)
	rm -rf .lifecycle

clean: ## remove everything the project created: .venv, .lifecycle, dbt output, test output, caches
	@# stop the services first when they can be stopped (a half-installed .venv cannot)
	@if [ -x $(BIN)/lifecycle ]; then $(BIN)/lifecycle services down >/dev/null 2>&1 || true; fi
	rm -rf .lifecycle $(VENV) dbt_project/target dbt_project/logs dbt_project/dbt_packages logs test-output \
	  .pytest_cache .ruff_cache build *.egg-info plugins/*.egg-info
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
	@# benchmark results that were never committed (the committed ones are the published figures)
	@if git rev-parse --git-dir >/dev/null 2>&1; then git ls-files -z --others -- bench/results | xargs -0 rm -f; fi
