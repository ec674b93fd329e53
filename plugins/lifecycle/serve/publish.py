"""Publish the serving layer: atomic schema swap, then the static dashboard.

Input: ``Settings``; schema ``serving_next`` in ``warehouse``, freshly built by dbt.
Output: schema ``serving`` replaced by ``serving_next`` in one transaction (readers see the
old tables or the new ones, never a half-built table; ``bi_reader`` keeps its grants), a
self-contained HTML dashboard with inline SVG charts (``lifecycle.serve.dashboard``) at
``settings.dashboard_path`` and in the serving bucket
(``dashboard/index.html``), and row counts per serving table.

Rerunning after a publish finds no ``serving_next`` and changes nothing. A ``serving_next``
without every table a publication holds (dbt's serving models and the recommendations, passed
by the stage runner) is refused: ``serving`` is never replaced by a partial build.
"""

from __future__ import annotations

from lifecycle import faults
from lifecycle.clients import pg
from lifecycle.dataops.pages import write_page
from lifecycle.security.pg_roles import ensure_reader
from lifecycle.settings import Settings
from lifecycle.sql import ident

NEXT, LIVE, OLD = "serving_next", "serving", "serving_previous"
READER_ROLE = "bi_reader"  # the default of settings.pg.bi_reader_user


def _schema_exists(cur, name: str) -> bool:
    cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,))
    return cur.fetchone() is not None



class PublishRefused(RuntimeError):
    """``serving_next`` lacks tables a publication must hold (the message names them)."""


def swap(settings: Settings, required: tuple[str, ...] = ()) -> bool:
    """Swap ``serving_next`` in as ``serving``. Returns False when there is nothing to publish;
    raises ``PublishRefused`` (``serving`` untouched) when ``serving_next`` lacks a ``required``
    table."""
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('lifecycle.serve_publish'))")
        if not _schema_exists(cur, NEXT):
            return False
        # Two runs overlapping: run A's publish takes serving_next while run B's dbt is still
        # building into it, and B's dbt then re-creates serving_next with only the models it
        # had left. Publishing that would drop the others from serving: refuse instead.
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (NEXT,))
        missing = sorted(set(required) - {r[0] for r in cur.fetchall()})
        if missing:
            raise PublishRefused(
                f"{NEXT} lacks {', '.join(missing)}: not published, {LIVE} is unchanged (another run published "
                f"the build this one was finishing, or its dbt build did not complete; the next build completes it)")
        ensure_reader(settings, cur)
        reader = ident(settings.pg.bi_reader_user)
        cur.execute(f"DROP SCHEMA IF EXISTS {OLD} CASCADE")
        if _schema_exists(cur, LIVE):
            cur.execute(f"ALTER SCHEMA {LIVE} RENAME TO {OLD}")
        cur.execute(f"ALTER SCHEMA {NEXT} RENAME TO {LIVE}")
        cur.execute(f"GRANT USAGE ON SCHEMA {LIVE} TO {reader}")
        cur.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {LIVE} TO {reader}")
        cur.execute(f"DROP SCHEMA IF EXISTS {OLD} CASCADE")
        faults.point("serve.before_commit")  # chaos: a worker killed with the swap not committed
    return True


def serving_counts(settings: Settings) -> dict[str, int]:
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                    "ORDER BY table_name", (LIVE,))
        tables = [r[0] for r in cur.fetchall()]
        counts = {}
        for t in tables:
            cur.execute(f'SELECT count(*) FROM {LIVE}."{t}"')
            counts[t] = cur.fetchone()[0]
    return counts


def render_dashboard(settings: Settings) -> str:
    """The dashboard page (``lifecycle.serve.dashboard``) for what ``serving`` holds now."""
    from lifecycle.serve.dashboard import render

    return render(settings)


def publish_dashboard(settings: Settings) -> dict:
    file, s3 = write_page(settings, render_dashboard(settings), settings.dashboard_path, "index.html")
    return {"dashboard_file": file, "dashboard_s3": s3}


def run(settings: Settings, required: tuple[str, ...] = ()) -> dict:
    """The swap (refused unless ``serving_next`` holds every ``required`` table), the counts and
    the dashboard."""
    settings = settings.for_stage("serve")  # its IAM role when stage roles are on
    swapped = swap(settings, required)
    counts = serving_counts(settings)
    out = {"swapped": swapped, "tables": counts, "rows_out": sum(counts.values())}
    if {"daily_sales", "funnel_daily", "product_performance"} <= counts.keys():
        out.update(publish_dashboard(settings))
    return out
