"""A small tenant's search finds its own chunks even when a big tenant's crowd the HNSW index.

pgvector's HNSW scan ranks every user's chunks together and filters by user afterwards, among
its ``ef_search`` candidates only; without the exact path for small tenants, the small user
here gets nothing back.
"""

from __future__ import annotations

import numpy as np
import pytest

from docingest.runtime import Runtime
from tests.fixtures.chunks import index_generation, insert_chunks, unit

pytestmark = pytest.mark.integration
DIM = 384


def test_a_small_tenant_gets_its_own_nearest_chunks(runtime: Runtime) -> None:
    from docingest.db.repository import generation_sql

    rng = np.random.default_rng(7)
    query = unit(rng.normal(size=DIM))
    # The big tenant: 3,000 chunks all closer to the query than any of the small tenant's.
    insert_chunks(runtime, "big", unit(query + 0.3 * rng.normal(size=(3000, DIM)) / np.sqrt(DIM)))
    small_vectors = unit(rng.normal(size=(5, DIM)))
    small = insert_chunks(runtime, "small", small_vectors)
    expected = [small[i] for i in np.argsort(-(small_vectors @ query))[:3]]
    generation = index_generation(runtime)
    with runtime.pool().connection() as conn, conn.transaction():
        conn.execute("SET LOCAL hnsw.ef_search = 40")
        conn.execute("SET LOCAL enable_sort = off")  # the HNSW scan alone, as a planner may choose it
        hnsw = conn.execute(
            generation_sql("search_vector", generation), {"user_id": "small", "embedding": query, "limit": 3}
        ).fetchall()
        conn.execute("SET LOCAL enable_sort = on")
        exact = runtime.repo.search_vector(conn, user_id="small", embedding=query, limit=3, ef_search=40)
        fallback = runtime.repo.search_vector(
            conn, user_id="small", embedding=query, limit=3, ef_search=40, exact_max_chunks=0
        )
    assert len(hnsw) < 3  # the HNSW scan alone: the big tenant's chunks filled its candidates
    assert [r["chunk_id"] for r in exact] == expected
    assert [r["chunk_id"] for r in fallback] == expected  # a big tenant's short HNSW answer
    assert [round(r["score"], 5) for r in exact] == [
        round(float(small_vectors[small.index(c)] @ query), 5) for c in expected
    ]
