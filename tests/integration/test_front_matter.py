"""A Markdown file's front matter lands in ``documents.meta`` and not in its chunks, for files
registered from disk, API uploads, and identical bytes whose chunks are reused."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest

from docingest.runtime import Runtime
from docingest.services.ingest import ingest
from tests.fixtures import pipeline
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration

NOTE = (
    "---\ntitle: Tide tables\ntags: [harbour, tides]\nteam: from-the-file\nupdated: 2024-05-01\n---\n\n"
    "# Tide tables\n\n" + "The harbour master posts the tide tables every Monday morning. " * 30 + "\n"
).encode()
FRONT = {"title": "Tide tables", "tags": ["harbour", "tides"], "updated": "2024-05-01"}


def _meta(rt: Runtime, document_id: Any) -> dict[str, Any]:
    return rows(rt, "SELECT meta FROM upload_pipeline.documents WHERE document_id = %s", (document_id,))[0][
        "meta"
    ]


def _texts(rt: Runtime, document_id: Any) -> str:
    return " ".join(c["text"] for c in pipeline.chunks(rt, document_id))


def test_front_matter_of_a_file_and_of_an_upload_becomes_metadata_the_user_keys_winning(
    runtime: Runtime, tmp_path: Path
) -> None:
    path = tmp_path / "tides.md"
    path.write_bytes(NOTE)
    summary = ingest(runtime, [path], user_id="ana", meta={"team": "docs"})
    assert summary.complete == 1
    (doc,) = rows(runtime, "SELECT document_id FROM upload_pipeline.documents WHERE user_id = 'ana'")
    assert _meta(runtime, doc["document_id"]) == {**FRONT, "team": "docs"}
    text = _texts(runtime, doc["document_id"])
    assert "harbour master" in text and "title:" not in text and "---" not in text

    # The same bytes uploaded by another user through the API's path: parsed, same metadata.
    ticket = runtime.documents.request_upload(
        "bo",
        filename="tides.md",
        bytes_len=len(NOTE),
        mime="text/markdown",
        sha256=hashlib.sha256(NOTE).hexdigest(),
    )
    assert ticket.job is not None
    runtime.storage.put_stream(ticket.document.raw_path, io.BytesIO(NOTE))
    runtime.documents.complete_upload("bo", ticket.job.job_id)
    jobs = pipeline.run_until_terminal(runtime, [ticket.document.document_id])
    assert jobs[ticket.document.document_id]["state"] == "done"
    assert _meta(runtime, ticket.document.document_id) == {**FRONT, "team": "from-the-file"}
    assert "title:" not in _texts(runtime, ticket.document.document_id)

    # Identical bytes under another source of the same user reuse the chunks (no parse): the
    # front matter still reaches its metadata.
    copy = tmp_path / "copy" / "tides-again.md"
    copy.parent.mkdir()
    copy.write_bytes(NOTE)
    again = ingest(runtime, [copy], user_id="ana")
    assert again.complete == 1
    (reused,) = rows(
        runtime, "SELECT document_id FROM upload_pipeline.documents WHERE source = 'tides-again.md'"
    )
    events = pipeline.events(
        runtime, pipeline.latest_jobs(runtime, [reused["document_id"]])[reused["document_id"]]["job_id"]
    )
    assert any(e["type"] == "chunks_reused" for e in events)
    assert _meta(runtime, reused["document_id"]) == {**FRONT, "team": "from-the-file"}
