"""The documents service's reads behind the dashboard: a filtered page of documents with its
total, a document's chunks and timeline, the user-wide event stream, the Health page's summary."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from docingest.api.schemas import DocumentPublic
from docingest.domain import JobProgress, Stage, State
from docingest.errors import NotFound
from docingest.runtime import Runtime
from docingest.services.dashboard import stage_spans, summary
from docingest.services.progress import StreamMessage, UserStream
from tests.fixtures import pipeline
from tests.integration.helpers import register

pytestmark = pytest.mark.integration


def user_messages(
    stream: UserStream, *, poll_seconds: float = 0.5, timeout_seconds: float | None = None
) -> Iterator[StreamMessage]:
    """``stream``'s messages (:meth:`UserStream.poll`), polling every ``poll_seconds`` for
    ``timeout_seconds`` (None: for ever), as ``user_sse_stream`` polls it without its SSE text."""
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while True:
        yield from stream.poll()
        if stream.behind:
            continue  # a full page: read on at once
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(poll_seconds)


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
    mine_id, theirs_id = str(mine.document.document_id), str(theirs.document.document_id)

    created = stream.poll()
    assert [(m.event, m.id is not None) for m in created] == [("job_created", True), ("document", False)]
    assert created[1].data["state"] == "queued" and created[1].data["document_id"] == mine_id
    assert stream.poll() == []  # nothing changed: nothing sent again

    # a claim, a progress checkpoint and a release write no event: the poll of working jobs sees them
    with runtime.pool().connection() as conn:
        claims = [runtime.repo.claim_job(conn, worker_id="test-worker", lease_seconds=30) for _ in range(2)]
    [job] = [c.job for c in claims if c is not None and str(c.job.document_id) == mine_id]
    [claimed] = stream.poll()
    assert (claimed.event, claimed.data["state"]) == ("document", "working")
    with runtime.pool().connection() as conn:
        runtime.repo.update_progress(
            conn, job.job_id, JobProgress(pages_total=3, pages_parsed=1), lease_seconds=30
        )
    [progressed] = stream.poll()
    assert progressed.data["progress"]["pages_parsed"] == 1
    with runtime.pool().connection() as conn:
        for claim in claims:
            assert claim is not None and runtime.repo.release_job(conn, claim.job)
    [released] = stream.poll()
    assert released.data["state"] == "queued"

    worker = runtime.worker(concurrency=2)
    worker.start()
    try:
        seen = _follow(stream, mine_id)
        rest = list(user_messages(stream, poll_seconds=0.05, timeout_seconds=0.2))
    finally:
        worker.stop()
    everything = created + [claimed, progressed, released] + seen + rest
    assert {m.data["document_id"] for m in everything} == {mine_id}
    assert theirs_id not in str([m.data for m in everything])

    events = [m for m in seen if m.id is not None]
    assert [m.data["stage"] for m in events if m.event == "stage_completed"] == [s.value for s in Stage][1:]
    assert [m.id for m in events] == sorted({m.id for m in events}) and stream.last_event_id == events[-1].id
    assert all(m.data["event_id"] == m.id and m.event == m.data["type"] for m in events)
    views = [m.data for m in seen if m.event == "document"]
    assert views[-1]["stage"] == "complete" and views[-1]["state"] == "done" and views[-1]["chunks"] > 0
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
    assert [(m.event, m.data) for m in stream.poll()] == [
        ("document_deleted", {"document_id": doc_id}),
        ("documents_changed", {"total": 0}),
    ]
    assert stream.shown == {} and stream.poll() == []


def test_the_stream_says_the_list_changed_when_a_document_it_never_saw_in_flight_is_deleted(
    runtime: Runtime, tmp_path: Path
) -> None:
    """A done document deleted from another tab or the CLI: no ``document_deleted`` (the stream
    never showed it), but ``documents_changed`` with the new total; another user's changes and
    the first poll send none."""
    regs = register(
        runtime, [_write(tmp_path, f"{n}.md", f"{n} words " * 50) for n in ("kept", "gone")], user_id="tab-b"
    )
    pipeline.run_until_terminal(runtime, [r.document.document_id for r in regs])
    stream = _stream(runtime, "tab-b")
    assert stream.poll() == []  # the first poll records the tally only
    register(runtime, [_write(tmp_path / "o", "other.md", "not yours")], user_id="someone-else")
    assert stream.poll() == []
    runtime.documents.delete("tab-b", regs[1].document.document_id)
    assert [(m.event, m.data) for m in stream.poll()] == [("documents_changed", {"total": 1})]
    assert stream.poll() == []
    # a new document and a deletion in one poll keep the count but not the largest version_seq
    register(runtime, [_write(tmp_path / "n", "new.md", "fresh words")], user_id="tab-b")
    runtime.documents.delete("tab-b", regs[0].document.document_id)
    changed = [m for m in stream.poll() if m.event == "documents_changed"]
    assert [m.data for m in changed] == [{"total": 1}]


def test_a_last_event_id_newer_than_every_event_resumes_from_now(runtime: Runtime, tmp_path: Path) -> None:
    """An id kept from before the events were reset (a new data directory) would skip every
    event for ever: the stream starts after the newest event instead, and sees the next one."""
    stale = runtime.documents.latest_event_id() + 100_000
    stream = UserStream(runtime.documents, "resumer", stale, view=_view)
    assert stream.poll() == []
    assert stream.last_event_id == runtime.documents.latest_event_id()
    register(runtime, [_write(tmp_path, "after.md", "words after the reset")], user_id="resumer")
    assert "job_created" in [m.event for m in stream.poll()]


# --- a document's chunks and history ---------------------------------------------------------
def test_a_documents_chunks_come_by_ordinal_a_page_at_a_time_and_its_history_has_every_event(
    runtime: Runtime, tmp_path: Path
) -> None:
    text = "\n\n".join(
        f"## Part {i}\n\n" + " ".join(f"part{i}-word{j}" for j in range(150)) for i in range(6)
    )
    [reg] = register(runtime, [_write(tmp_path, "parts.md", text)], user_id="reader")
    doc_id = reg.document.document_id
    assert runtime.documents.document_chunks("reader", doc_id, limit=10, offset=0) == ([], 0)  # in flight
    pipeline.run_until_terminal(runtime, [doc_id])

    everything, total = runtime.documents.document_chunks("reader", doc_id, limit=500, offset=0)
    assert total == len(everything) >= 6
    assert [c["ordinal"] for c in everything] == list(range(total))
    page, same_total = runtime.documents.document_chunks("reader", doc_id, limit=2, offset=2)
    assert same_total == total and [c["chunk_id"] for c in page] == [c["chunk_id"] for c in everything[2:4]]
    assert any(c["heading_path"] and c["heading_path"][-1].startswith("Part") for c in everything)
    assert all(c["token_count"] > 0 for c in everything)

    history = runtime.documents.document_history("reader", doc_id, limit=1000)
    assert history[0]["type"] == "job_created"
    assert [e["event_id"] for e in history] == sorted(e["event_id"] for e in history)
    spans = stage_spans(history)
    assert [s.stage for s in spans] == [s.value for s in Stage][:-1]  # every stage but complete did work
    assert all(s.attempts == 1 and s.seconds is not None and s.finished_at is not None for s in spans)

    for read in (
        lambda: runtime.documents.document_chunks("intruder", doc_id, limit=10, offset=0),
        lambda: runtime.documents.document_history("intruder", doc_id, limit=10),
    ):
        with pytest.raises(NotFound):
            read()


# --- the Health page ---------------------------------------------------------------------------
def test_the_summary_counts_the_users_jobs_and_failures_and_shows_the_installations_workers(
    runtime: Runtime, tmp_path: Path
) -> None:
    done, broken, other_broken = register(
        runtime,
        [_write(tmp_path / "s", name, f"words of {name} " * 50) for name in ("ok.md", "bad.md", "worse.md")],
        user_id="healthy",
    )
    [theirs] = register(
        runtime, [_write(tmp_path / "t", "theirs.md", "not yours " * 50)], user_id="neighbour"
    )
    _fail(runtime, broken.document.document_id, "pdf_corrupt")
    _fail(runtime, other_broken.document.document_id, "pdf_corrupt")
    _fail(runtime, theirs.document.document_id, "no_text")
    worker = runtime.worker(concurrency=1)
    worker.start()
    try:
        pipeline.wait_terminal(runtime, [done.document.document_id], timeout=60)
    finally:
        worker.stop()
    with runtime.pool().connection() as conn:
        runtime.repo.rate_limit_configure(conn, "openai:requests", capacity=10, refill_per_second=1)
        runtime.repo.rate_limit_block(conn, ["openai:requests"], 60)

    got = summary(runtime.database, runtime.repo, runtime.settings, "healthy")
    assert got.user_id == "healthy"
    assert {(j.stage, j.state, j.count) for j in got.jobs} == {
        ("complete", "done", 1),
        ("uploaded", "failed", 2),
    }
    [failure] = got.failures  # the neighbour's no_text is not counted
    assert (failure.error_code, failure.count, failure.message) == ("pdf_corrupt", 2, "broken on purpose")
    assert failure.last_at is not None
    [seen] = got.workers  # the worker that completed the stages, holding nothing now
    assert seen.worker_id == worker.worker_id and seen.jobs_working == 0 and seen.last_seen is not None
    assert got.embedder.provider == "hashing" and got.embedder.model == "hashing-bow-v1"
    [bucket] = got.embedder.buckets
    assert (
        bucket.bucket == "openai:requests" and bucket.blocked_until is not None and 0 <= bucket.tokens <= 10
    )
    [generation] = got.generations
    assert generation.chunks > 0 and generation.share == 1.0 and generation.label.startswith("hashing/")

    # a job held now: its worker, and how many it holds
    with runtime.pool().connection() as conn:
        runtime.documents.retry(broken.job.job_id, user_id="healthy")
        claim = runtime.repo.claim_job(conn, worker_id="host:1:held", lease_seconds=30)
    assert claim is not None
    holders = {w.worker_id: w for w in summary(runtime.database, runtime.repo, runtime.settings, "x").workers}
    assert holders["host:1:held"].jobs_working == 1 and holders["host:1:held"].jobs_stalled == 0


def test_the_stream_says_a_version_replaced_by_a_newer_one_is_gone(runtime: Runtime, tmp_path: Path) -> None:
    [old] = register(runtime, [_write(tmp_path / "v1", "notes.md", "first words " * 40)], user_id="versioner")
    pipeline.run_until_terminal(runtime, [old.document.document_id])
    stream = _stream(runtime, "versioner")
    [new] = register(
        runtime, [_write(tmp_path / "v2", "notes.md", "second words " * 40)], user_id="versioner"
    )
    assert new.document.source == old.document.source and new.document.document_id != old.document.document_id
    pipeline.run_until_terminal(runtime, [new.document.document_id])
    messages = list(user_messages(stream, poll_seconds=0.05, timeout_seconds=0))
    [replaced] = [m for m in messages if m.event == "version_replaced"]
    gone = [m for m in messages if m.event == "document_deleted"]
    assert [m.data for m in gone] == [{"document_id": str(old.document.document_id)}]
    assert messages.index(gone[0]) > messages.index(replaced)
    assert messages[-1].event == "document" and messages[-1].data["state"] == "done"
