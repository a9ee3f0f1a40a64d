"""``document_events`` (the SSE endpoint's source) and the progress a job records."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from docingest.api.schemas import DocumentPublic
from docingest.db.repository import Repository
from docingest.domain import JobProgress
from docingest.runtime import Runtime
from docingest.services.progress import document_events, format_progress, sse_message, sse_stream
from tests.conftest import make_settings
from tests.fixtures.pdfgen import PdfBuilder
from tests.integration.helpers import register, rows, write_docs

pytestmark = pytest.mark.integration


def test_events_follow_a_document_from_uploaded_to_complete(runtime: Runtime, tmp_path: Path) -> None:
    reg = register(runtime, write_docs(tmp_path / "in", 1, words=600))[0]
    doc_id = reg.document.document_id
    seen: list[dict] = []
    reader = threading.Thread(
        target=lambda: seen.extend(
            document_events(runtime.documents, doc_id, poll_seconds=0.05, timeout_seconds=60)
        )
    )
    reader.start()  # following before the worker starts: it must wait, then see everything
    worker = runtime.worker(concurrency=1)
    worker.start()
    try:
        reader.join(60)
    finally:
        worker.stop()
    assert not reader.is_alive()
    completed = [e["stage"] for e in seen if e["type"] == "stage_completed"]
    assert completed == [
        "parse_queued",
        "parsed",
        "parse_validated",
        "chunking",
        "chunks_stored",
        "embedding_queued",
        "embedding_in_progress",
        "embeddings_stored",
        "complete",
    ]
    ids = [e["event_id"] for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(e["document_id"] == str(doc_id) for e in seen)
    # Resuming after an event id (SSE Last-Event-ID) yields exactly the rest, then stops.
    rest = list(document_events(runtime.documents, doc_id, ids[3]))
    assert [e["event_id"] for e in rest] == ids[4:]
    stream = list(sse_stream(runtime.documents, doc_id, ids[-3], keepalive_seconds=1))
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

        wait_for(
            lambda: rows(runtime, "SELECT state FROM upload_pipeline.upload_jobs")[0]["state"] == "done",
            timeout=60,
        )
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
    assert format_progress({"pages_total": 3, "pages_parsed": 3, "pages_ocred": 2}) == "pages 3/3 (2 OCRed)"


PAGES = 15_000  # ~1.5 s of parsing here: many progress saves at the test's 0.1 s interval


def _big_pdf(path: Path) -> Path:
    b = PdfBuilder()
    for i in range(PAGES):
        b.add_text_page(
            [
                f"Page {i + 1} of the progress test.".encode(),
                b"Pages parsed of pages total are saved while the parse runs.",
            ]
        )
    path.write_bytes(b.build())
    return path


def test_pages_parsed_move_while_a_pdf_is_parsed(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interval = 0.1
    rt = Runtime(
        make_settings(db_url, tmp_path / "data", parse_progress_interval_seconds=interval), migrate=False
    )
    writes: list[tuple[float, dict[str, Any]]] = []
    update_progress = Repository.update_progress

    def spy(self: Repository, conn: Any, job_id: Any, progress: JobProgress, **kw: Any) -> Any:
        if "pages_parsed" in progress.model_fields_set:
            writes.append((time.monotonic(), progress.as_dict()))
        return update_progress(self, conn, job_id, progress, **kw)

    monkeypatch.setattr(Repository, "update_progress", spy)
    doc_id = register(rt, [_big_pdf(tmp_path / "big.pdf")], user_id="u1")[0].document.document_id
    seen: list[DocumentPublic] = []

    def poll() -> None:  # what GET /api/v2/documents/{id} answers, every 10 ms
        while True:
            with rt.database.user_transaction("u1") as conn:
                view = DocumentPublic.from_row(
                    rt.repo.get_document_view(conn, user_id="u1", document_id=doc_id)
                )
            seen.append(view)
            if view.state in ("done", "failed"):
                return
            time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    worker = rt.worker(concurrency=1)
    worker.start()
    try:
        poller.join(120)
    finally:
        worker.stop()
        rt.close()
    assert not poller.is_alive() and seen[-1].state == "done"
    moving = [
        v.progress
        for v in seen
        if v.stage == "parse_queued" and 0 < (v.progress.get("pages_parsed") or 0) < PAGES
    ]
    assert moving, "no intermediate pages_parsed seen while parsing"
    assert all(p["pages_total"] == PAGES and p["eta_s"] >= 0 for p in moving)
    assert format_progress(moving[0]).startswith(f"pages {moving[0]['pages_parsed']}/{PAGES}")
    # The saves: the first page at once, then increasing, at most one per interval.
    assert writes[0][1]["pages_parsed"] == 1 and len(writes) >= 2
    assert [w["pages_parsed"] for _, w in writes] == sorted(w["pages_parsed"] for _, w in writes)
    # At most one save per interval: counted over the whole parse, not gap by gap (the spy's
    # clock reads each save when its statement starts, which on a loaded machine can lag the
    # stage's own decision by a few ms; the count cannot drift that way).
    span = writes[-1][0] - writes[0][0]
    assert len(writes) - 1 <= span / interval + 1, (len(writes), span)
    final = seen[-1].progress
    assert final["pages_parsed"] == final["pages_total"] == PAGES
