"""Vector recommendations: embeddings from behaviour, pgvector index, serving table, CLI.

1. ``embed`` alone: products bought (or viewed) together end up nearer than unrelated ones.
2. On the simulator's own data (its baskets have category affinity): one simulated day in
   ``sales``, its order lines put where the dbt marts would be (``marts.fct_order_items``),
   then ``recommend.build`` + the atomic swap, as ``serve_publish`` runs them. Checks: the
   HNSW index exists and answers the nearest-neighbour query, every product with behaviour
   has ``k`` recommendations, products bought together are nearer than products never
   bought together, the CLI answers (and says clearly when the product is unknown or the
   services are down), and a rebuild gives the same rows.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter
from datetime import date

import pytest
from conftest import lifecycle_env, reset_environment

from lifecycle.clients import pg
from lifecycle.serve import publish, recommend


def test_embed_puts_products_bought_together_nearer_than_unrelated_ones():
    # two clusters: {1,2,3} bought together, {4,5,6} bought together, one stray pair 3-4
    pairs = [(1, 2, 20), (1, 3, 15), (2, 3, 18), (4, 5, 22), (4, 6, 16), (5, 6, 19), (3, 4, 1),
             (7, 8, 5)]
    vec = recommend.embed(pairs, dim=4)
    assert set(vec) == set(range(1, 9))
    assert all(len(v) == 4 for v in vec.values())
    for a, b in ((1, 2), (2, 3), (4, 5), (5, 6)):
        for c in (5, 6, 8):
            if {a, b} & {5, 6} and c in (5, 6):
                continue
            assert recommend.cosine(vec[a], vec[b]) > recommend.cosine(vec[a], vec[c]), (a, b, c)
    # deterministic: the same input gives the same vectors
    assert recommend.embed(list(reversed(pairs)), dim=4) == vec


def test_embed_of_nothing_is_empty():
    assert recommend.embed([]) == {}
    assert recommend.embed([(1, 1, 3.0), (2, 3, 0)]) == {}


@pytest.fixture(scope="module")
def published(settings):
    """One simulated day; its order lines as the marts; embeddings built and published."""
    from lifecycle.sources.simulator import simulate_day

    reset_environment(settings)
    simulate_day(settings, date(2026, 3, 2), scale=400)
    with pg(settings, settings.pg.sales_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT order_id, product_id FROM order_items ORDER BY order_id, line_no")
        lines = cur.fetchall()
        cur.execute("SELECT product_id, name, category FROM products ORDER BY product_id")
        products = cur.fetchall()
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS marts CASCADE; DROP SCHEMA IF EXISTS serving_next CASCADE; "
                    "DROP SCHEMA IF EXISTS serving CASCADE; CREATE SCHEMA marts; CREATE SCHEMA serving_next")
        cur.execute("CREATE TABLE marts.fct_order_items (order_id bigint, product_id bigint)")
        cur.execute("CREATE TABLE marts.fct_events (session_id varchar, product_id bigint, event_type varchar)")
        cur.execute("CREATE TABLE serving_next.product_performance (product_id bigint, name varchar, "
                    "category varchar)")
        cur.executemany("INSERT INTO marts.fct_order_items VALUES (%s, %s)", lines)
        cur.executemany("INSERT INTO serving_next.product_performance VALUES (%s, %s, %s)", products)
    first = recommend.build(settings)
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM serving_next.product_recommendations ORDER BY 1, 2")
        first_rows = cur.fetchall()
    again = recommend.build(settings)  # a rerun before the swap replaces, never appends
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM serving_next.product_recommendations ORDER BY 1, 2")
        again_rows = cur.fetchall()
    assert publish.swap(settings)
    baskets: dict[int, set[int]] = {}
    for order_id, product_id in lines:
        baskets.setdefault(order_id, set()).add(product_id)
    together = Counter(p for b in baskets.values() for p in itertools.combinations(sorted(b), 2))
    return {"first": first, "again": again, "first_rows": first_rows, "again_rows": again_rows,
            "together": together, "category": {p: c for p, _, c in products},
            "products": [p for p, _, _ in products]}


def _embeddings(settings) -> dict[int, list[float]]:
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT product_id, embedding::text FROM serving.product_embeddings")
        return {p: json.loads(v) for p, v in cur.fetchall()}


def test_build_reports_and_a_rebuild_changes_nothing(published):
    first, again = published["first"], published["again"]
    assert first["products"] == len(published["products"]) > 20
    assert first["rows_out"] == first["products"] * recommend.TOP_K
    assert first == again
    assert published["first_rows"] == published["again_rows"]


def test_embeddings_are_in_pgvector_with_an_hnsw_index_the_query_uses(settings, published):
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'serving' "
                    "AND tablename = 'product_embeddings' AND indexname = 'product_embeddings_hnsw'")
        (indexdef,) = cur.fetchone()
        assert "USING hnsw" in indexdef and "vector_cosine_ops" in indexdef
        cur.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'serving.product_embeddings'::regclass AND attname = 'embedding'")
        assert cur.fetchone()[0] == f"vector({recommend.DIM})"
        cur.execute("SET enable_seqscan = off")
        cur.execute("EXPLAIN SELECT product_id FROM serving.product_embeddings ORDER BY embedding <=> "
                    "(SELECT embedding FROM serving.product_embeddings WHERE product_id = 1) LIMIT 5")
        plan = "\n".join(r[0] for r in cur.fetchall())
    assert "product_embeddings_hnsw" in plan, plan


def test_products_bought_together_are_nearer_than_unrelated_ones(settings, published):
    vec = _embeddings(settings)
    together = published["together"]
    category = published["category"]
    # for every product a: a product bought with it at least 3 times is nearer to a than any
    # unrelated product (never bought with it, nor in its category: a product of the same
    # category that happens never to share an order with a is *rightly* near it, through the
    # products both are bought with)
    checked = wrong = 0
    for a in vec:
        friends = [b for b in vec if b != a and together[tuple(sorted((a, b)))] >= 3]
        strangers = [c for c in vec if c != a and together[tuple(sorted((a, c)))] == 0
                     and category[c] != category[a]]
        for b, c in itertools.product(friends, strangers):
            checked += 1
            wrong += recommend.cosine(vec[a], vec[b]) <= recommend.cosine(vec[a], vec[c])
    print(f"\nbought together vs unrelated: {wrong} of {checked} triples out of order "
          f"({wrong / checked:.1%})")
    assert checked > 100
    assert wrong / checked < 0.05, f"{wrong} of {checked} triples out of order"


def test_recommendation_table_is_top_k_of_the_index_and_mostly_same_category(settings, published):
    category = published["category"]
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT product_id, rank, recommended_product_id, score "
                    "FROM serving.product_recommendations ORDER BY product_id, rank")
        rows = cur.fetchall()
    by_product: dict[int, list] = {}
    for p, rank, rec, score in rows:
        by_product.setdefault(p, []).append((rank, rec, float(score)))
    vec = _embeddings(settings)
    assert set(by_product) == set(vec)
    for p, recs in by_product.items():
        assert [r for r, _, _ in recs] == list(range(1, recommend.TOP_K + 1))
        assert p not in {rec for _, rec, _ in recs}
        scores = [s for _, _, s in recs]
        assert scores == sorted(scores, reverse=True)
        assert scores[0] == pytest.approx(recommend.cosine(vec[p], vec[recs[0][1]]), abs=1e-3)
    top1_same = sum(category[p] == category[recs[0][1]] for p, recs in by_product.items())
    print(f"\ntop recommendation in the same category: {top1_same} of {len(by_product)}")
    assert top1_same / len(by_product) > 0.8


def test_recommend_matches_the_serving_table(settings, published):
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT recommended_product_id FROM serving.product_recommendations "
                    "WHERE product_id = 1 ORDER BY rank")
        expected = [r[0] for r in cur.fetchall()]
    got = recommend.recommend(settings, 1, k=recommend.TOP_K)
    assert [r["product_id"] for r in got] == expected
    assert all(r["name"] and r["category"] for r in got)


def _cli(settings, *args, **env):
    return subprocess.run([sys.executable, "-m", "lifecycle.cli", *args],
                          env={**lifecycle_env(settings), **env}, capture_output=True, text=True, timeout=120)


def test_cli_recommend(settings, published):
    proc = _cli(settings, "recommend", "1", "--k", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 3 and {"product_id", "name", "category", "score"} <= rows[0].keys()
    proc = _cli(settings, "recommend", "1")
    assert proc.returncode == 0 and "products similar to 1:" in proc.stdout
    help_text = _cli(settings, "recommend", "--help").stdout
    assert "Examples:" in help_text and "lifecycle recommend 7 --k 10" in help_text


def test_cli_recommend_says_what_is_wrong(settings, published):
    proc = _cli(settings, "recommend", "987654321")
    assert proc.returncode == 1
    assert "unknown product 987654321" in proc.stderr and "ids 1.." in proc.stderr
    down = _cli(settings, "recommend", "1", LIFECYCLE_PG_PORT="1")
    assert down.returncode == 1
    assert "cannot reach the warehouse" in down.stderr and "lifecycle services up" in down.stderr
    assert "Traceback" not in down.stderr


def test_nothing_to_build_after_the_swap(settings, published):
    assert "skipped" in recommend.build(settings)


def test_a_partial_build_is_refused_and_serving_keeps_every_table(settings, published):
    """Two overlapping runs, replayed in their order: run A's publish took ``serving_next``
    while run B's dbt was building into it; B's dbt then re-created ``serving_next`` with only
    the models it had left (here: the embeddings). B's publish must not replace ``serving``."""
    from datetime import UTC, datetime

    from lifecycle.pipeline.stages import publish as publish_stage

    before = publish.serving_counts(settings)
    assert "product_embeddings" in before
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA serving_next; CREATE TABLE serving_next.product_embeddings AS "
                    "SELECT * FROM serving.product_embeddings")
    try:
        day = datetime(2026, 11, 20, tzinfo=UTC)
        with pytest.raises(publish.PublishRefused, match=r"serving_next lacks daily_sales, funnel_daily, "
                           r"product_performance, product_recommendations: not published, serving is unchanged"):
            publish_stage(settings, day, day)
        assert publish.serving_counts(settings) == before
    finally:
        with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
            cur.execute("DROP SCHEMA IF EXISTS serving_next CASCADE")
