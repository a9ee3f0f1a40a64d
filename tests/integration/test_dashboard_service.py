"""The documents service's reads behind the dashboard: a filtered page of documents with its
total, a document's chunks and timeline, the user-wide event stream, the Health page's summary."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from docingest.api.schemas import DocumentPublic
from docingest.domain import Stage, State
from docingest.runtime import Runtime
from docingest.services.progress import StreamMessage, UserStream, user_messages
from tests.integration.helpers import register

pytestmark = pytest.mark.integration


def _write(root: Path, name: str, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_text(f"# {name}\n\n{text}\n", encoding="utf-8")
    return path


def _fail(rt: Runtime, document_id: UUID, code: str = "pdf_corrupt") -> None:
    with rt.pool().connection() as conn:
        conn.execute(
            "UPDATE upload_pipeline.upload_jobs SET state = 'failed', error_code = %s,"
            " error_message = 'broken on purpose', finished_at = now() WHERE document_id = %s",
            (code, document_id),
        )


def _names(page: list[dict[str, Any]]) -> list[str]:
    return [r["filename"] for r in page]


def test_a_page_of_documents_is_filtered_by_state_and_name_and_counts_every_match(
    runtime: Runtime, tmp_path: Path
) -> None:
    names = ["alpha.md", "Beta_report.md", "gamma%.md", "betaXreport.md", "delta.md"]
    regs = register(runtime, [_write(tmp_path, n, f"text of {n}") for n in names], user_id="lister")
    register(runtime, [_write(tmp_path / "other", "beta_other.md", "someone else's")], user_id="other")
    by_name = {r.document.filename: r.document.document_id for r in regs}
    _fail(runtime, by_name["delta.md"])
    docs = runtime.documents

    page, total = docs.list_documents("lister", limit=2, offset=0)
    assert total == 5 and _names(page) == ["delta.md", "betaXreport.md"]  # newest first
    page, total = docs.list_documents("lister", limit=2, offset=4)
    assert total == 5 and _names(page) == ["alpha.md"]
    page, total = docs.list_documents("lister", limit=2, offset=10)
    assert total == 5 and page == []

    page, total = docs.list_documents("lister", limit=50, offset=0, states=[State.FAILED])
    assert (total, _names(page)) == (1, ["delta.md"])
    page, total = docs.list_documents("lister", limit=50, offset=0, states=[State.FAILED, State.QUEUED])
    assert total == 5
    page, total = docs.list_documents("lister", limit=50, offset=0, states=[State.DONE])
    assert (total, page) == (0, [])

    # case-insensitive substring; _ and % are literal characters, not wildcards
    page, total = docs.list_documents("lister", limit=50, offset=0, name_contains="BETA_")
    assert (total, _names(page)) == (1, ["Beta_report.md"])
    page, total = docs.list_documents("lister", limit=50, offset=0, name_contains="a%")
    assert (total, _names(page)) == (1, ["gamma%.md"])
    page, total = docs.list_documents("lister", limit=50, offset=0, name_contains="report")
    assert total == 2 and set(_names(page)) == {"Beta_report.md", "betaXreport.md"}
    page, total = docs.list_documents(
        "lister", limit=50, offset=0, name_contains="report", states=[State.FAILED]
    )
    assert (total, page) == (0, [])
    # the source matches too
    [named] = [
        runtime.documents.register_file(
            _write(tmp_path / "src", "plain.md", "named by source"),
            user_id="lister",
            source="archive/Zeta-notes",
        )
    ]
    page, total = docs.list_documents("lister", limit=50, offset=0, name_contains="zeta")
    assert (total, [r["document_id"] for r in page]) == (1, [named.document.document_id])


# --- the user-wide stream ----------------------------------------------------------------------
def _view(row: dict[str, Any]) -> dict[str, Any]:
    return DocumentPublic.from_row(row).model_dump(mode="json")


def _stream(rt: Runtime, user_id: str) -> UserStream:
    """A user's stream from the newest event now."""
    return UserStream(rt.documents, user_id, rt.documents.latest_event_id(), view=_view)


def _follow(stream: UserStream, until: str) -> list[StreamMessage]:
    """The stream's messages until a ``document`` message of ``until`` says ``done``."""
    seen: list[StreamMessage] = []
    for message in user_messages(stream, poll_seconds=0.05, timeout_seconds=60):
        seen.append(message)
        data = message.data
        if message.event == "document" and data["document_id"] == until and data["state"] == "done":
            return seen
    raise AssertionError(f"no done document message for {until}: {[(m.event, m.data) for m in seen]}")


def test_one_stream_carries_every_event_and_view_change_of_the_users_documents_only(
    runtime: Runtime, tmp_path: Path
) -> None:
    stream = _stream(runtime, "streamer")
    [mine] = register(runtime, [_write(tmp_path / "a", "mine.md", "my words " * 200)], user_id="streamer")
    [theirs] = register(
        runtime, [_write(tmp_path / "b", "theirs.md", "their words " * 200)], user_id="bystander"
    )
    worker = runtime.worker(concurrency=2)
    worker.start()
    try:
        seen = _follow(stream, str(mine.document.document_id))
        rest = list(user_messages(stream, poll_seconds=0.05, timeout_seconds=0.2))
    finally:
        worker.stop()
    mine_id, theirs_id = str(mine.document.document_id), str(theirs.document.document_id)
    assert {m.data["document_id"] for m in seen + rest} == {mine_id}
    assert theirs_id not in str([m.data for m in seen + rest])

    events = [m for m in seen if m.id is not None]
    assert [m.data["stage"] for m in events if m.event == "stage_completed"] == [s.value for s in Stage][1:]
    assert [m.id for m in events] == sorted({m.id for m in events}) and stream.last_event_id == events[-1].id
    assert all(m.data["event_id"] == m.id and m.event == m.data["type"] for m in events)

    views = [m.data for m in seen if m.event == "document"]
    assert views[-1]["stage"] == "complete" and views[-1]["state"] == "done" and views[-1]["chunks"] > 0
    assert "working" in [v["state"] for v in views]
    assert all(a != b for a, b in itertools.pairwise(views))  # only changes are sent
    assert [m for m in rest if m.event == "document"] == []  # nothing changed since: nothing resent


def test_the_stream_says_when_a_document_it_saw_in_flight_is_deleted(
    runtime: Runtime, tmp_path: Path
) -> None:
    stream = _stream(runtime, "deleter")
    [reg] = register(runtime, [_write(tmp_path, "brief.md", "soon gone")], user_id="deleter")
    first = stream.poll()
    doc_id = str(reg.document.document_id)
    assert [(m.event, m.data["state"]) for m in first if m.event == "document"] == [("document", "queued")]
    runtime.documents.delete("deleter", reg.document.document_id)
    assert [(m.event, m.data) for m in stream.poll()] == [("document_deleted", {"document_id": doc_id})]
    assert stream.shown == {} and stream.poll() == []
