"""Two-step uploads: ask for an upload, send the bytes to a signed URL, the job is queued.

A job created here starts ``waiting`` at stage ``uploaded`` with its upload deadline in
``next_attempt_at`` (URL lifetime + grace). It becomes ``queued`` when the bytes arrive:
the local storage service reports the finished upload (:meth:`UploadService.on_stored`),
the client calls ``POST /upload/{job_id}/complete``, or the :class:`UploadSweeper` finds
the object. A job whose deadline passes without the object fails ``upload_expired``.
The worker's ``uploaded`` handler then verifies size, SHA-256 and type in every case.
"""

from __future__ import annotations

import logging
import threading
import unicodedata
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from docingest.domain import Document, Job, Stage, State
from docingest.errors import (
    Conflict,
    DocingestError,
    EmptyFile,
    FileTooLarge,
    NotFound,
    TooManyActiveJobs,
    UnsupportedType,
    UploadExpired,
)
from docingest.parsing.sniff import DOCX_MIME
from docingest.storage import SignedUpload, parsed_key, raw_key

if TYPE_CHECKING:
    from docingest.runtime import Runtime

log = logging.getLogger("docingest.uploads")

#: Declared types an upload may have, and the extension of its storage key.
MIME_EXTENSIONS: dict[str, str] = {
    "application/pdf": "pdf",
    DOCX_MIME: "docx",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "md",
    "text/x-markdown": "md",
    "text/plain": "txt",
    "application/json": "json",  # text: parsed as plain text (the sniffed type wins, with a warning)
    "application/octet-stream": "bin",
}

def normalise_mime(mime: str) -> str:
    """``'Text/HTML; charset=utf-8'`` -> ``'text/html'``."""
    return mime.split(";", 1)[0].strip().lower()


def display_filename(name: str) -> str:
    """The original name, for display only: last path segment, NFC, no control characters.

    Raises:
        ValueError: when nothing displayable is left.
    """
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and not "\ud800" <= ch <= "\udfff")
    name = unicodedata.normalize("NFC", name).strip()
    if not name or name in (".", ".."):
        raise ValueError("the filename has no displayable characters")
    return name[:255]


@dataclass
class UploadTicket:
    """The answer to an upload request; ``created`` is False for a duplicate of earlier bytes."""

    created: bool
    document: Document
    job: Job | None
    upload: SignedUpload | None


class UploadService:
    """Creates, completes, retries, expires and deletes uploads for the API (one per runtime)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings = rt.settings

    @property
    def deadline_seconds(self) -> float:
        return self.settings.upload_url_ttl_seconds + self.settings.upload_grace_seconds

    def presign(self, document: Document) -> SignedUpload:
        """A fresh signed upload URL for the document's raw object."""
        return self.rt.storage.presign_upload(
            document.raw_path, content_length=document.bytes_len, content_type=document.mime,
            sha256=document.file_sha256, expires_in=self.settings.upload_url_ttl_seconds)

    def create(self, user_id: str, *, filename: str, bytes_len: int, mime: str, sha256: str) -> UploadTicket:
        """Create the document and its waiting job, or return the user's existing copy.

        Raises:
            UnsupportedType (415), EmptyFile (422), FileTooLarge (413), TooManyActiveJobs (429).
        """
        mime = normalise_mime(mime)
        ext = MIME_EXTENSIONS.get(mime)
        if ext is None:
            raise UnsupportedType(f"type {mime!r} is not supported; use one of {', '.join(MIME_EXTENSIONS)}")
        if bytes_len == 0:
            raise EmptyFile("bytes_len is 0: an empty file has nothing to ingest; upload the real file")
        if bytes_len > self.settings.max_file_bytes:
            raise FileTooLarge(f"{bytes_len} bytes is over the limit of {self.settings.max_file_bytes} "
                               "(UPLOAD_PIPELINE_MAX_FILE_BYTES)")
        document_id = uuid.uuid4()
        sha256 = sha256.lower()
        with self.rt.pool().connection() as conn:  # committed on return to the pool
            active, document, job = self.rt.repo.create_upload(
                conn, user_id=user_id, document_id=document_id, job_id=uuid.uuid4(),
                filename=display_filename(filename), mime=mime, bytes_len=bytes_len, file_sha256=sha256,
                raw_path=raw_key(user_id, document_id, ext), max_active=self.settings.max_active_jobs_per_user,
                deadline_seconds=self.deadline_seconds)
        if document is not None:
            return UploadTicket(True, document, job, self.presign(document))
        with self.rt.user_transaction(user_id) as conn:
            existing = self.rt.repo.find_document_by_sha(conn, user_id, sha256)
            job = self.rt.repo.latest_job_for_document(conn, existing.document_id) if existing else None
        if existing is None:
            if active >= self.settings.max_active_jobs_per_user:
                raise TooManyActiveJobs(
                    f"you have {active} uploads in progress (limit "
                    f"{self.settings.max_active_jobs_per_user})", retry_after=10)
            raise Conflict("the same bytes were being registered concurrently; retry")  # deleted meanwhile
        waiting = job is not None and job.state is State.WAITING
        return UploadTicket(False, existing, job, self.presign(existing) if waiting else None)

    def _user_job(self, user_id: str, job_id: UUID) -> tuple[Job, Document]:
        with self.rt.user_transaction(user_id) as conn:
            job = self.rt.repo.get_user_job(conn, user_id=user_id, job_id=job_id)
            document = self.rt.repo.get_document(conn, job.document_id) if job else None
        if job is None or document is None:
            raise NotFound(f"no job {job_id}")
        return job, document

    def complete(self, user_id: str, job_id: UUID) -> Job:
        """The client says the bytes are stored: queue the job once the object exists.

        Raises:
            NotFound (404); Conflict (409) when the object is missing or the job failed.
        """
        job, document = self._user_job(user_id, job_id)
        if job.state is not State.WAITING:
            if job.state is State.FAILED:
                raise Conflict(f"the job failed ({job.error_code}); retry it with POST /jobs/{job_id}/retry")
            return job
        if self.rt.storage.head(document.raw_path) is None:
            raise Conflict("the upload has not arrived: PUT the bytes to signed_url first")
        with self.rt.user_transaction(user_id) as conn:
            queued = self.rt.repo.queue_uploaded_job(conn, job_id, via="complete")
            current = queued or self.rt.repo.get_user_job(conn, user_id=user_id, job_id=job_id)
        assert current is not None
        return current

    def retry(self, user_id: str, job_id: UUID) -> tuple[Job, SignedUpload | None]:
        """A failed job back to its last good stage; one that never got valid bytes waits for a new
        upload (a fresh signed URL is returned).

        Raises:
            NotFound (404); Conflict (409) when the job has not failed.
        """
        job, document = self._user_job(user_id, job_id)
        if job.state is not State.FAILED:
            raise Conflict(f"only a failed job can be retried; this one is {job.state.value}")
        rearm = job.stage is Stage.UPLOADED and self.rt.storage.head(document.raw_path) is None
        with self.rt.user_transaction(user_id) as conn:
            if rearm:
                updated = self.rt.repo.rearm_upload(conn, job_id, deadline_seconds=self.deadline_seconds)
            else:
                updated = self.rt.repo.requeue_failed_job(conn, job_id)
            if updated is not None:
                self.rt.repo.insert_event(conn, job_id=job_id, document_id=job.document_id,
                                          stage=updated.stage.value, type="retry_requested",
                                          payload={"previous_error_code": job.error_code, "rearmed": rearm})
        if updated is None:
            raise Conflict("the job changed meanwhile; read it again")
        return updated, self.presign(document) if rearm else None

    def delete(self, user_id: str, document_id: UUID) -> Document:
        """Delete the document's rows (jobs, events, buffers, chunks: cascade), then its objects.

        Raises:
            NotFound (404).
        """
        with self.rt.user_transaction(user_id) as conn:
            document = self.rt.repo.delete_user_document(conn, user_id=user_id, document_id=document_id)
        if document is None:
            raise NotFound(f"no document {document_id}")
        keys = [document.raw_path, parsed_key(user_id, document_id), parsed_key(user_id, document_id, "json")]
        for key in keys:
            try:
                self.rt.storage.delete(key)
            except DocingestError as exc:  # rows are gone; an orphan object is logged, not fatal
                log.warning("document %s deleted but object %s was not: %s", document_id, key, exc)
        return document

    def on_stored(self, key: str) -> None:
        """The local storage service stored ``key``: queue its waiting job, if any."""
        with self.rt.pool().connection() as conn:
            job_id = self.rt.repo.waiting_job_by_key(conn, key)
            if job_id is not None:
                self.rt.repo.queue_uploaded_job(conn, job_id, via="storage")

    def sweep(self, *, limit: int = 100) -> dict[str, int]:
        """Queue waiting jobs whose object exists; fail those past their deadline ``upload_expired``."""
        counts = {"queued": 0, "expired": 0}
        with self.rt.pool().connection() as conn:
            rows = self.rt.repo.waiting_jobs(conn, min_age_seconds=1.0, limit=limit)
        for row in rows:
            try:
                present = self.rt.storage.head(row["raw_path"]) is not None
            except DocingestError as exc:
                log.warning("upload sweep: storage unavailable: %s", exc)
                break
            with self.rt.pool().connection() as conn:
                if present:
                    counts["queued"] += self.rt.repo.queue_uploaded_job(conn, row["job_id"], via="sweep") is not None
                elif row["expired"]:
                    err = UploadExpired(
                        f"no upload arrived within {self.settings.upload_url_ttl_seconds} s (the signed "
                        f"URL's lifetime) plus {self.settings.upload_grace_seconds:g} s grace")
                    counts["expired"] += self.rt.repo.expire_upload(
                        conn, row["job_id"], error_message=err.message) is not None
        return counts


class UploadSweeper:
    """A daemon thread running :meth:`UploadService.sweep` every ``UPLOAD_SWEEP_SECONDS``."""

    def __init__(self, service: UploadService, interval: float) -> None:
        self.service = service
        self.interval = interval
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="docingest-upload-sweeper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                counts: dict[str, Any] = self.service.sweep()
                if any(counts.values()):
                    log.info("upload sweep: %s", counts)
            except Exception:
                log.exception("upload sweep failed")

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(10)
