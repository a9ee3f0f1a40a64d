"""``document_events`` (the SSE endpoint's source) and the progress a job records."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from docingest.progress import document_events, format_progress, sse_message, sse_stream
from docingest.runtime import Runtime
from tests.integration.helpers import register, rows, write_docs

pytestmark = pytest.mark.integration


def test_events_follow_a_document_from_uploaded_to_complete(runtime: Runtime, tmp_path: Path) -> None:
    reg = register(runtime, write_docs(tmp_path / "in", 1, words=600))[0]
    doc_id = reg.document.document_id
    seen: list[dict] = []
    reader = threading.Thread(target=lambda: seen.extend(
        document_events(runtime, doc_id, poll_seconds=0.05, timeout_seconds=60)))
    reader.start()  # following before the worker starts: it must wait, then see everything
    worker = runtime.worker(concurrency=1)
    worker.start()
    try:
        reader.join(60)
    finally:
        worker.stop()
    assert not reader.is_alive()
    completed = [e["stage"] for e in seen if e["type"] == "stage_completed"]
    assert completed == ["parse_queued", "parsed", "parse_validated", "chunking", "chunks_stored",
                         "embedding_queued", "embedding_in_progress", "embeddings_stored", "complete"]
    ids = [e["event_id"] for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(e["document_id"] == str(doc_id) for e in seen)
    # Resuming after an event id (SSE Last-Event-ID) yields exactly the rest, then stops.
    rest = list(document_events(runtime, doc_id, ids[3]))
    assert [e["event_id"] for e in rest] == ids[4:]
    stream = list(sse_stream(runtime, doc_id, ids[-3], keepalive_seconds=1))
    assert stream[0] == "retry: 2000\n\n"
    assert [m.split("\n")[0] for m in stream[1:]] == [f"id: {i}" for i in ids[-2:]]
    msg = sse_message(seen[-1])
    assert msg.startswith(f"id: {ids[-1]}\nevent: stage_completed\ndata: {{") and msg.endswith("\n\n")


def test_progress_records_pages_chunks_and_eta(runtime: Runtime, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 1, words=3000))
    worker = runtime.worker(concurrency=1)
    worker.start()
    try:
        from tests.e2e.workers import wait_for

        wait_for(lambda: rows(runtime, "SELECT state FROM upload_pipeline.upload_jobs")[0]["state"]
                 == "done", timeout=60)
    finally:
        worker.stop()
    progress = rows(runtime, "SELECT progress FROM upload_pipeline.upload_jobs")[0]["progress"]
    chunks = rows(runtime, "SELECT count(*) n FROM upload_pipeline.document_chunks")[0]["n"]
    assert progress["chunks_total"] == progress["chunks_embedded"] == chunks > 1
    assert progress["eta_s"] == 0
    assert format_progress(progress) == f"chunks {chunks}/{chunks}"


def test_format_progress() -> None:
    assert format_progress({}) == ""
    assert format_progress(None) == ""
    p = {"pages_total": 12, "pages_parsed": 12, "chunks_total": 100, "chunks_embedded": 40, "eta_s": 75.2}
    assert format_progress(p) == "pages 12/12, chunks 40/100, eta 1m15s"
    assert format_progress({"chunks_total": 5}) == "chunks 0/5"
