"""Vector search latency p50/p99 over 100,000 chunks with the HNSW index (query embedding excluded).

A fresh embedded database gets ``n`` chunks of one user (384-dim unit vectors drawn
around 500 random centres, so neighbourhoods exist as with real text; short
texts), loaded with COPY, then their generation's HNSW index (cosine, m=32,
ef_construction=200, partial on the generation: migration 009) is built. Each query is ``Repository.search_vector`` on its
HNSW path (``exact_max_chunks=0``; ``hnsw.ef_search`` 100, top 10, the join to
``documents`` included) with a precomputed query vector, timed from the client,
on one connection. Also: recall@10 of those results against the exact path
(``search_vector_exact``) on 20 queries, and whether the plan uses the HNSW index.
Target: p50 under 20 ms.

Filtered (``SearchFilter``): a broad filter (metadata ``half=0``: 50 of the 100 documents) on
the HNSW path (``exact_max_chunks=0``) with its recall@10 against the exact ranking of the
matching chunks, and a selective one (one document's ids: 1% of the chunks) on the exact path;
their p50 as a ratio of the unfiltered one's.

    python -m bench search [--quick]
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np

from bench.common import Figure, percentile, scratch_settings
from docingest.domain import Generation


def _vectors(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    v = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 0.8, (n, 384))  # cos to centre ~0.78
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def load_chunks(rt: Any, n: int, rng: np.random.Generator, centres: np.ndarray) -> tuple[Generation, float]:
    """COPY ``n`` chunks (100 documents of user ``bench``) of one generation (model ``bench``,
    384 dimensions), then build that generation's HNSW index as a worker does
    (``Repository.ensure_generation``: partial, on the cast, ``CONCURRENTLY``); returns the
    generation and the build's seconds."""
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.rows import dict_row

    per_doc = -(-n // 100)
    with psycopg.connect(rt.url, row_factory=dict_row, autocommit=True) as admin:
        generation = rt.repo.ensure_generation(admin, provider="openai", model="bench", dimensions=384)
        # loaded first, indexed after: a bulk build, as for an existing table
        admin.execute(f"DROP INDEX upload_pipeline.document_chunks_hnsw_g{generation.generation_id}")
    with rt.pool().connection() as conn:
        register_vector(conn)
        docs = [uuid.uuid4() for _ in range(100)]
        with conn.cursor().copy(
            "COPY upload_pipeline.documents (document_id, user_id, filename, mime, "
            "bytes_len, file_sha256, raw_path, meta) FROM STDIN"
        ) as copy:
            for i, d in enumerate(docs):
                meta = f'{{"half": {i % 2}}}'
                copy.write_row((d, "bench", f"doc{i}.md", "text/markdown", 1, f"{i:064x}", f"k/{d}", meta))
        vecs = _vectors(rng, centres, n)
        with conn.cursor().copy(
            "COPY upload_pipeline.document_chunks (chunk_id, document_id, user_id, "
            "ordinal, text, token_count, embedding, embed_model, generation_id) FROM STDIN"
        ) as copy:
            for i in range(n):
                copy.write_row(
                    (
                        uuid.uuid4(),
                        docs[i // per_doc],
                        "bench",
                        i % per_doc,
                        f"chunk {i} of the benchmark",
                        6,
                        vecs[i],
                        "bench",
                        generation.generation_id,
                    )
                )
        conn.execute(
            "INSERT INTO upload_pipeline.user_generations (user_id, generation_id) VALUES ('bench', %s)",
            (generation.generation_id,),
        )
        conn.commit()
    with psycopg.connect(rt.url, row_factory=dict_row, autocommit=True) as admin:
        admin.execute("SET maintenance_work_mem = '1GB'")
        started = time.perf_counter()
        rt.repo.ensure_generation(admin, provider="openai", model="bench", dimensions=384)
        build_s = time.perf_counter() - started
        admin.execute("ANALYZE upload_pipeline.document_chunks, upload_pipeline.documents")
    return generation, build_s


def run(quick: bool = False) -> list[Figure]:
    from pgvector.psycopg import register_vector
    from psycopg import sql

    from docingest.db.repository import generation_sql
    from docingest.runtime import Runtime
    from docingest.services.filters import SearchFilter

    n = 5_000 if quick else 100_000
    queries = 100 if quick else 500
    rng = np.random.default_rng(6)
    centres = rng.normal(size=(500, 384))
    rt = Runtime(scratch_settings())
    try:
        generation, build_s = load_chunks(rt, n, rng, centres)
        qv = _vectors(rng, centres, queries + 20)
        times, results = [], []
        with rt.pool().connection() as conn:
            register_vector(conn)
            plan = conn.execute(
                sql.SQL("EXPLAIN ") + generation_sql("search_vector", generation),
                {"user_id": "bench", "embedding": qv[0], "limit": 10},
            ).fetchall()
            uses_hnsw = any(f"document_chunks_hnsw_g{generation.generation_id}" in str(r) for r in plan)
            for i, q in enumerate(qv[: queries + 10]):
                started = time.perf_counter()
                with conn.transaction():
                    rows = rt.repo.search_vector(
                        conn, user_id="bench", embedding=q, limit=10, ef_search=100, exact_max_chunks=0
                    )
                if i >= 10:  # the first 10 warm the cache
                    times.append((time.perf_counter() - started) * 1000)
                    results.append({r["chunk_id"] for r in rows})
            hits = 0
            for q, got in zip(qv[10:30], results[:20], strict=True):
                with conn.transaction():
                    exact = {
                        r["chunk_id"]
                        for r in rt.repo.search_vector(
                            conn, user_id="bench", embedding=q, limit=10, exact_max_chunks=n
                        )
                    }
                hits += len(got & exact)
            one_document = conn.execute(
                "SELECT document_id FROM upload_pipeline.documents WHERE user_id = 'bench' LIMIT 1"
            ).fetchone()
            assert one_document is not None
            broad = SearchFilter.build(meta={"half": 0}).sql_params()
            selective = SearchFilter.build(document_ids=[one_document["document_id"]]).sql_params()
            broad_times, selective_times, broad_results = [], [], []
            for i, q in enumerate(qv[: queries // 2 + 10]):
                started = time.perf_counter()
                with conn.transaction():
                    rows = rt.repo.search_vector(
                        conn,
                        user_id="bench",
                        embedding=q,
                        limit=10,
                        ef_search=100,
                        exact_max_chunks=0,
                        filter=broad,
                    )
                middle = time.perf_counter()
                with conn.transaction():
                    rt.repo.search_vector(conn, user_id="bench", embedding=q, limit=10, filter=selective)
                if i >= 10:
                    broad_times.append((middle - started) * 1000)
                    selective_times.append((time.perf_counter() - middle) * 1000)
                    broad_results.append({r["chunk_id"] for r in rows})
            broad_hits = 0
            for q, got in zip(qv[10:30], broad_results[:20], strict=True):
                with conn.transaction():
                    exact = {
                        r["chunk_id"]
                        for r in rt.repo.search_vector(
                            conn, user_id="bench", embedding=q, limit=10, exact_max_chunks=n, filter=broad
                        )
                    }
                broad_hits += len(got & exact)
    finally:
        rt.close()
    p50 = percentile(times, 0.50)
    return [
        Figure("search", "chunks", n),
        Figure("search", "HNSW build", round(build_s, 1), "s"),
        Figure("search", "plan uses the HNSW index", int(uses_hnsw), "bool", "1"),
        Figure("search", "vector search p50", round(percentile(times, 0.50), 2), "ms", "< 20"),
        Figure("search", "vector search p99", round(percentile(times, 0.99), 2), "ms"),
        Figure("search", "recall@10 vs exact (20 queries)", round(hits / 200, 3), "x"),
        Figure(
            "search",
            "broad filter (50%), HNSW: p50 / unfiltered p50",
            round(percentile(broad_times, 0.5) / p50, 2),
            "x",
        ),
        Figure("search", "broad filter, HNSW: recall@10 vs exact filtered", round(broad_hits / 200, 3), "x"),
        Figure(
            "search",
            "selective filter (1%), exact: p50 / unfiltered p50",
            round(percentile(selective_times, 0.5) / p50, 2),
            "x",
        ),
    ]
