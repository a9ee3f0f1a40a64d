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
    ChecksumMismatch,
    Conflict,
    ContentTypeMismatch,
    DocingestError,
    EmptyFile,
    FileTooLarge,
    NotFound,
    SizeMismatch,
    TooManyActiveJobs,
    UnsupportedType,
    UploadExpired,
)
from docingest.providers.parsing.sniff import DOCX_MIME
from docingest.providers.storage import SignedUpload, parsed_key, raw_key

if TYPE_CHECKING:
    from docingest.runtime import Runtime

log = logging.getLogger("docingest.services.uploads")

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

#: Errors of a job failed at ``uploaded`` whose bytes were never accepted: the upload never
#: arrived (``upload_expired``), or the worker refused the stored object for not being what
#: was declared and deleted it (``size_mismatch``, also for a missing object;
#: ``checksum_mismatch``; ``empty_file``; ``file_too_large``; ``content_type_mismatch``, the
#: declared type contradicting the content). A new ``POST /upload`` of the same SHA-256
#: re-declares such a document and re-arms its job (:meth:`UploadService.create`).
#: Not in the set: ``unsupported_type`` (the verified bytes themselves are unusable, and the
#: same SHA-256 is the same bytes), transient errors and ``worker_lost`` at ``uploaded`` (the
#: bytes may be fine: ``POST /jobs/{id}/retry`` verifies them again), and every error of a
#: later stage (the bytes were accepted).
REUPLOAD_ERRORS = frozenset({
    SizeMismatch.error_code, ChecksumMismatch.error_code, EmptyFile.error_code,
    FileTooLarge.error_code, ContentTypeMismatch.error_code, UploadExpired.error_code,
})


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
    """The answer to an upload request; ``created`` is False for a duplicate of earlier bytes,
    ``reupload`` True when that duplicate's refused, expired or pending upload was re-armed
    with this request's declaration."""

    created: bool
    document: Document
    job: Job | None
    upload: SignedUpload | None
    reupload: bool = False


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
        """Create the document and its waiting job, or answer with the user's existing copy.

        The same bytes (SHA-256) of one user are one document (docs/architecture.md, section
        4), so a request for bytes the user already has answers that document, never a new
        one, and the reply's ``created`` is False (HTTP 200). What it holds depends on the
        document's latest job:

        - ``failed`` at ``uploaded`` with an error of :data:`REUPLOAD_ERRORS` (the upload was
          refused, or never arrived): the job waits for a new upload. The document takes
          this request's filename, type and size, a stale object at its key is deleted (it
          was never accepted), the job goes back to ``waiting`` with a new deadline, an event
          ``reupload_requested`` names the previous error, and a fresh signed URL is
          returned (``reupload`` True). Subject to the active-job limit, like a new upload.
        - ``waiting`` (the bytes have not arrived, e.g. the signed URL refused a PUT of
          another size): a fresh signed URL, the deadline moved to cover it. If this request
          declares another filename, type or size, the document takes them first
          (``reupload`` True, event ``reupload_requested``), so a corrected size is what the
          new URL accepts. If the object is already stored nothing changes.
        - anything else (queued, working, done, or failed after the bytes were accepted,
          e.g. ``pdf_corrupt``, ``no_text``, an embedding error; or ``unsupported_type``):
          the document and job as they are, no signed URL. A failed one is retried with
          ``POST /jobs/{id}/retry`` (:meth:`retry`) or deleted.

        The decision and every write happen in one transaction holding the job's row lock,
        so two simultaneous requests re-arm the job once (the second sees it waiting), and
        an error (storage, presigning) leaves the rows as they were.

        Raises:
            UnsupportedType (415), EmptyFile (422), FileTooLarge (413), TooManyActiveJobs (429),
            StorageUnavailable (503, deleting a stale object or presigning).
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
        filename = display_filename(filename)
        with self.rt.pool().connection() as conn:  # committed on return to the pool
            active, document, job = self.rt.repo.create_upload(
                conn, user_id=user_id, document_id=document_id, job_id=uuid.uuid4(),
                filename=filename, mime=mime, bytes_len=bytes_len, file_sha256=sha256,
                raw_path=raw_key(user_id, document_id, ext), max_active=self.settings.max_active_jobs_per_user,
                deadline_seconds=self.deadline_seconds)
        if document is not None:
            return UploadTicket(True, document, job, self.presign(document))
        ticket = self._existing(user_id, sha256, filename=filename, mime=mime, ext=ext, bytes_len=bytes_len,
                                active=active)
        if ticket is None:
            if active >= self.settings.max_active_jobs_per_user:
                raise self._too_many(active)
            raise Conflict("the same bytes were being registered concurrently; retry")  # deleted meanwhile
        return ticket

    def _too_many(self, active: int) -> TooManyActiveJobs:
        return TooManyActiveJobs(f"you have {active} uploads in progress (limit "
                                 f"{self.settings.max_active_jobs_per_user})", retry_after=10)

    def _existing(self, user_id: str, sha256: str, *, filename: str, mime: str, ext: str, bytes_len: int,
                  active: int) -> UploadTicket | None:
        """The reply of :meth:`create` for bytes the user already has; None when they have not."""
        with self.rt.user_transaction(user_id) as conn:
            document = self.rt.repo.find_document_by_sha(conn, user_id, sha256)
            if document is None:
                return None
            job = self.rt.repo.lock_latest_job(conn, document.document_id)
            if job is None:
                return UploadTicket(False, document, None, None)
            rearm = (job.state is State.FAILED and job.stage is Stage.UPLOADED
                     and job.error_code in REUPLOAD_ERRORS)
            if not rearm and job.state is not State.WAITING:
                return UploadTicket(False, document, job, None)
            if rearm and active >= self.settings.max_active_jobs_per_user:
                raise self._too_many(active)  # like a new upload; nothing was written
            stored = self.rt.storage.head(document.raw_path) is not None
            if job.state is State.WAITING and stored:  # arrived, not yet queued: keep its declaration
                return UploadTicket(False, document, job, self.presign(document))
            declared = {"filename": document.filename, "mime": document.mime, "bytes_len": document.bytes_len}
            wanted = {"filename": filename, "mime": mime, "bytes_len": bytes_len}
            reupload = rearm or declared != wanted
            if reupload:
                if stored:  # refused or late bytes, never accepted; the new PUT must find the key free
                    self.rt.storage.delete(document.raw_path)
                raw_path = document.raw_path
                if raw_path.rsplit(".", 1)[-1] != ext:  # the key's extension follows the type
                    raw_path = raw_key(user_id, document.document_id, ext)
                document = self.rt.repo.reupload_document(conn, document.document_id, raw_path=raw_path,
                                                          **wanted) or document
            if rearm:
                updated = self.rt.repo.rearm_upload(conn, job.job_id, deadline_seconds=self.deadline_seconds)
            else:
                updated = self.rt.repo.extend_upload_deadline(conn, job.job_id,
                                                              deadline_seconds=self.deadline_seconds)
            if updated is None:  # cannot happen under the lock; rolls back if it does
                raise Conflict("the job changed meanwhile; retry")
            if reupload:
                self.rt.repo.insert_event(
                    conn, job_id=job.job_id, document_id=document.document_id, stage=updated.stage.value,
                    type="reupload_requested",
                    payload={"previous_state": job.state.value, "previous_error_code": job.error_code,
                             "previous": declared, **wanted, "stale_object_deleted": stored})
            # Inside the transaction: if presigning fails, nothing above is kept.
            return UploadTicket(False, document, updated, self.presign(document), reupload=reupload)

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
