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
