"""Product embeddings from behaviour, stored in pgvector, and "similar products" recommendations.

Input: ``Settings``; the marts the dbt build just produced in ``warehouse``:
``marts.fct_order_items`` (which products were bought in the same order) and
``marts.fct_events`` (which products were viewed or put in the cart in the same session).
Schema ``serving_next`` must exist (dbt built it,
``serve_publish`` has not swapped it yet).
Output, in ``serving_next`` (so the atomic swap publishes them together with the other
serving tables; readers never see embeddings of one build and recommendations of another):

- ``product_embeddings (product_id, embedding vector(DIM), interactions, method)`` with an HNSW
  index for cosine distance (pgvector ``vector_cosine_ops``);
- ``product_recommendations (product_id, rank, recommended_product_id, score)``: the top
  ``k`` nearest products of each product, found through that index (score = cosine similarity).

How the embeddings are made (no model download; numpy only):

1. In the warehouse, SQL counts item-item co-occurrences: pairs of products in the same order
   (weight ``PURCHASE_WEIGHT``) and in the same session's page views / add-to-carts
   (weight ``VIEW_WEIGHT``). Only these pair counts leave the database.
2. Positive pointwise mutual information (PPMI, context counts smoothed by ``SMOOTHING``) of
   that symmetric matrix: how much more often two products occur together than their
   popularity alone predicts.
3. Truncated eigendecomposition of the PPMI matrix (the symmetric form of a truncated SVD),
   positive eigenvalues only: ``U_d * sqrt(L_d)``, each row L2-normalised, padded with
   zeros to ``DIM``; the sign of each component is fixed (largest |value| positive) so a rerun
   gives the same vectors. Products without any co-occurrence get no embedding (nothing
   behavioural is known about them) and no recommendations.

Idempotent: every run replaces both tables from the current marts. When ``serving_next`` does
not exist (already published), nothing is done.
"""

from __future__ import annotations

import math

from lifecycle.clients import pg
from lifecycle.settings import Settings

SCHEMA = "serving_next"
LIVE = "serving"
DIM = 16
TOP_K = 5
TABLES = ("product_embeddings", "product_recommendations")  # what build writes into SCHEMA
PURCHASE_WEIGHT = 1.0
VIEW_WEIGHT = 0.5
SMOOTHING = 0.75  # context-distribution smoothing of PMI (Levy, Goldberg & Dagan 2015)
METHOD = f"ppmi-eig(co-purchase x{PURCHASE_WEIGHT:g}, co-view x{VIEW_WEIGHT:g})"

# Item-item co-occurrence in the warehouse: one row per unordered pair (a < b) and its weight.
PAIRS_SQL = f"""
WITH baskets AS (
    SELECT DISTINCT 'order:' || order_id AS basket, product_id, {PURCHASE_WEIGHT}::float8 AS w
    FROM marts.fct_order_items
    UNION ALL
    SELECT DISTINCT 'session:' || session_id AS basket, product_id, {VIEW_WEIGHT}::float8 AS w
    FROM marts.fct_events
    WHERE product_id IS NOT NULL AND event_type IN ('page_view', 'add_to_cart')
      AND session_id IS NOT NULL
)
SELECT a.product_id, b.product_id, sum(a.w)
FROM baskets a
JOIN baskets b ON a.basket = b.basket AND a.product_id < b.product_id
GROUP BY 1, 2
"""


class RecommendError(RuntimeError):
    """A recommendation cannot be given; the message says why and what to do."""


def embed(pairs: list[tuple[int, int, float]], dim: int = DIM) -> dict[int, list[float]]:
    """Embeddings from symmetric co-occurrence counts ``(product_a, product_b, weight)``.

    Returns ``{product_id: unit vector of length dim}`` for every product in a pair.
    Pure numpy (PPMI, then a truncated eigendecomposition), deterministic for the same input.
    """
    import numpy as np

    pairs = [(int(a), int(b), float(w)) for a, b, w in pairs if a != b and w > 0]
    ids = sorted({p for a, b, _ in pairs for p in (a, b)})
    if not ids:
        return {}
    index = {p: i for i, p in enumerate(ids)}
    n = len(ids)
    counts = np.zeros((n, n))
    for a, b, w in pairs:
        counts[index[a], index[b]] += w
        counts[index[b], index[a]] += w
    total = counts.sum()
    row = counts.sum(axis=1)
    context = row ** SMOOTHING
    context = context / context.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log((counts / total) / np.outer(row / total, context))
    ppmi = np.where(np.isfinite(pmi) & (pmi > 0), pmi, 0.0)
    ppmi = (ppmi + ppmi.T) / 2  # the smoothing makes it slightly asymmetric
    # truncated eigendecomposition of the symmetric PPMI matrix, positive part only: a
    # negative eigenvalue would make co-occurring products point away from each other
    values, vectors_all = np.linalg.eigh(ppmi)
    order = np.argsort(values)[::-1]
    values, vectors_all = values[order], vectors_all[:, order]
    d = max(1, min(dim, int((values > 1e-9).sum())))
    vectors = vectors_all[:, :d] * np.sqrt(np.clip(values[:d], 0, None))
    # fix each component's sign (an eigenvector may come out flipped on another platform)
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(d)])
    vectors = vectors * np.where(signs == 0, 1.0, signs)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.where(norms > 0, vectors / np.where(norms > 0, norms, 1.0), 0.0)
    out = {}
    for p, i in index.items():
        v = [round(float(x), 6) for x in vectors[i]] + [0.0] * (dim - d)
        if any(v):
            out[p] = v
    return out


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors (0 when one is all zeros)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def _vector_literal(v: list[float]) -> str:
    return "[" + ",".join(f"{x:.6f}" for x in v) + "]"


def _schema_exists(cur, name: str) -> bool:
    cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,))
    return cur.fetchone() is not None


def ensure_extension(settings: Settings) -> None:
    """``CREATE EXTENSION vector`` in the warehouse (pgvector ships with pgserver's Postgres,
    RDS/Aurora and the compose image); its own transaction, since two concurrent creators clash."""
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('lifecycle.vector_extension'))")
        cur.execute("CREATE EXTENSION IF NOT EXISTS vector")


def build(settings: Settings, k: int = TOP_K, dim: int = DIM) -> dict:
    """Compute the embeddings and the top-``k`` table into ``serving_next`` (one transaction).

    Returns ``{"products": embedded products, "pairs": co-occurring pairs,
    "rows_out": recommendation rows}`` or ``{"skipped": reason}``.
    """
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        if not _schema_exists(cur, SCHEMA):
            return {"skipped": f"no {SCHEMA} schema (already published); nothing to do", "rows_out": 0}
    ensure_extension(settings)
    with pg(settings, settings.pg.warehouse_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('lifecycle.serve_publish'))")
        if not _schema_exists(cur, SCHEMA):  # published meanwhile
            return {"skipped": f"no {SCHEMA} schema (already published); nothing to do", "rows_out": 0}
        cur.execute(PAIRS_SQL)
        pairs = cur.fetchall()
        vectors = embed(pairs, dim)
        cur.execute(f"DROP TABLE IF EXISTS {SCHEMA}.product_recommendations")
        cur.execute(f"DROP TABLE IF EXISTS {SCHEMA}.product_embeddings")
        cur.execute(f"""
            CREATE TABLE {SCHEMA}.product_embeddings (
                product_id   bigint PRIMARY KEY,
                embedding    vector({dim}) NOT NULL,
                interactions numeric(14, 2) NOT NULL,
                method       text NOT NULL
            )""")
        weight: dict[int, float] = {}
        for a, b, w in pairs:
            weight[int(a)] = weight.get(int(a), 0.0) + float(w)
            weight[int(b)] = weight.get(int(b), 0.0) + float(w)
        if vectors:
            from psycopg2.extras import execute_values

            execute_values(
                cur,
                f"INSERT INTO {SCHEMA}.product_embeddings VALUES %s",
                [(p, _vector_literal(v), round(weight[p], 2), METHOD) for p, v in sorted(vectors.items())],
                template="(%s, %s::vector, %s, %s)",
            )
        # the ANN index (HNSW, cosine); built after the load, as pgvector recommends
        cur.execute(f"CREATE INDEX product_embeddings_hnsw ON {SCHEMA}.product_embeddings "
                    "USING hnsw (embedding vector_cosine_ops)")
        cur.execute(f"""
            CREATE TABLE {SCHEMA}.product_recommendations (
                product_id             bigint        NOT NULL,
                rank                   int           NOT NULL,
                recommended_product_id bigint        NOT NULL,
                score                  numeric(6, 4) NOT NULL,
                PRIMARY KEY (product_id, rank)
            )""")
        # top-k per product through the index: a nearest-neighbour query per product
        # (ORDER BY distance LIMIT is what pgvector's index answers); ties broken by id
        cur.execute(f"""
            INSERT INTO {SCHEMA}.product_recommendations
            SELECT p.product_id,
                   row_number() OVER (PARTITION BY p.product_id ORDER BY n.distance, n.product_id)::int,
                   n.product_id,
                   round((1 - n.distance)::numeric, 4)
            FROM {SCHEMA}.product_embeddings p
            CROSS JOIN LATERAL (
                SELECT q.product_id, q.embedding <=> p.embedding AS distance
                FROM {SCHEMA}.product_embeddings q
                WHERE q.product_id <> p.product_id
                ORDER BY q.embedding <=> p.embedding
                LIMIT %s
            ) n""", (k,))
        rows = cur.rowcount
    return {"products": len(vectors), "pairs": len(pairs), "rows_out": rows, "k": k, "dim": dim}


def run(settings: Settings) -> dict:
    """What the ``serve_publish`` DAG's ``build_recommendations`` task returns (for XCom)."""
    return build(settings)


def recommend(settings: Settings, product_id: int, k: int = TOP_K) -> list[dict]:
    """The ``k`` products nearest to ``product_id`` in the published vector index.

    Reads ``serving.product_embeddings`` (nearest-neighbour query, cosine distance) and names
    them from ``serving.product_performance``. Raises ``RecommendError`` with what to do when
    nothing is published yet, the product is unknown, or it has no behaviour to learn from.
    """
    import contextlib

    import psycopg2

    try:
        conn = psycopg2.connect(settings.pg_dsn(settings.pg.warehouse_db), connect_timeout=5)
    except psycopg2.OperationalError as exc:
        raise RecommendError(
            f"cannot reach the warehouse at {settings.pg.host}:{settings.pg.port} "
            f"({str(exc).strip().splitlines()[0]}); start the services with `lifecycle services up` "
            "(or `make up`) and run the lifecycle (`lifecycle run`)") from exc
    with contextlib.closing(conn), conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s), to_regclass(%s)",
                    (f"{LIVE}.product_embeddings", f"{LIVE}.product_performance"))
        emb, perf = cur.fetchone()
        if emb is None or perf is None:
            raise RecommendError("no published recommendations yet: run the lifecycle first "
                                 "(`lifecycle run`, or `make demo`)")
        cur.execute(f"SELECT name FROM {LIVE}.product_performance WHERE product_id = %s", (product_id,))
        if cur.fetchone() is None:
            cur.execute(f"SELECT min(product_id), max(product_id), count(*) FROM {LIVE}.product_performance")
            lo, hi, n = cur.fetchone()
            raise RecommendError(f"unknown product {product_id}: the catalogue has {n} products "
                                 f"(ids {lo}..{hi})")
        cur.execute(f"SELECT 1 FROM {LIVE}.product_embeddings WHERE product_id = %s", (product_id,))
        if cur.fetchone() is None:
            raise RecommendError(f"product {product_id} has no embedding yet: nobody bought or viewed "
                                 "it together with another product")
        cur.execute(f"""
            SELECT n.product_id, p.name, p.category, round((1 - n.distance)::numeric, 4)
            FROM (
                SELECT q.product_id, q.embedding <=> t.embedding AS distance
                FROM {LIVE}.product_embeddings q,
                     (SELECT embedding FROM {LIVE}.product_embeddings WHERE product_id = %s) t
                WHERE q.product_id <> %s
                ORDER BY q.embedding <=> t.embedding
                LIMIT %s
            ) n
            JOIN {LIVE}.product_performance p ON p.product_id = n.product_id
            ORDER BY n.distance, n.product_id""", (product_id, product_id, k))
        return [{"product_id": r[0], "name": r[1], "category": r[2], "score": float(r[3])}
                for r in cur.fetchall()]
