"""A filtered search ranks exactly the chunks of the matching documents: its answer is the one a
brute-force scan of the matching rows gives (numpy cosine ranking; the full-text leg filtered
after the fact and fused the same way), below and above ``exact_max_chunks`` (the HNSW path and
its exact fallback), with the hashing and the local embedder."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import numpy as np
import pytest
from psycopg import sql

from docingest.db.repository import filtered_generation_sql
from docingest.errors import InvalidFilter
from docingest.runtime import Runtime
from docingest.services.filters import SearchFilter
from docingest.services.search import Searcher, reciprocal_rank_fusion
from tests.conftest import make_settings
from tests.fixtures.chunks import insert_chunks, unit
from tests.fixtures.filtered import BASE, DIM, Row, analyze, brute_force, make_corpus, matches

pytestmark = pytest.mark.integration


def filters(rows: list[Row]) -> dict[str, SearchFilter]:
    alice_docs = sorted({r.document_id for r in rows if r.user == "alice"}, key=str)
    bob_doc = next(r.document_id for r in rows if r.user == "bob")
    return {
        "source prefix with a LIKE wildcard": SearchFilter.build(source_prefix="notes_"),
        "metadata text form (2024 and '2024' and a list)": SearchFilter.build(meta={"year": "2024"}),
        "metadata in, and a MIME type": SearchFilter.build(
            meta={"year": [2023, 2022]}, mime=["application/pdf"]
        ),
        "a boolean against 'false'": SearchFilter.build(meta={"draft": "false", "team": "a"}),
        "a float": SearchFilter.build(meta={"year": 2024.5}),
        "an integral float (2024.0 against 2024, '2024' and 2024.0)": SearchFilter.build(
            meta={"year": 2024.0}
        ),
        "document ids (one of bob's)": SearchFilter.build(document_ids=[*alice_docs[:3], bob_doc]),
        "creation window": SearchFilter.build(
            created_after=(BASE + timedelta(days=5)).isoformat(), created_before="2024-01-12"
        ),
        "prefix and team": SearchFilter.build(source_prefix="papers/", meta={"team": "b"}),
        "nothing matches": SearchFilter.build(meta={"year": "1999"}),
    }


def _searcher(rt: Runtime, exact_max_chunks: int) -> Searcher:
    searcher = rt.searcher()
    searcher.config = dataclasses.replace(searcher.config, exact_max_chunks=exact_max_chunks)
    return searcher


def _fused(
    rt: Runtime, searcher: Searcher, rows: list[Row], f: SearchFilter, query: str, k: int
) -> list[UUID]:
    """Hybrid by brute force: the matching rows' cosine ranking and the unfiltered full-text
    ranking with the other rows dropped, fused as the searcher fuses."""
    vector = searcher.embed_query(query)
    n = max(k, searcher.candidates)
    by_id = {r.chunk_id: r for r in rows}
    with rt.database.transaction() as conn:
        text_rows = rt.repo.search_fulltext(
            conn, user_id="alice", query=query, embedding=vector, limit=100_000
        )
    text_ids = [str(r["chunk_id"]) for r in text_rows if matches(by_id[r["chunk_id"]], f)][:n]
    vec_ids = [str(c) for c in brute_force(rows, "alice", f, vector, n)]
    fused = reciprocal_rank_fusion(
        [vec_ids, text_ids], k=searcher.config.rrf_k, weights=[1.0, searcher.config.text_weight]
    )
    return [UUID(c) for c, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


@pytest.fixture
def corpus(runtime: Runtime) -> list[Row]:
    rng = np.random.default_rng(17)
    return make_corpus(runtime, iter(unit(rng.normal(size=(3 * 24 * 6, DIM)))), docs=24, chunks=6)


@pytest.mark.parametrize("exact_max_chunks", [20_000, 10])
def test_a_filtered_search_returns_the_brute_force_answer(
    runtime: Runtime, corpus: list[Row], exact_max_chunks: int
) -> None:
    """Exact path (20,000) and HNSW path (10: every filter here matches more; the index holds
    432 chunks, under the filtered ef_search of 1,000, so HNSW finds every candidate)."""
    searcher = _searcher(runtime, exact_max_chunks)
    query = "alpha kappa"
    vector = searcher.embed_query(query)
    for name, f in filters(corpus).items():
        expected = brute_force(corpus, "alice", f, vector, 8)
        hits = searcher.search(query, user_id="alice", k=8, mode="vector", filter=f)
        assert [UUID(h.chunk_id) for h in hits] == expected, name
        hybrid = searcher.search(query, user_id="alice", k=8, mode="hybrid", filter=f)
        assert [UUID(h.chunk_id) for h in hybrid] == _fused(runtime, searcher, corpus, f, query, 8), name
        # each filter but the last lets some of alice's chunks through, and leaves some out
        matched = len(brute_force(corpus, "alice", f, vector, 10_000))
        assert (0 < matched < 144) if name != "nothing matches" else matched == 0, name
    if exact_max_chunks == 10:  # the HNSW scan itself (priced in, as for a broad filter) is exact here
        f = filters(corpus)["source prefix with a LIKE wildcard"]
        with runtime.database.transaction() as conn:
            conn.execute("SET LOCAL enable_sort = off")
            conn.execute("SET LOCAL hnsw.ef_search = 1000")
            generation = runtime.repo.serving_generation(conn, "alice")
            assert generation is not None
            hnsw_sql = filtered_generation_sql("search_vector_filtered", generation)
            params = {"user_id": "alice", "embedding": vector, "limit": 8, **f.sql_params()}
            plan = " ".join(r["QUERY PLAN"] for r in conn.execute(sql.SQL("EXPLAIN ") + hnsw_sql, params))
            hnsw = [r["chunk_id"] for r in conn.execute(hnsw_sql, params)]
        assert f"document_chunks_hnsw_g{generation.generation_id}" in plan
        assert hnsw == brute_force(corpus, "alice", f, vector, 8)
    # another user's document id names nothing of theirs
    bob = {r.chunk_id for r in corpus if r.user == "bob"}
    f = filters(corpus)["document ids (one of bob's)"]
    assert not bob & {UUID(h.chunk_id) for h in searcher.search(query, user_id="alice", k=50, filter=f)}


def test_a_selective_filter_over_a_crowded_index_falls_back_to_the_exact_answer(
    runtime: Runtime, corpus: list[Row]
) -> None:
    """1,500 chunks of another user, all nearer the query than any of alice's, fill HNSW's
    1,000 candidates: the filtered HNSW scan alone brings back fewer than asked, and the
    search answers with the exact ranking of the matching rows. (With statistics, the planner
    itself ranks so few matching chunks without HNSW; sorting is priced out here to make it
    take the index, as it does for a filter its estimates get wrong.)"""
    searcher = _searcher(runtime, 10)
    query = "alpha kappa"
    vector = searcher.embed_query(query)
    rng = np.random.default_rng(5)
    insert_chunks(
        runtime,
        "crowd",
        unit(vector + 0.3 * rng.normal(size=(1500, DIM)) / np.sqrt(DIM)),
        model=runtime.embedder().model,
    )
    analyze(runtime)
    f = SearchFilter.build(source_prefix="papers/")
    expected = brute_force(corpus, "alice", f, vector, 8)
    with runtime.database.transaction() as conn:
        conn.execute("SET LOCAL enable_sort = off")
        conn.execute("SET LOCAL hnsw.ef_search = 1000")
        params = {"user_id": "alice", "embedding": vector, "limit": 8, **f.sql_params()}
        generation = runtime.repo.serving_generation(conn, "alice")
        assert generation is not None
        hnsw_sql = filtered_generation_sql("search_vector_filtered", generation)
        plan = conn.execute(sql.SQL("EXPLAIN ") + hnsw_sql, params).fetchall()
        hnsw = conn.execute(hnsw_sql, params).fetchall()
        rows = runtime.repo.search_vector(
            conn, user_id="alice", embedding=vector, limit=8, exact_max_chunks=10, filter=f.sql_params()
        )
    assert f"document_chunks_hnsw_g{generation.generation_id}" in " ".join(r["QUERY PLAN"] for r in plan)
    assert len(hnsw) < 8
    assert [r["chunk_id"] for r in rows] == expected
    hits = searcher.search(query, user_id="alice", k=8, mode="vector", filter=f)
    assert [UUID(h.chunk_id) for h in hits] == expected


def test_an_empty_filter_is_the_unfiltered_search(runtime: Runtime, corpus: list[Row]) -> None:
    searcher = runtime.searcher()
    plain = searcher.search("alpha", user_id="alice", k=10, mode="hybrid")
    assert (
        searcher.search("alpha", user_id="alice", k=10, mode="hybrid", filter=SearchFilter.build()) == plain
    )


def test_bad_filters_are_refused_by_name() -> None:
    for kwargs, words in [
        ({"meta": {"": "x"}}, "metadata key"),
        ({"meta": {"year": None}}, "string, number or boolean"),
        ({"meta": {"year": []}}, "at least one value"),
        ({"meta": {"k": [str(i) for i in range(101)]}}, "at most 100"),
        ({"created_after": "last tuesday"}, "ISO 8601"),
        ({"document_ids": ["nope"]}, "UUID"),
        ({"source_prefix": ""}, "source_prefix"),
        ({"meta": {"x": float("nan")}}, "finite"),
    ]:
        with pytest.raises(InvalidFilter, match=words):
            SearchFilter.build(**kwargs)


def test_the_local_embedder_ranks_filtered_chunks_as_brute_force(
    tmp_path: Path, db_url: str, models_dir: Path
) -> None:
    settings = make_settings(
        db_url,
        tmp_path / "data",
        embedding_provider="local",
        embedding_backend="torch",
        models_dir=models_dir,
    )
    rt = Runtime(settings, migrate=False)
    try:
        sentences = [
            f"{topic} note {i}: {detail}"
            for i, (topic, detail) in enumerate(
                (t, d)
                for t in ("invoices", "hiking trails", "database indexes", "sourdough bread")
                for d in ("a summary", "the details", "open questions", "a checklist", "what changed")
            )
        ]
        embedded = iter(unit(rt.embedder().embed(sentences * 3)))
        corpus = make_corpus(rt, embedded, docs=10, chunks=2)
        for exact_max_chunks in (20_000, 2):
            searcher = _searcher(rt, exact_max_chunks)
            query = "how do database indexes work"
            vector = searcher.embed_query(query)
            for name, f in filters(corpus).items():
                hits = searcher.search(query, user_id="alice", k=5, mode="vector", filter=f)
                assert [UUID(h.chunk_id) for h in hits] == brute_force(corpus, "alice", f, vector, 5), name
    finally:
        rt.close()
