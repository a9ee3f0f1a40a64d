"""Uploads against the real database: row security, deadlines, the sweep, the worker's checks."""

from __future__ import annotations

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
from docingest.uploads import UploadService
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

MD = b"# Harbour\n\nThe harbour master logged every schooner that crossed the bar at dawn.\n"


@pytest.fixture
def rt(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime(make_settings(db_url, tmp_path / "data", upload_url_ttl_seconds=1,
                                    upload_grace_seconds=0.0, max_file_bytes=10_000), migrate=False)
    yield runtime
    runtime.close()


def _create(rt: Runtime, user: str, data: bytes, mime: str = "text/markdown") -> tuple[uuid.UUID, uuid.UUID, str]:
    svc: UploadService = rt.uploads
    ticket = svc.create(user, filename="h.md", bytes_len=len(data), mime=mime,
                        sha256=hashlib.sha256(data).hexdigest())
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
    with rt.user_transaction("bob") as conn:
        rows = conn.execute("SELECT user_id FROM upload_pipeline.documents").fetchall()
        assert {r["user_id"] for r in rows} == {"bob"}
        assert conn.execute("SELECT * FROM upload_pipeline.upload_jobs WHERE job_id = %s",
                            (alice_job,)).fetchone() is None
        assert conn.execute("SELECT count(*) AS n FROM upload_pipeline.events WHERE document_id = %s",
                            (alice_doc,)).fetchone()["n"] == 0
        assert conn.execute("DELETE FROM upload_pipeline.documents WHERE document_id = %s",
                            (alice_doc,)).rowcount == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege), rt.user_transaction("bob") as conn:
        conn.execute("INSERT INTO upload_pipeline.documents (document_id, user_id, filename, mime,"
                     " bytes_len, file_sha256, raw_path) VALUES (%s, 'alice', 'x', 'text/plain', 1,"
                     " repeat('a', 64), 'k')", (uuid.uuid4(),))
    # No user: nothing visible, nothing writable.
    with pytest.raises(psycopg.errors.InsufficientPrivilege), rt.user_transaction("") as conn:
        conn.execute("INSERT INTO upload_pipeline.documents (document_id, user_id, filename, mime,"
                     " bytes_len, file_sha256, raw_path) VALUES (%s, 'x', 'x', 'text/plain', 1,"
                     " repeat('b', 64), 'k2')", (uuid.uuid4(),))
    with rt.pool().connection() as conn:  # the owner (worker, CLI) is not restricted
        assert conn.execute("SELECT count(*) AS n FROM upload_pipeline.documents").fetchone()["n"] == 2


def test_upload_that_never_arrives_fails_upload_expired(rt: Runtime) -> None:
    _, job_id, _ = _create(rt, "carol", MD)
    time.sleep(1.3)
    assert rt.uploads.sweep() == {"queued": 0, "expired": 1}
    assert _job(rt, job_id) == {"stage": "uploaded", "state": "failed", "error_code": "upload_expired"}
    # A retry waits for a new upload, with a fresh URL and deadline.
    job, upload = rt.uploads.retry("carol", job_id)
    assert job.state is State.WAITING and upload is not None and "token=" in upload.url


def test_sweep_queues_a_job_whose_object_arrived_without_a_callback(rt: Runtime) -> None:
    _, job_id, key = _create(rt, "dan", MD)
    rt.storage.put_stream(key, io.BytesIO(MD))  # as S3 would hold it, nobody called /complete
    time.sleep(1.1)
    assert rt.uploads.sweep()["queued"] == 1
    assert _job(rt, job_id)["state"] == "queued"


@pytest.mark.parametrize(("declared_mime", "stored", "code"), [
    ("application/pdf", MD, "content_type_mismatch"),
    ("text/markdown", MD[:-2] + b"?\n", "checksum_mismatch"),
    ("text/markdown", MD + b"more", "size_mismatch"),
])
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
        rt.uploads.complete("fay", job_id)
    with pytest.raises(NotFound):
        rt.uploads.complete("someone-else", job_id)
    rt.storage.put_stream(key, io.BytesIO(MD))
    assert rt.uploads.complete("fay", job_id).state is State.QUEUED
    assert rt.uploads.complete("fay", job_id).state is State.QUEUED  # again: the same answer
    with pytest.raises(Conflict):
        rt.uploads.retry("fay", job_id)  # only failed jobs are retried
