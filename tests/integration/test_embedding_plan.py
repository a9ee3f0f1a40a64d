"""``embedding_plan``: the embedding stage's plan, read without the chunk texts."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import numpy as np
import pytest

from docingest.runtime import Runtime
from tests.integration.helpers import register, rows, write_docs

pytestmark = pytest.mark.integration
MODEL = "text-embedding-3-small"


def _buffer(rt: Runtime, tmp_path: Path, texts: list[str]) -> tuple[uuid.UUID, list[uuid.UUID]]:
    document_id = register(rt, write_docs(tmp_path / "in", 1))[0].document.document_id
    ids = [uuid.uuid4() for _ in texts]
    with rt.pool().connection() as conn:
        rt.repo.replace_chunk_buffer(
            conn,
            document_id,
            [(cid, i, text, {}, 5) for i, (cid, text) in enumerate(zip(ids, texts, strict=True))],
        )
    return document_id, ids


def _plan(rt: Runtime, document_id: uuid.UUID, use_cache: bool = True) -> list[dict]:
    with rt.pool().connection() as conn:
        return rt.repo.embedding_plan(conn, document_id, model=MODEL, dimensions=384, use_cache=use_cache)


def test_the_plan_carries_each_texts_sha256_and_the_cached_vectors(runtime: Runtime, tmp_path: Path) -> None:
    texts = ["first chunk", "second chunk, déjà vu ✓", "first chunk"]
    document_id, ids = _buffer(runtime, tmp_path, texts)
    cached = np.full(384, 0.5, dtype=np.float32)
    with runtime.pool().connection() as conn:
        runtime.repo.insert_vectors(conn, document_id, [ids[2]], cached[None, :], MODEL)
        runtime.repo.embedding_cache_put(
            conn,
            model=MODEL,
            dimensions=384,
            hashes=[hashlib.sha256(b"first chunk").digest()],
            chunk_ids=[ids[2]],
        )  # the cache copies the buffered vector
    plan = _plan(runtime, document_id)
    assert [r["chunk_id"] for r in plan] == ids  # in ordinal order
    assert [r["text_sha256"] for r in plan] == [hashlib.sha256(t.encode()).digest() for t in texts]
    assert [r["has_vector"] for r in plan] == [False, False, True]
    assert np.array_equal(plan[0]["cached"], cached)
    assert plan[1]["cached"] is None and plan[2]["cached"] is None  # has its vector: not looked up
    assert all(r["cached"] is None for r in _plan(runtime, document_id, use_cache=False))


def test_a_chunk_buffered_before_migration_004_is_hashed_by_the_plan(
    runtime: Runtime, tmp_path: Path
) -> None:
    texts = ["plain ascii", "ünïcödé and emoji 🎉", "line one\nline two\ttab"]
    document_id, _ = _buffer(runtime, tmp_path, texts)
    rows(
        runtime,
        "UPDATE upload_pipeline.document_chunk_buffer SET text_sha256 = NULL"
        " WHERE document_id = %s RETURNING chunk_id",
        (document_id,),
    )
    plan = _plan(runtime, document_id)
    assert [r["text_sha256"] for r in plan] == [hashlib.sha256(t.encode()).digest() for t in texts]


def test_chunk_texts_come_back_in_the_order_asked(runtime: Runtime, tmp_path: Path) -> None:
    texts = [f"chunk number {i}" for i in range(10)]
    document_id, ids = _buffer(runtime, tmp_path, texts)
    order = [7, 2, 9, 0]
    with runtime.pool().connection() as conn:
        got = runtime.repo.chunk_texts(conn, document_id, [ids[i] for i in order])
        with pytest.raises(KeyError):
            runtime.repo.chunk_texts(conn, uuid.uuid4(), ids[:1])  # another document's: refused
    assert got == [texts[i] for i in order]


def test_buffered_vectors_read_back_exactly_as_written(runtime: Runtime, tmp_path: Path) -> None:
    """insert_vectors writes pgvector's binary form itself (one numpy pass, not a Vector per row)."""
    document_id, ids = _buffer(runtime, tmp_path, ["a", "b", "c"])
    vectors = np.random.default_rng(7).standard_normal((3, 384)).astype(np.float32)
    vectors[1, :3] = [0.0, -0.0, np.float32(1e-38)]  # signed zero and a subnormal survive too
    with runtime.pool().connection() as conn:
        runtime.repo.insert_vectors(conn, document_id, ids, vectors, MODEL)
        got = conn.execute(
            "SELECT chunk_id, embedding, embed_model FROM upload_pipeline.document_vector_buffer"
            " WHERE document_id = %s",
            (document_id,),
        ).fetchall()
    by_id = {r["chunk_id"]: r for r in got}
    assert set(by_id) == set(ids) and {r["embed_model"] for r in got} == {MODEL}
    for cid, vec in zip(ids, vectors, strict=True):
        assert np.array_equal(by_id[cid]["embedding"].to_numpy(), vec)
    assert [r["has_vector"] for r in _plan(runtime, document_id)] == [True, True, True]


def test_the_plan_read_in_pages_by_ordinal_is_the_whole_plan(runtime: Runtime, tmp_path: Path) -> None:
    texts = [f"chunk number {i}" for i in range(10)]
    document_id, ids = _buffer(runtime, tmp_path, texts)
    whole = _plan(runtime, document_id)
    with runtime.pool().connection() as conn:

        def page(after: int | None, limit: int | None) -> list[dict]:
            return runtime.repo.embedding_plan(
                conn,
                document_id,
                model=MODEL,
                dimensions=384,
                use_cache=True,
                after_ordinal=after,
                limit=limit,
            )

        head = page(None, 4)
        rest = page(head[-1]["ordinal"], None)
        assert page(9, None) == [] and len(page(None, 100)) == 10
    assert [r["ordinal"] for r in head] == [0, 1, 2, 3]
    assert head + rest == whole and [r["chunk_id"] for r in whole] == ids


def test_a_chunk_with_a_context_is_hashed_and_read_for_embedding_with_it(
    runtime: Runtime, tmp_path: Path
) -> None:
    document_id = register(runtime, write_docs(tmp_path / "in", 1))[0].document.document_id
    ids = [uuid.uuid4(), uuid.uuid4()]
    with runtime.pool().connection() as conn:
        runtime.repo.replace_chunk_buffer(
            conn,
            document_id,
            [
                (ids[0], 0, "Vacuum often.", {"embedded_context": "Routine Vacuuming > Wraparound"}, 5),
                (ids[1], 1, "No context here.", {}, 5),
            ],
        )
        texts = runtime.repo.chunk_texts(conn, document_id, ids)
    assert texts == ["Routine Vacuuming > Wraparound\n\nVacuum often.", "No context here."]
    plan = _plan(runtime, document_id)
    assert [r["text_sha256"] for r in plan] == [hashlib.sha256(t.encode()).digest() for t in texts]
    rows(  # a row without a stored digest (buffered before migration 004) is hashed alike
        runtime,
        "UPDATE upload_pipeline.document_chunk_buffer SET text_sha256 = NULL WHERE document_id = %s"
        " RETURNING chunk_id",
        (document_id,),
    )
    assert [r["text_sha256"] for r in _plan(runtime, document_id)] == [r["text_sha256"] for r in plan]


def test_chunks_are_embedded_under_their_title_and_headings_and_stored_without_them(
    runtime: Runtime, tmp_path: Path
) -> None:
    from docingest.providers.embedding.hashing import HashingEmbedder
    from docingest.services.ingest import ingest

    sent: list[str] = []

    class Recording(HashingEmbedder):
        def _embed(self, texts: list[str]) -> np.ndarray:
            sent.extend(texts)
            return super()._embed(texts)

    runtime._embedder = Recording()
    page = tmp_path / "vacuum.html"
    body = (
        "<p>" + " ".join(f"Sentence {i} is about vacuuming tables and dead rows." for i in range(60)) + "</p>"
    )
    page.write_text(
        "<html><head><title>25.1. Routine Vacuuming</title></head><body>"
        f"<h1>25.1. Routine Vacuuming</h1>{body}<h2>Preventing Wraparound</h2>{body.replace('Sentence', 'Line')}"
        "</body></html>"
    )
    summary = ingest(runtime, [page], user_id="u1")
    assert summary.complete == 1, summary.failures
    stored = rows(
        runtime,
        "SELECT text, meta FROM upload_pipeline.document_chunks WHERE user_id = 'u1' ORDER BY ordinal",
    )
    assert len(sent) == len(stored) > 2  # every chunk distinct: each embedded once
    for text, row in zip(sent, stored, strict=True):
        context = row["meta"].get("embedded_context")
        assert text == (
            f"{context}\n\n{row['text']}" if context else row["text"]
        )  # the stored text is the chunk's
    contexts = [r["meta"].get("embedded_context") for r in stored]
    assert contexts[0] == "25.1. Routine Vacuuming"  # the <h1> equal to the title is not repeated
    assert "25.1. Routine Vacuuming > Preventing Wraparound" in contexts
    tokens = runtime.chunker().count_tokens(sent)
    assert max(tokens) <= runtime.settings.embedding_max_tokens  # context included: nothing truncated
