"""``docingest ingest`` of bytes whose document failed: the same document, stored again, requeued.

The same bytes under one source are one document (one version), so a second ingest cannot
make a fresh one; before this, it answered the failed duplicate and the failure stuck (a retry
failed again: the refused object had been deleted).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from docingest.runtime import Runtime
from docingest.services.ingest import ingest
from docingest.settings import Settings
from tests.conftest import make_settings
from tests.fixtures import pipeline

pytestmark = pytest.mark.integration

TEXT = (
    "# Tide tables\n\n" + "The harbour master posts the tide tables every Monday morning. " * 40 + "\n"
).encode()


def _reingest_events(rt: Runtime, job_id: object) -> list[dict[str, object]]:
    return [
        e["payload"]
        for e in pipeline.events(rt, job_id)
        if e["type"] == "retry_requested" and e["payload"]["via"] == "ingest"
    ]


def test_a_document_refused_at_upload_completes_when_ingested_again(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "tides.md"
    path.write_bytes(TEXT)
    # An HTTP client declared the wrong size; Supabase-style storage kept all the bytes it sent.
    # It named the source the file has for `ingest` (a file named on its own: its name).
    ticket = runtime.documents.request_upload(
        "ana",
        filename="tides.md",
        bytes_len=len(TEXT) - 100,
        mime="text/markdown",
        sha256=hashlib.sha256(TEXT).hexdigest(),
        source="tides.md",
    )
    assert ticket.job is not None
    runtime.storage.put_stream(ticket.document.raw_path, io.BytesIO(TEXT))
    runtime.documents.complete_upload("ana", ticket.job.job_id)
    failed = pipeline.run_until_terminal(runtime, [ticket.document.document_id])
    assert failed[ticket.document.document_id]["error_code"] == "size_mismatch"
    assert runtime.storage.head(ticket.document.raw_path) is None  # the refused object is gone

    summary = ingest(runtime, [path], user_id="ana")

    assert (summary.documents, summary.new, summary.duplicates, summary.requeued) == (1, 0, 0, 1)
    assert (summary.complete, summary.failed) == (1, 0), summary.failures
    job = pipeline.latest_jobs(runtime, [ticket.document.document_id])[ticket.document.document_id]
    assert job["job_id"] == ticket.job.job_id and job["state"] == "done" and job["retry_count"] == 0
    assert pipeline.chunks(runtime, ticket.document.document_id)
    with runtime.pool().connection() as conn:
        doc = runtime.repo.get_document(conn, ticket.document.document_id)
    assert doc is not None and doc.bytes_len == len(TEXT)  # re-declared with the real size
    assert _reingest_events(runtime, job["job_id"]) == [
        {"via": "ingest", "previous_error_code": "size_mismatch", "stored_again": True}
    ]

    # A complete document ingested again is a plain duplicate: nothing requeued.
    again = ingest(runtime, [path], user_id="ana")
    assert (again.duplicates, again.requeued, again.complete) == (1, 0, 1)
    assert len(_reingest_events(runtime, job["job_id"])) == 1


def test_a_file_too_large_then_allowed_is_requeued_and_one_still_too_large_is_not(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "tides.md"
    path.write_bytes(TEXT)
    small = Runtime(
        make_settings(settings.database_url, settings.data_dir, max_file_bytes=100), migrate=False
    )
    try:
        first = ingest(small, [path], user_id="bo")
        assert first.failed_by_code == {"file_too_large": 1}
        still = ingest(small, [path], user_id="bo")  # nothing changed: not requeued, same failure
        assert (still.duplicates, still.requeued, still.failed_by_code) == (1, 0, {"file_too_large": 1})
    finally:
        small.close()
    big = Runtime(settings, migrate=False)
    try:
        summary = ingest(big, [path], user_id="bo")
        assert (summary.requeued, summary.complete, summary.chunks > 0) == (1, 1, True), summary.failures
        [job] = pipeline.latest_jobs(big).values()
        assert _reingest_events(big, job["job_id"]) == [
            {"via": "ingest", "previous_error_code": "file_too_large", "stored_again": True}
        ]
    finally:
        big.close()
