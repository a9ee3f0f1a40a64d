"""Running any stage handler twice leaves identical rows (and identical stored objects)."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from docingest.domain import Stage
from docingest.runtime import Runtime
from docingest.worker.loop import JobContext, _Held
from tests.integration.helpers import register, rows, write_docs

pytestmark = pytest.mark.integration

TABLES = {
    "documents": "SELECT document_id, filename, parsed_sha256, parsed_path, page_count FROM "
    "upload_pipeline.documents ORDER BY document_id",
    "chunk_buffer": "SELECT chunk_id, ordinal, text, meta, token_count FROM "
    "upload_pipeline.document_chunk_buffer ORDER BY chunk_id",
    "vector_buffer": "SELECT chunk_id, embedding::text, embed_model FROM "
    "upload_pipeline.document_vector_buffer ORDER BY chunk_id",
    "chunks": "SELECT chunk_id, ordinal, text, meta, embedding::text FROM "
    "upload_pipeline.document_chunks ORDER BY chunk_id",
}


def snapshot(rt: Runtime) -> dict[str, Any]:
    state = {name: rows(rt, sql) for name, sql in TABLES.items()}
    root = rt.settings.storage_dir
    state["objects"] = {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    return state


def test_every_handler_twice_gives_the_same_rows(runtime: Runtime, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 1, words=900))
    w = runtime.worker(concurrency=1)
    job, *_ = w.claim()
    with runtime.pool().connection() as conn:
        doc = runtime.repo.get_document(conn, job.document_id)
    ctx = JobContext(w, job, doc, _Held(job, threading.Event()))
    seen = []
    while ctx.job.stage is not Stage.COMPLETE:
        handler = w.handlers[ctx.job.stage]
        before = ctx.job
        first = handler.run(ctx)
        if first.persist:
            with ctx.fenced() as conn:
                first.persist(conn)
        once = snapshot(runtime)
        ctx.job = replace(ctx.job, progress=before.progress, control=before.control)
        second = handler.run(ctx)
        if second.persist:
            with ctx.fenced() as conn:
                second.persist(conn)
        twice = snapshot(runtime)
        assert once == twice, f"{ctx.job.stage.value} is not idempotent"
        assert first.progress.as_dict().keys() == second.progress.as_dict().keys()
        assert first.control.as_dict().keys() == second.control.as_dict().keys()
        seen.append(ctx.job.stage)
        ctx.job, _ = w._transition(ctx, second, time.monotonic())
    assert seen == [s for s in Stage if s is not Stage.COMPLETE]
    assert len(rows(runtime, "SELECT 1 FROM upload_pipeline.document_chunks")) >= 2
