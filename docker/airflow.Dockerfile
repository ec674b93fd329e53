# Airflow image of the compose target: Airflow 3 + this project + dbt in its own virtualenv.
#
# Build context is the repository root (docker-compose.yml: build.context "."); what is sent
# to the builder is limited by docker/airflow.Dockerfile.dockerignore (.venv, .git, .env, ...).
#
# Layout inside the image mirrors the repository under /opt/lifecycle, because
# lifecycle.settings.REPO_ROOT is derived from the package's own location
# (plugins/lifecycle/settings.py -> two levels up) and infra/ and dbt_project/ are read
# relative to it.
#
# The tag must match apache-airflow and the Python version of requirements.lock
# (tests/ops/test_compose.py checks both).
FROM apache/airflow:3.3.2-python3.11

# DBT_EXECUTABLE: Cosmos' ExecutionConfig(dbt_executable_path=...) should read it (step 2).
# DAGS_FOLDER: DAG files come from the project. Airflow's plugins folder (/opt/airflow/plugins)
# stays empty on purpose: Airflow would import every .py file under it as a top-level module,
# and `lifecycle` is an installed package instead (step 3).
ENV DBT_EXECUTABLE=/opt/dbt-venv/bin/dbt \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/lifecycle/dags

USER root
# Directories owned by airflow with group 0 writable, as the image's arbitrary-UID model wants.
# .lifecycle exists in the image so the named volume mounted there inherits this ownership.
RUN mkdir -p /opt/lifecycle/.lifecycle /opt/dbt-venv \
    && chown -R airflow:0 /opt/lifecycle /opt/dbt-venv \
    && chmod -R g+rwX /opt/lifecycle /opt/dbt-venv
COPY docker/airflow-init.sh /usr/local/bin/lifecycle-airflow-init
RUN chmod 0755 /usr/local/bin/lifecycle-airflow-init
USER airflow

# 1. Python dependencies: exactly the set pinned in requirements.lock, the same one the
#    embedded target and the tests use, less pgserver: it is the embedded target's Postgres
#    (Postgres is a service here) and has no Linux arm64 wheel, so keeping it would break the
#    build on Apple Silicon. apache-airflow is pinned as well to the base image's own version
#    (AIRFLOW_VERSION is set by the base image), so a lock that disagrees with the image fails
#    the build instead of silently changing Airflow.
COPY --chown=airflow:0 requirements.lock /opt/lifecycle/requirements.lock
RUN grep -v '^pgserver==' /opt/lifecycle/requirements.lock > /tmp/requirements-compose.txt \
    && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/requirements-compose.txt \
    && rm /tmp/requirements-compose.txt

# 2. dbt in its own virtualenv, run by Cosmos as a subprocess, so dbt's dependency pins can
#    never conflict with Airflow's. Versions are constrained by the same lock
#    (dbt-core < 1.12: 1.12 pulls a parser that downloads from outside the package registry).
#    PIP_USER=false: the base image sets PIP_USER=true, which pip refuses inside a virtualenv.
RUN python -m venv /opt/dbt-venv \
    && PIP_USER=false /opt/dbt-venv/bin/pip install --no-cache-dir \
        -c /opt/lifecycle/requirements.lock "dbt-core<1.12" dbt-postgres \
    && /opt/dbt-venv/bin/python -c "import dbt.version, dbt.adapters.postgres; print('dbt', dbt.version.__version__)"

# 3. The project. Editable install (--no-deps: step 1 installed every dependency) so that
#    `import lifecycle` and the `lifecycle` CLI resolve to /opt/lifecycle/plugins/lifecycle.
COPY --chown=airflow:0 pyproject.toml README.md /opt/lifecycle/
COPY --chown=airflow:0 plugins/ /opt/lifecycle/plugins/
COPY --chown=airflow:0 infra/ /opt/lifecycle/infra/
COPY --chown=airflow:0 dbt_project/ /opt/lifecycle/dbt_project/
COPY --chown=airflow:0 dags/ /opt/lifecycle/dags/
RUN pip install --no-cache-dir --no-deps -e /opt/lifecycle \
    && python -c "import lifecycle.settings as s; assert str(s.REPO_ROOT) == '/opt/lifecycle', s.REPO_ROOT"

# 4. The dbt manifest the Cosmos DAG renders from (LoadMode.DBT_MANIFEST, default path
#    dbt_project/target/manifest.json). `dbt parse` needs no database; it is built here
#    because dbt_project/target is kept out of the build context (it may be stale locally).
RUN cd /opt/lifecycle \
    && DBT_SEND_ANONYMOUS_USAGE_STATS=false /opt/dbt-venv/bin/dbt parse \
        --project-dir dbt_project --profiles-dir dbt_project --target compose \
    && test -s dbt_project/target/manifest.json \
    && rm -rf dbt_project/logs
