"""Uploads against the real database: row security, deadlines, the sweep, the worker's checks."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from docingest.domain import State
from docingest.runtime import Runtime
from docingest.services.documents import DocumentService
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

MD = b"# Harbour\n\nThe harbour master logged every schooner that crossed the bar at dawn.\n"
#: The source a client names for its document (a re-request of the same bytes under it is the
#: same document; without a source every request is a new one).
SOURCE = "notes/harbour.md"


@pytest.fixture
def rt(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime(
        make_settings(
            db_url,
            tmp_path / "data",
            upload_url_ttl_seconds=1,
            upload_grace_seconds=0.0,
            max_file_bytes=10_000,
        ),
        migrate=False,
    )
    yield runtime
    runtime.close()


def _create(
    rt: Runtime, user: str, data: bytes, mime: str = "text/markdown", source: str | None = None
) -> tuple[uuid.UUID, uuid.UUID, str]:
    svc: DocumentService = rt.documents
    ticket = svc.request_upload(
        user,
        filename="h.md",
        bytes_len=len(data),
        mime=mime,
        sha256=hashlib.sha256(data).hexdigest(),
        source=source,
    )
    assert ticket.created and ticket.job is not None and ticket.job.state is State.WAITING
    return ticket.document.document_id, ticket.job.job_id, ticket.document.raw_path


def _job(rt: Runtime, job_id: uuid.UUID) -> dict[str, object]:
    with rt.pool().connection() as conn:
        job = rt.repo.get_job(conn, job_id)
    assert job is not None
    return {"stage": job.stage.value, "state": job.state.value, "error_code": job.error_code}


def test_row_security_shows_each_user_only_their_rows(rt: Runtime) -> None:
    alice_doc, alice_job, _ = _create(rt, "alice", MD)
    _create(rt, "bob", MD + b"bob")
    with rt.database.user_transaction("bob") as conn:
        rows = conn.execute("SELECT user_id FROM upload_pipeline.documents").fetchall()
        assert {r["user_id"] for r in rows} == {"bob"}
        assert (
            conn.execute(
                "SELECT * FROM upload_pipeline.upload_jobs WHERE job_id = %s", (alice_job,)
            ).fetchone()
            is None
        )
        assert (
            conn.execute(
                "SELECT count(*) AS n FROM upload_pipeline.events WHERE document_id = %s", (alice_doc,)
            ).fetchone()["n"]
            == 0
        )
        assert (
            conn.execute(
                "DELETE FROM upload_pipeline.documents WHERE document_id = %s", (alice_doc,)
            ).rowcount
            == 0
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege), rt.database.user_transaction("bob") as conn:
        conn.execute(
            "INSERT INTO upload_pipeline.documents (document_id, user_id, filename, mime,"
            " bytes_len, file_sha256, raw_path) VALUES (%s, 'alice', 'x', 'text/plain', 1,"
            " repeat('a', 64), 'k')",
            (uuid.uuid4(),),
        )
    # No user: nothing visible, nothing writable.
    with pytest.raises(psycopg.errors.InsufficientPrivilege), rt.database.user_transaction("") as conn:
        conn.execute(
            "INSERT INTO upload_pipeline.documents (document_id, user_id, filename, mime,"
            " bytes_len, file_sha256, raw_path) VALUES (%s, 'x', 'x', 'text/plain', 1,"
            " repeat('b', 64), 'k2')",
            (uuid.uuid4(),),
        )
    with rt.pool().connection() as conn:  # the owner (worker, CLI) is not restricted
        assert conn.execute("SELECT count(*) AS n FROM upload_pipeline.documents").fetchone()["n"] == 2


def test_upload_that_never_arrives_fails_upload_expired(rt: Runtime) -> None:
    _, job_id, _ = _create(rt, "carol", MD)
    time.sleep(1.3)
    assert rt.documents.sweep() == {"queued": 0, "expired": 1, "objects_deleted": 0}
    assert _job(rt, job_id) == {"stage": "uploaded", "state": "failed", "error_code": "upload_expired"}
    # A retry waits for a new upload, with a fresh URL and deadline.
    job, upload = rt.documents.retry(job_id, user_id="carol")
    assert job.state is State.WAITING and upload is not None and "token=" in upload.url


def test_sweep_queues_a_job_whose_object_arrived_without_a_callback(rt: Runtime) -> None:
    _, job_id, key = _create(rt, "dan", MD)
    rt.storage.put_stream(key, io.BytesIO(MD))  # as S3 would hold it, nobody called /complete
    time.sleep(1.1)
    assert rt.documents.sweep()["queued"] == 1
    assert _job(rt, job_id)["state"] == "queued"


@pytest.mark.parametrize(
    ("declared_mime", "stored", "code"),
    [
        ("application/pdf", MD, "content_type_mismatch"),
        ("text/markdown", MD[:-2] + b"?\n", "checksum_mismatch"),
        ("text/markdown", MD + b"more", "size_mismatch"),
    ],
)
def test_worker_refuses_bytes_other_than_declared_and_deletes_them(
    rt: Runtime, declared_mime: str, stored: bytes, code: str
) -> None:
    _, job_id, key = _create(rt, "eve", MD, mime=declared_mime)
    rt.storage.put_stream(key, io.BytesIO(stored))
    with rt.pool().connection() as conn:
        assert rt.repo.queue_uploaded_job(conn, job_id, via="test") is not None
    worker = rt.worker(concurrency=1)
    assert worker.run_once()
    assert _job(rt, job_id) == {"stage": "uploaded", "state": "failed", "error_code": code}
    assert rt.storage.head(key) is None


def test_complete_needs_the_object_and_is_idempotent(rt: Runtime) -> None:
    from docingest.errors import Conflict, NotFound

    _, job_id, key = _create(rt, "fay", MD)
    with pytest.raises(Conflict):
        rt.documents.complete_upload("fay", job_id)
    with pytest.raises(NotFound):
        rt.documents.complete_upload("someone-else", job_id)
    rt.storage.put_stream(key, io.BytesIO(MD))
    assert rt.documents.complete_upload("fay", job_id).state is State.QUEUED
    assert rt.documents.complete_upload("fay", job_id).state is State.QUEUED  # again: the same answer
    with pytest.raises(Conflict):
        rt.documents.retry(job_id, user_id="fay")  # only failed jobs are retried


# --- a new upload request for bytes whose upload was refused or expired (UploadService.create) ---
def _refused_by_worker(
    rt: Runtime, user: str, data: bytes, *, declared_len: int
) -> tuple[uuid.UUID, uuid.UUID]:
    """Declare ``declared_len``, store all of ``data`` (as Supabase Storage would), let the worker
    refuse it ``size_mismatch``; ``(document_id, job_id)``."""
    ticket = rt.documents.request_upload(
        user,
        filename="h.md",
        bytes_len=declared_len,
        mime="text/markdown",
        sha256=hashlib.sha256(data).hexdigest(),
        source=SOURCE,
    )
    assert ticket.job is not None
    rt.storage.put_stream(ticket.document.raw_path, io.BytesIO(data))
    with rt.pool().connection() as conn:
        assert rt.repo.queue_uploaded_job(conn, ticket.job.job_id, via="test") is not None
    assert rt.worker(concurrency=1).run_once()
    assert _job(rt, ticket.job.job_id) == {
        "stage": "uploaded",
        "state": "failed",
        "error_code": "size_mismatch",
    }
    return ticket.document.document_id, ticket.job.job_id


def _events(rt: Runtime, document_id: uuid.UUID, type_: str) -> list[dict[str, object]]:
    with rt.pool().connection() as conn:
        rows = conn.execute(
            "SELECT payload FROM upload_pipeline.events WHERE document_id = %s AND type = %s",
            (document_id, type_),
        ).fetchall()
    return [r["payload"] for r in rows]


def _job_rows(rt: Runtime, document_id: uuid.UUID) -> list[dict[str, object]]:
    with rt.pool().connection() as conn:
        return conn.execute(
            "SELECT job_id, state, error_code, next_attempt_at FROM upload_pipeline.upload_jobs"
            " WHERE document_id = %s",
            (document_id,),
        ).fetchall()


def test_upload_request_after_a_size_mismatch_redeclares_and_rearms_the_job(rt: Runtime) -> None:
    doc_id, job_id = _refused_by_worker(rt, "gil", MD, declared_len=len(MD) - 7)
    ticket = rt.documents.request_upload(
        "gil",
        filename="harbour.md",
        bytes_len=len(MD),
        mime="text/markdown; charset=utf-8",
        sha256=hashlib.sha256(MD).hexdigest(),
        source=SOURCE,
    )
    assert not ticket.created and ticket.reupload and ticket.upload is not None
    assert ticket.document.document_id == doc_id and ticket.job is not None and ticket.job.job_id == job_id
    assert (ticket.job.state, ticket.job.error_code) == (State.WAITING, None)
    assert (ticket.document.bytes_len, ticket.document.filename) == (len(MD), "harbour.md")
    assert [(r["job_id"], r["state"]) for r in _job_rows(rt, doc_id)] == [(job_id, "waiting")]
    [event] = _events(rt, doc_id, "reupload_requested")
    assert event["previous_error_code"] == "size_mismatch" and event["previous_state"] == "failed"
    assert event["previous"] == {"filename": "h.md", "mime": "text/markdown", "bytes_len": len(MD) - 7}
    assert event["bytes_len"] == len(MD) and event["stale_object_deleted"] is False
    # The bytes arrive (as the signed URL would store them): the worker now accepts them.
    rt.storage.put_stream(ticket.document.raw_path, io.BytesIO(MD))
    assert rt.documents.complete_upload("gil", job_id).state is State.QUEUED
    assert rt.worker(concurrency=1).run_once()
    with rt.pool().connection() as conn:
        job = rt.repo.get_job(conn, job_id)
    assert job is not None and job.error_code is None and job.stage.value != "uploaded"


def test_upload_request_after_expiry_deletes_a_late_object_and_rearms(rt: Runtime) -> None:
    doc_id, job_id, key = _create(rt, "hal", MD, source=SOURCE)
    time.sleep(1.3)
    assert rt.documents.sweep()["expired"] == 1
    rt.storage.put_stream(key, io.BytesIO(MD))  # arrived after the deadline: nobody accepted it
    ticket = rt.documents.request_upload(
        "hal",
        filename="h.md",
        bytes_len=len(MD),
        mime="text/markdown",
        sha256=hashlib.sha256(MD).hexdigest(),
        source=SOURCE,
    )
    assert (
        ticket.reupload
        and ticket.job is not None
        and (ticket.job.job_id, ticket.job.state) == (job_id, State.WAITING)
    )
    assert rt.storage.head(key) is None  # the new PUT finds the key free
    [event] = _events(rt, doc_id, "reupload_requested")
    assert event["previous_error_code"] == "upload_expired" and event["stale_object_deleted"] is True


def test_concurrent_upload_requests_rearm_the_failed_job_once(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    doc_id, job_id, _ = _create(rt, "ida", MD, source=SOURCE)
    time.sleep(1.3)
    assert rt.documents.sweep()["expired"] == 1
    head = rt.storage.head

    def slow_head(key: str) -> object:  # a slow storage: the requests overlap while deciding
        time.sleep(0.2)
        return head(key)

    monkeypatch.setattr(rt.storage, "head", slow_head)
    barrier = threading.Barrier(4)
    tickets: list[object] = []
    errors: list[BaseException] = []

    def request() -> None:
        barrier.wait()
        try:
            tickets.append(
                rt.documents.request_upload(
                    "ida",
                    filename="h.md",
                    bytes_len=len(MD),
                    mime="text/markdown",
                    sha256=hashlib.sha256(MD).hexdigest(),
                    source=SOURCE,
                )
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(tickets) == 4
    assert sum(t.reupload for t in tickets) == 1  # type: ignore[attr-defined]
    assert all(t.upload is not None and t.job.job_id == job_id for t in tickets)  # type: ignore[attr-defined]
    assert [(r["job_id"], r["state"]) for r in _job_rows(rt, doc_id)] == [(job_id, "waiting")]
    assert len(_events(rt, doc_id, "reupload_requested")) == 1


def test_upload_request_for_a_waiting_job_with_another_size_redeclares_it(rt: Runtime) -> None:
    """The signed URL refused a PUT of another size; the job still waits: a corrected request
    gets a URL for the real size, and a deadline that covers it."""
    ticket = rt.documents.request_upload(
        "jon",
        filename="h.md",
        bytes_len=len(MD) + 3,
        mime="text/markdown",
        sha256=hashlib.sha256(MD).hexdigest(),
        source=SOURCE,
    )
    assert ticket.job is not None
    [before] = _job_rows(rt, ticket.document.document_id)
    same = rt.documents.request_upload(
        "jon",
        filename="h.md",
        bytes_len=len(MD) + 3,
        mime="text/markdown",
        sha256=hashlib.sha256(MD).hexdigest(),
        source=SOURCE,
    )
    assert not same.reupload and same.upload is not None
    assert not _events(rt, ticket.document.document_id, "reupload_requested")
    fixed = rt.documents.request_upload(
        "jon",
        filename="h.md",
        bytes_len=len(MD),
        mime="text/markdown",
        sha256=hashlib.sha256(MD).hexdigest(),
        source=SOURCE,
    )
    assert fixed.reupload and fixed.document.bytes_len == len(MD) and fixed.upload is not None
    assert (
        fixed.job is not None and fixed.job.job_id == ticket.job.job_id and fixed.job.state is State.WAITING
    )
    [after] = _job_rows(rt, ticket.document.document_id)
    assert after["next_attempt_at"] >= before["next_attempt_at"]


def test_a_refused_reupload_request_writes_nothing(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    from docingest.errors import StorageUnavailable, TooManyActiveJobs

    doc_id, job_id = _refused_by_worker(rt, "kim", MD, declared_len=len(MD) - 7)
    sha = hashlib.sha256(MD).hexdigest()

    def down(document: object) -> object:
        raise StorageUnavailable("storage did not answer")

    monkeypatch.setattr(rt.documents, "presign", down)
    with pytest.raises(StorageUnavailable):
        rt.documents.request_upload(
            "kim", filename="other.md", bytes_len=len(MD), mime="text/markdown", sha256=sha, source=SOURCE
        )
    monkeypatch.undo()
    monkeypatch.setattr(
        rt.documents, "policy", dataclasses.replace(rt.documents.policy, max_active_jobs_per_user=1)
    )
    _create(rt, "kim", MD + b"another document")  # now at the limit of active jobs
    with pytest.raises(TooManyActiveJobs):
        rt.documents.request_upload(
            "kim", filename="other.md", bytes_len=len(MD), mime="text/markdown", sha256=sha, source=SOURCE
        )
    assert _job(rt, job_id) == {"stage": "uploaded", "state": "failed", "error_code": "size_mismatch"}
    with rt.pool().connection() as conn:
        doc = rt.repo.get_document(conn, doc_id)
    assert doc is not None and (doc.filename, doc.bytes_len) == ("h.md", len(MD) - 7)
    assert not _events(rt, doc_id, "reupload_requested")
