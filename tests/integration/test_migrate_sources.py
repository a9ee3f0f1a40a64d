"""An index built by the release before sources and generations (migrations up to 007) keeps
working after 008 and 009: each document is a source of its own, each chunk of the generation
its model names, each user served by it, and search answers as before."""

from __future__ import annotations

import hashlib
import itertools
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg.rows import dict_row

from docingest.runtime import Runtime
from tests.conftest import database_before, make_settings
from tests.fixtures.chunks import unit
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration
_names = itertools.count()


def test_an_index_of_the_previous_release_is_migrated_and_searchable(pg_url: str, tmp_path: Path) -> None:
    url = database_before(pg_url, "008")
    rng = np.random.default_rng(3)
    vectors = unit(rng.normal(size=(4, 384)))
    doc, job = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO upload_pipeline.documents (document_id, user_id, filename, mime, bytes_len,"
            " file_sha256, raw_path) VALUES (%s, 'old', 'old.md', 'text/markdown', 10, %s, 'old/raw/x.md')",
            (doc, hashlib.sha256(b"old").hexdigest()),
        )
        conn.execute(
            "INSERT INTO upload_pipeline.upload_jobs (job_id, document_id, stage, state, finished_at)"
            " VALUES (%s, %s, 'complete', 'done', now())",
            (job, doc),
        )
        conn.execute(
            "INSERT INTO upload_pipeline.events (job_id, document_id, stage, type, payload)"
            " VALUES (%s, %s, 'uploaded', 'job_created', '{\"via\": \"ingest\"}')",
            (job, doc),
        )
        for i, v in enumerate(vectors):
            conn.execute(
                "INSERT INTO upload_pipeline.document_chunks (chunk_id, document_id, user_id, ordinal, text,"
                " token_count, embedding, embed_model)"
                " VALUES (%s, %s, 'old', %s, %s, 3, %s::vector, 'hashing-bow-v1')",
                (uuid.uuid4(), doc, i, f"old chunk {i}", "[" + ",".join(map(str, v)) + "]"),
            )
        conn.commit()

    rt = Runtime(make_settings(url, tmp_path / "data"), migrate=False)
    try:
        assert rt.apply_migrations() == [
            "008_sources",
            "009_embedding_generations",
            "010_dashboard",
            "011_object_retention",
            "012_attachments",
        ]
        [document] = rows(rt, "SELECT source, origin, meta FROM upload_pipeline.documents")
        assert document == {"source": str(doc), "origin": "file", "meta": {}}
        [generation] = rows(
            rt, "SELECT provider, model, dimensions FROM upload_pipeline.embedding_generations"
        )
        assert generation == {"provider": "hashing", "model": "hashing-bow-v1", "dimensions": 384}
        assert rows(rt, "SELECT count(DISTINCT generation_id) AS n FROM upload_pipeline.document_chunks") == [
            {"n": 1}
        ]
        with rt.pool().connection() as conn:
            served = rt.repo.serving_generation(conn, "old")
            assert served is not None and served.label == "hashing/hashing-bow-v1/384"
            hits = rt.repo.search_vector(
                conn, user_id="old", embedding=vectors[2], limit=1, exact_max_chunks=0
            )
        assert hits[0]["text"] == "old chunk 2" and hits[0]["source"] == str(doc)
        indexes = rows(rt, "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'document_chunks_hnsw_g%%'")
        assert len(indexes) == 1
    finally:
        rt.close()


def test_workers_starting_together_record_one_generation_and_build_its_index_once(db_url: str) -> None:
    """Several processes starting at once on a new model: each gets the generation (none fails
    on the insert another made meanwhile), and its index is built once, valid."""
    import threading

    from docingest.db.repository import Repository

    found: list[object] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            with psycopg.connect(db_url, row_factory=dict_row, autocommit=True) as conn:
                barrier.wait()
                found.append(
                    Repository().ensure_generation(conn, provider="openai", model="new", dimensions=8)
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(found) == 4 and len(set(found)) == 1
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        indexes = conn.execute(
            "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
            " WHERE c.relname LIKE 'document_chunks_hnsw_g%%'"
        ).fetchall()
    assert indexes == [{"indisvalid": True}]
