"""Postgres roles of the pipeline stages, created and converged by ``lifecycle infra apply``.

Input: ``Settings`` (the admin login creates the roles; each role's user and password come
from the settings, i.e. the environment; ``None`` = no password, for the embedded Postgres
that trusts loopback). Output: these roles and grants, idempotently:

- ``cdc`` (``settings.pg.cdc_user``): LOGIN REPLICATION (reads the logical slot); CONNECT on
  ``sales`` only; SELECT on the tables of ``sales.public`` (the full load, as the DMS source
  user needs), no write anywhere.
- ``loader``: CONNECT on the warehouse; owns schema ``landing`` (and everything in it); no
  CREATE on the database, so it writes ``landing`` only.
- ``dbt``: CONNECT and CREATE on the warehouse (it creates and owns the models' schemas:
  staging, intermediate, marts, serving_next, analytics), SELECT on ``landing``.
- ``bi_reader``: ``ensure_reader`` below (reads ``serving`` only; ``serve.publish`` grants it the swapped-in schema).

CONNECT is revoked from PUBLIC on ``sales``, the warehouse and Airflow's database, so a role
reaches only the databases granted here. Objects found owned by someone else in ``landing``
or the dbt schemas (an environment from before these roles) are handed to their role. On the
aws target with Redshift as warehouse, only the ``sales`` part applies (docs/security.md).
"""

from __future__ import annotations

from lifecycle.clients import pg
from lifecycle.settings import Settings
from lifecycle.sql import ident

LANDING = "landing"
DBT_SCHEMAS = ("staging", "intermediate", "marts", "serving_next", "analytics")
_ALTER = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE", "f": "FOREIGN TABLE"}



def _ensure_role(cur, user: str, password: str | None, attributes: str) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
    if not cur.fetchone():
        cur.execute(f"CREATE ROLE {ident(user)} LOGIN")
    cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if cur.fetchone()[0]:
        cur.execute(f"ALTER ROLE {ident(user)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE {attributes}")
    elif "NOREPLICATION" not in attributes:
        # RDS: the admin is no superuser and may not set REPLICATION; its role grants it
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'rds_replication'")
        if cur.fetchone():
            cur.execute(f"GRANT rds_replication TO {ident(user)}")
    if password:
        cur.execute(f"ALTER ROLE {ident(user)} PASSWORD %s", (password,))


def _hand_over(cur, schema: str, owner: str) -> None:
    """Make ``owner`` the owner of ``schema`` and of every relation in it."""
    cur.execute(f"ALTER SCHEMA {ident(schema)} OWNER TO {ident(owner)}")
    cur.execute("""SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = %s AND c.relkind IN ('r','p','v','m','S','f')
                     AND pg_get_userbyid(c.relowner) <> %s
                     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'a'
                                     AND d.classid = 'pg_class'::regclass)""", (schema, owner))
    for name, kind in cur.fetchall():  # owned sequences (serial columns) follow their table
        cur.execute(f"ALTER {_ALTER[kind]} {ident(schema)}.{ident(name)} OWNER TO {ident(owner)}")


def _schemas(cur) -> set[str]:
    cur.execute("SELECT nspname FROM pg_namespace")
    return {r[0] for r in cur.fetchall()}


def apply_sales(settings: Settings) -> None:
    cdc = ident(settings.pg.cdc_user)
    with pg(settings, settings.pg.sales_db, autocommit=True) as conn, conn.cursor() as cur:
        _ensure_role(cur, settings.pg.cdc_user, settings.pg.cdc_password, "REPLICATION NOINHERIT")
        cur.execute("SELECT datname FROM pg_database WHERE datname IN (%s, %s)",
                    (settings.pg.sales_db, settings.pg.airflow_db))
        for (db,) in cur.fetchall():
            cur.execute(f"REVOKE CONNECT ON DATABASE {ident(db)} FROM PUBLIC")
        cur.execute(f"GRANT CONNECT ON DATABASE {ident(settings.pg.sales_db)} TO {cdc}")
        cur.execute(f"GRANT USAGE ON SCHEMA public TO {cdc}")
        cur.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {cdc}")
        # tables the admin creates later (the source schema, a new source table)
        cur.execute(f"ALTER DEFAULT PRIVILEGES FOR ROLE {ident(settings.pg.user)} IN SCHEMA public "
                    f"GRANT SELECT ON TABLES TO {cdc}")


def apply_warehouse(settings: Settings) -> None:
    loader, dbt = ident(settings.pg.loader_user), ident(settings.pg.dbt_user)
    db = ident(settings.pg.warehouse_db)
    with pg(settings, settings.pg.warehouse_db, autocommit=True) as conn, conn.cursor() as cur:
        _ensure_role(cur, settings.pg.loader_user, settings.pg.loader_password, "NOREPLICATION NOINHERIT")
        _ensure_role(cur, settings.pg.dbt_user, settings.pg.dbt_password, "NOREPLICATION NOINHERIT")
        ensure_reader(settings, cur)
        cur.execute(f"REVOKE CONNECT, CREATE ON DATABASE {db} FROM PUBLIC")
        cur.execute(f"GRANT CONNECT ON DATABASE {db} TO {loader}, {dbt}")
        cur.execute(f"GRANT CREATE ON DATABASE {db} TO {dbt}")
        cur.execute(f"REVOKE CREATE ON DATABASE {db} FROM {loader}")
        existing = _schemas(cur)
        if LANDING not in existing:
            cur.execute(f"CREATE SCHEMA {LANDING} AUTHORIZATION {loader}")
        _hand_over(cur, LANDING, settings.pg.loader_user)
        cur.execute(f"GRANT USAGE ON SCHEMA {LANDING} TO {dbt}")
        cur.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {LANDING} TO {dbt}")
        cur.execute(f"ALTER DEFAULT PRIVILEGES FOR ROLE {loader} IN SCHEMA {LANDING} GRANT SELECT ON TABLES TO {dbt}")
        for schema in DBT_SCHEMAS:
            if schema in existing:
                _hand_over(cur, schema, settings.pg.dbt_user)


def apply(settings: Settings) -> list[str]:
    """Converge the roles; returns the role names."""
    apply_sales(settings)
    if settings.engines.warehouse != "redshift":
        apply_warehouse(settings)
        return [settings.pg.cdc_user, settings.pg.loader_user, settings.pg.dbt_user, settings.pg.bi_reader_user]
    return [settings.pg.cdc_user]


def ensure_reader(settings: Settings, cur) -> None:
    """The read-only BI role: LOGIN (with ``settings.pg.bi_reader_password`` when set; the
    embedded Postgres trusts loopback), CONNECT on the warehouse, nothing else. Its only
    grants are on ``serving`` (given by ``swap`` after each rename), so it is refused
    everywhere else (landing, staging, marts, serving_next) and cannot write anywhere."""
    reader = ident(settings.pg.bi_reader_user)
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (settings.pg.bi_reader_user,))
    if not cur.fetchone():
        cur.execute(f"CREATE ROLE {reader} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT")
    if settings.pg.bi_reader_password:
        cur.execute(f"ALTER ROLE {reader} LOGIN PASSWORD %s", (settings.pg.bi_reader_password,))
    else:
        cur.execute(f"ALTER ROLE {reader} LOGIN")
    cur.execute(f"GRANT CONNECT ON DATABASE {ident(settings.pg.warehouse_db)} TO {reader}")
    # read-only by default in every session of this role (defence in depth)
    cur.execute(f"ALTER ROLE {reader} SET default_transaction_read_only = on")
