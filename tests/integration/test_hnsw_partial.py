"""The HNSW index holds only the chunks of users searched through it (migration 006).

A user with at most ``SEARCH_EXACT_MAX_CHUNKS`` chunks is searched exactly, so finalize leaves
their chunks out of the index (``hnsw_indexed`` false) and they never pay its inserts; the
document that takes a user past the threshold, and every later one, goes in. A large user's
search ranks the chunks in the index through HNSW and the ones left out exactly, merged.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from psycopg import sql

from docingest.db.repository import generation_sql
from docingest.runtime import Runtime
from docingest.services.ingest import ingest
from tests.conftest import make_settings
from tests.fixtures.chunks import index_generation, insert_chunks, unit

pytestmark = pytest.mark.integration
DIM = 384


def _indexed_by_file(rt: Runtime) -> dict[tuple[str, str], set[bool]]:
    """``{(user, filename): {hnsw_indexed of its chunks}}``."""
    with rt.pool().connection() as conn:
        rows = conn.execute(
            "SELECT d.user_id, d.filename, c.hnsw_indexed FROM upload_pipeline.document_chunks c"
            " JOIN upload_pipeline.documents d USING (document_id)"
        ).fetchall()
    out: dict[tuple[str, str], set[bool]] = {}
    for r in rows:
        out.setdefault((r["user_id"], r["filename"]), set()).add(r["hnsw_indexed"])
    return out


def test_chunks_join_the_index_once_their_user_passes_the_exact_search_threshold(
    db_url: str, tmp_path: Path
) -> None:
    rt = Runtime(make_settings(db_url, tmp_path / "data", search_exact_max_chunks=2), migrate=False)
    try:
        for name in ("a", "b", "c", "d"):  # one chunk each
            folder = tmp_path / name
            folder.mkdir()
            (folder / f"{name}.txt").write_text(f"document {name}: a short text about {name * 3}.\n")
            summary = ingest(rt, [folder], user_id="u1", concurrency=1, poll_seconds=0.05)
            assert (summary.complete, summary.chunks) == (1, 1)
        other = tmp_path / "other"
        other.mkdir()
        (other / "e.txt").write_text("another user's document.\n")
        ingest(rt, [other], user_id="u2", concurrency=1, poll_seconds=0.05)
        indexed = _indexed_by_file(rt)
    finally:
        rt.close()
    assert indexed == {
        ("u1", "a.txt"): {False},  # 1 chunk <= 2: searched exactly
        ("u1", "b.txt"): {False},  # 2 <= 2
        ("u1", "c.txt"): {True},  # 3 > 2: searched through HNSW from now on
        ("u1", "d.txt"): {True},
        ("u2", "e.txt"): {False},  # another user's count is their own
    }


def _ids(rows: list[dict[str, Any]]) -> list[uuid.UUID]:
    return [r["chunk_id"] for r in rows]


def test_a_large_users_search_merges_the_index_with_the_chunks_left_out_of_it(runtime: Runtime) -> None:
    rng = np.random.default_rng(11)
    query = unit(rng.normal(size=DIM))
    # In the index: 2,000 chunks near the query; left out (stored while the user was small):
    # 5 chunks nearer still, which only the exact leg can return.
    insert_chunks(
        runtime, "big", unit(query + 0.6 * rng.normal(size=(2000, DIM)) / np.sqrt(DIM)), indexed=True
    )
    near = unit(query + 0.05 * rng.normal(size=(5, DIM)) / np.sqrt(DIM))
    left_out = insert_chunks(runtime, "big", near, indexed=False)
    generation = index_generation(runtime)
    with runtime.pool().connection() as conn:  # as autovacuum would: the planner sees 2,005 rows
        conn.execute("ANALYZE upload_pipeline.document_chunks")
    with runtime.pool().connection() as conn, conn.transaction():
        through_hnsw = runtime.repo.search_vector(
            conn, user_id="big", embedding=query, limit=8, ef_search=1000, exact_max_chunks=0
        )
        exact = runtime.repo.search_vector(
            conn, user_id="big", embedding=query, limit=8, exact_max_chunks=10**6
        )
        explain = sql.SQL("EXPLAIN ") + generation_sql("search_vector", generation)
        plan = "\n".join(
            str(r)
            for r in conn.execute(explain, {"user_id": "big", "embedding": query, "limit": 8}).fetchall()
        )
    # the indexed leg does go through the generation's HNSW index
    assert f"document_chunks_hnsw_g{generation.generation_id}" in plan
    expected_first = [left_out[i] for i in np.argsort(-(near @ query))]
    assert _ids(through_hnsw)[:5] == expected_first
    assert _ids(through_hnsw) == _ids(exact)
    scores = [r["score"] for r in through_hnsw]
    assert scores == sorted(scores, reverse=True)
    assert len(set(_ids(through_hnsw))) == 8
