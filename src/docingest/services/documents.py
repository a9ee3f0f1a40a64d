"""The documents service: every entry point (``docingest ingest``/``retry``/``delete``/``status``,
the API's upload, documents and jobs routes, the storage service, the upload sweep) registers,
uploads, retries, deletes and reads documents and their jobs through :class:`DocumentService`.

Two ways in, one document model (docs/architecture.md, section 4): the same bytes of one user
are one document.

- A local file (``register_file``) is stored and its job is ``queued`` at once.
- An upload (``request_upload``) starts ``waiting`` at stage ``uploaded`` with its upload
  deadline in ``next_attempt_at`` (URL lifetime + grace). It becomes ``queued`` when the bytes
  arrive: the local storage service reports the finished upload (``on_stored``), the client
  calls ``POST /upload/{job_id}/complete`` (``complete_upload``), or the sweep (``sweep``, run
  by :class:`UploadSweeper`) finds the object. A job whose deadline passes without the object
  fails ``upload_expired``. The worker's ``uploaded`` handler then verifies size, SHA-256 and
  type in every case.

Every new job gets a ``job_created`` event (``via``: ``ingest`` or ``upload``); every retry of a
failed job a ``retry_requested`` event (``via``: ``api``, ``cli`` or ``ingest``).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import threading
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple
from uuid import UUID

from docingest.db.database import Conn, Database
from docingest.db.repository import Repository
from docingest.domain import Document, Job, Stage, State
from docingest.errors import (
    ChecksumMismatch,
    Conflict,
    ContentTypeMismatch,
    DocingestError,
    EmptyFile,
    FileTooLarge,
    InvalidSource,
    NotFound,
    SizeMismatch,
    TooManyActiveJobs,
    UnsupportedType,
    UploadExpired,
)
from docingest.providers.parsing import detect
from docingest.providers.parsing.sniff import (
    DOCX_MIME,
    EPUB_MIME,
    MSG_MIME,
    ODP_MIME,
    ODS_MIME,
    ODT_MIME,
    PPSX_MIME,
    PPTX_MIME,
    XLSM_MIME,
    XLSX_MIME,
    normalise_mime,
)
from docingest.providers.storage import SignedDownload, SignedUpload, document_keys, raw_key
from docingest.providers.storage.base import Storage, delete_objects, is_raw_key, sha256_of
from docingest.services.progress import USER_EVENTS_PAGE, UserChanges, shown_progress
from docingest.settings import Settings
from docingest.stages.metadata import (  # noqa: F401  # the API and CLI import them from here
    MAX_META_BYTES,
    MAX_META_KEY_CHARS,
    MAX_META_KEYS,
    MAX_SOURCE_CHARS,
    NAME_PATTERN,
    check_meta,
    display_filename,
    meta_defaults,
)

log = logging.getLogger("docingest.services.documents")

#: Declared types an upload may have, and the extension of its storage key.
MIME_EXTENSIONS: dict[str, str] = {
    "application/pdf": "pdf",
    DOCX_MIME: "docx",
    PPTX_MIME: "pptx",
    PPSX_MIME: "ppsx",
    XLSX_MIME: "xlsx",
    XLSM_MIME: "xlsm",
    # the registered spelling (IANA, Python's mimetypes), as clients send it; the API takes types
    # as written, so both are listed
    "application/vnd.ms-excel.sheet.macroEnabled.12": "xlsm",
    EPUB_MIME: "epub",
    ODT_MIME: "odt",
    ODS_MIME: "ods",
    ODP_MIME: "odp",
    "application/rtf": "rtf",
    "text/rtf": "rtf",
    "message/rfc822": "eml",
    MSG_MIME: "msg",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/tiff": "tiff",
    "image/webp": "webp",
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/json": "json",
    "application/jsonl": "jsonl",
    "application/x-ndjson": "jsonl",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "md",
    "text/x-markdown": "md",
    "text/plain": "txt",
    "application/octet-stream": "bin",
}

#: Errors of a job failed at ``uploaded`` whose bytes were never accepted: the upload never
#: arrived (``upload_expired``), or the worker refused the stored object for not being what
#: was declared and deleted it (``size_mismatch``, also for a missing object;
#: ``checksum_mismatch``; ``empty_file``; ``file_too_large``; ``content_type_mismatch``, the
#: declared type contradicting the content). A new ``POST /upload`` of the same SHA-256
#: re-declares such a document and re-arms its job (:meth:`DocumentService.request_upload`).
#: Not in the set: ``unsupported_type`` (the verified bytes themselves are unusable, and the
#: same SHA-256 is the same bytes), transient errors and ``worker_lost`` at ``uploaded`` (the
#: bytes may be fine: ``POST /jobs/{id}/retry`` verifies them again), and every error of a
#: later stage (the bytes were accepted).
REUPLOAD_ERRORS = frozenset(
    {
        SizeMismatch.error_code,
        ChecksumMismatch.error_code,
        EmptyFile.error_code,
        FileTooLarge.error_code,
        ContentTypeMismatch.error_code,
        UploadExpired.error_code,
    }
)

#: Who asked for a retry: the API (``POST /jobs/{id}/retry``), ``docingest retry``, or
#: ``docingest ingest`` of the same file (the ``via`` of a ``retry_requested`` event).
RetryVia = Literal["api", "cli", "ingest"]


def fs_text(name: str) -> str:
    """A file system name as text: NFC, and the bytes of a name that is not UTF-8 (kept by
    Python as lone surrogates, which no UTF-8 text holds) written ``\\xNN``: one stable name."""
    return unicodedata.normalize(
        "NFC", name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    )


#: Lifetime of a signed download URL (``POST /documents/{id}/download``), in seconds: the page
#: navigates to it at once.
DOWNLOAD_URL_TTL_SECONDS = 60


def check_source(source: str) -> str:
    """``source`` as stored: checked, then NFC.

    Raises:
        InvalidSource: blank, over :data:`MAX_SOURCE_CHARS` characters, or holding control
            characters (Unicode Cc) or lone surrogates (:data:`NAME_PATTERN`, the API schema's).
    """
    if len(source) > MAX_SOURCE_CHARS:
        raise InvalidSource(
            f"the source has {len(source)} characters; at most {MAX_SOURCE_CHARS} are accepted"
        )
    if not re.match(NAME_PATTERN, source):
        bad = next((ch for ch in source if unicodedata.category(ch) in ("Cc", "Cs")), None)
        if bad is None:
            raise InvalidSource("the source is empty or blank: name the document's origin, e.g. its path")
        raise InvalidSource(f"the source {source!r} holds the control character {bad!r}; remove it")
    return unicodedata.normalize("NFC", source)


def shown_name(source: str, document_id: object, filename: str) -> str:
    """How a document is named to a person: its source (a path relative to the root ``ingest``
    or ``sync`` was given, or the client's name for it), or its file name when its source is
    only its own id (an upload that named none)."""
    return filename if not source or source == str(document_id) else source


@dataclass(frozen=True)
class UploadPolicy:
    """The limits the documents service applies.

    Attributes:
        max_file_bytes: the largest document accepted, in bytes.
        max_active_jobs_per_user: unfinished jobs a user may have before an upload request is
            refused (``too_many_active_jobs``).
        upload_url_ttl_seconds: lifetime of a signed upload URL, in seconds.
        upload_grace_seconds: seconds an upload may still arrive after its URL expired.
    """

    max_file_bytes: int
    max_active_jobs_per_user: int
    upload_url_ttl_seconds: int
    upload_grace_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadPolicy:
        """The policy of ``UPLOAD_PIPELINE_MAX_FILE_BYTES``, ``..._MAX_ACTIVE_JOBS_PER_USER``,
        ``..._UPLOAD_URL_TTL_SECONDS`` and ``..._UPLOAD_GRACE_SECONDS``."""
        return cls(
            max_file_bytes=settings.max_file_bytes,
            max_active_jobs_per_user=settings.max_active_jobs_per_user,
            upload_url_ttl_seconds=settings.upload_url_ttl_seconds,
            upload_grace_seconds=settings.upload_grace_seconds,
        )

    @property
    def deadline_seconds(self) -> float:
        """Seconds a waiting job waits for its upload: the URL's lifetime plus the grace."""
        return self.upload_url_ttl_seconds + self.upload_grace_seconds


@dataclass
class Registered:
    """A local file's document and job; ``created`` is False for a duplicate of earlier bytes,
    ``requeued`` True when that duplicate had failed and was queued again, ``resumed`` True
    when its job was still unfinished (e.g. an interrupted ``docingest ingest``); ``warning``
    the message of the ``warning`` event recorded at registration (the name's extension says
    another type than the content), None without one; ``replaces`` the version of the same
    source serving searches when a new version was created (it serves until this one
    completes); ``superseded`` the versions of the source that served nothing (in flight or
    failed) and were deleted because this registration is later."""

    document: Document
    job: Job | None
    created: bool
    requeued: bool = False
    resumed: bool = False
    warning: str | None = None
    replaces: UUID | None = None
    superseded: list[UUID] = field(default_factory=list)


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


class Retried(NamedTuple):
    """A retried job and, when it waits for a new upload, where to send the bytes."""

    job: Job
    upload: SignedUpload | None


@dataclass(frozen=True)
class JobStatus:
    """One row of ``docingest status``: a job with its document's name and owner.

    ``progress`` is what a user is shown (:func:`~docingest.services.progress.shown_progress`:
    no ETA for a stalled job); ``stalled`` is True for a job ``working`` under an expired lease
    (its holder died or hung); ``state`` stays as stored; ``serving_document_id`` the version of
    the job's source that answers searches (None: none has completed).
    """

    document_id: str
    job_id: str
    filename: str
    source: str
    user_id: str
    stage: str
    state: str
    stalled: bool
    lease_expires_at: datetime | None
    attempts: int
    retry_count: int
    error_code: str | None
    error_message: str | None
    progress: dict[str, Any]
    serving_document_id: str | None = None
    #: ``ingest``, or ``reembed`` (the stored chunks embedded again by another generation)
    kind: str = "ingest"

    @property
    def older_version_serving(self) -> bool:
        """True when another (older) version of this job's source answers searches."""
        return self.serving_document_id not in (None, self.document_id)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JobStatus:
        """From a ``Repository.list_jobs`` row."""
        return cls(
            document_id=str(row["document_id"]),
            job_id=str(row["job_id"]),
            filename=row["filename"],
            source=row["source"],
            user_id=row["user_id"],
            stage=row["stage"],
            state=row["state"],
            stalled=bool(row["stalled"]),
            lease_expires_at=row["lease_expires_at"],
            attempts=row["attempts"],
            retry_count=row["retry_count"],
            error_code=row["error_code"],
            error_message=row["error_message"],
            progress=shown_progress(
                row["progress"], stalled=row["stalled"], state=row["state"], control=row["control"]
            ),
            serving_document_id=str(row["serving_document_id"]) if row.get("serving_document_id") else None,
            kind=row.get("kind") or "ingest",
        )

    @property
    def name(self) -> str:
        """The document as a person knows it (:func:`shown_name`)."""
        return shown_name(self.source, self.document_id, self.filename)

    def to_dict(self) -> dict[str, Any]:
        """The row as ``status --json`` prints it (``lease_expires_at`` a datetime or None)."""
        return dict(self.__dict__)


class DocumentService:
    """Registers, uploads, retries, deletes and reads documents and their jobs.

    Args:
        db: connections and user-scoped transactions.
        repo: the queries.
        storage: the object storage of the documents' bytes and parsed artifacts.
        policy: the size, active-job and upload-deadline limits.
    """

    def __init__(self, db: Database, repo: Repository, storage: Storage, policy: UploadPolicy) -> None:
        self.db = db
        self.repo = repo
        self.storage = storage
        self.policy = policy

    # --- a local file (docingest ingest) ---------------------------------------------------
    def register_file(
        self,
        path: Path,
        *,
        user_id: str,
        source: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Registered:
        """Store ``path`` as the latest version of ``source`` (default: the file's name) and
        create its document and job (``queued`` at ``uploaded``).

        The same bytes under the same source are one version: an existing one is returned
        with no new job (its ``meta`` merged with ``meta``, its recorded modification time
        updated). If its job has ``failed``, ingesting the file again is a retry (via
        ``ingest``): the bytes are stored again and the job is queued from its last good stage,
        so a document refused at upload (``size_mismatch``, ``upload_expired`` ...) can still
        be ingested. New bytes under a known source are a new version: the version serving
        searches keeps serving until this one completes and replaces it
        (:class:`~docingest.stages.embed.FinalizeDocument`); versions of the source that serve
        nothing (in flight, or failed) are deleted now, so the latest registration wins. A
        file over ``max_file_bytes`` is registered as failed ``file_too_large`` without being
        copied.

        Raises:
            OSError: the file cannot be read.
            InvalidSource: ``source`` is empty, too long or has control characters.
            StorageUnavailable: the storage refused the copy.
        """
        mtime_ns = path.stat().st_mtime_ns
        with path.open("rb") as f:
            sha, size = sha256_of(f)
        filename = fs_text(path.name)
        source = check_source(source if source is not None else filename)
        meta = dict(meta or {})
        # A CLI user declares nothing: the sniffed type wins over what the name suggests (a
        # DOCX named .pdf is parsed as the DOCX it is), with a warning event naming both.
        by_name = mimetypes.guess_type(filename, strict=False)[0]
        warning: dict[str, Any] | None = None
        try:
            detected = detect(path, filename=filename)
            mime, ext = detected.mime, detected.extension
            if by_name and by_name != detected.mime:
                suffix = Path(filename).suffix.lower()
                warning = {
                    "message": f"the name ends {suffix} ({by_name}) but the content is "
                    f"{detected.mime}; parsed as {detected.kind}",
                    "extension": suffix,
                    "extension_mime": by_name,
                    "detected_mime": detected.mime,
                }
        except DocingestError:
            mime, ext = by_name or "application/octet-stream", "bin"  # the uploaded stage reports why
        too_large = size > self.policy.max_file_bytes
        with self.db.connection() as conn:
            existing = self.repo.find_version(conn, user_id, source, sha)
            job = self.repo.latest_job_for_document(conn, existing.document_id) if existing else None
        if existing is not None:
            if job is not None and job.state is State.FAILED and not too_large:
                registered = self._register_again(path, existing, job, bytes_len=size, mime=mime)
            else:
                registered = Registered(
                    existing, job, False, resumed=job is not None and not job.state.terminal
                )
            registered.superseded = self._settle_version(existing, meta=meta, mtime_ns=mtime_ns)
            return registered
        document_id = uuid.uuid4()
        key = raw_key(user_id, document_id, ext)
        if not too_large:
            self.storage.copy_from(key, path)
        stale: list[Document] = []
        replaces: UUID | None = None
        with self.db.transaction() as conn:
            self.repo.lock_source(conn, user_id, source)
            replaces = self._serving_version(conn, user_id, source)
            _, doc = self.repo.insert_document(
                conn,
                document_id=document_id,
                user_id=user_id,
                filename=filename,
                mime=mime,
                bytes_len=size,
                file_sha256=sha,
                raw_path=key,
                source=source,
                meta=json.dumps(meta),
                origin="file",
                source_mtime_ns=mtime_ns,
            )
            if doc is None:  # another process registered the same bytes meanwhile
                existing = self.repo.find_version(conn, user_id, source, sha)
                assert existing is not None
                job = self.repo.latest_job_for_document(conn, existing.document_id)
            elif too_large:
                err = FileTooLarge(
                    f"{size} bytes is over the limit of {self.policy.max_file_bytes} "
                    "(UPLOAD_PIPELINE_MAX_FILE_BYTES)"
                )
                job = self.repo.insert_job(
                    conn,
                    job_id=uuid.uuid4(),
                    document_id=document_id,
                    state=State.FAILED.value,
                    via="ingest",
                    error_code=err.error_code,
                    error_message=err.message,
                )
            else:
                job = self.repo.insert_job(
                    conn, job_id=uuid.uuid4(), document_id=document_id, state=State.QUEUED.value, via="ingest"
                )
                if warning is not None and job is not None:
                    self.repo.insert_event(
                        conn,
                        job_id=job.job_id,
                        document_id=document_id,
                        stage=Stage.UPLOADED.value,
                        type="warning",
                        payload=warning,
                    )
            if doc is not None:
                stale = self._delete_stale(conn, user_id, source, keep=document_id)
        self.reap_objects(stale)
        if doc is None:
            assert existing is not None
            self.storage.delete(key)
            return Registered(existing, job, False)
        return Registered(
            doc,
            job,
            True,
            warning=warning["message"] if warning else None,
            replaces=replaces,
            superseded=[d.document_id for d in stale if d.source == source],  # not their attachments
        )

    def _serving_version(self, conn: Conn, user_id: str, source: str) -> UUID | None:
        """The id of the version of ``source`` that serves searches (its job is done), if any."""
        for row in self.repo.source_versions(conn, user_id=user_id, source=source):
            if row["state"] == State.DONE.value:
                return UUID(str(row["document_id"]))
        return None

    def _delete_stale(self, conn: Conn, user_id: str, source: str, *, keep: UUID) -> list[Document]:
        """Delete the versions of ``source`` other than ``keep`` that serve nothing (and their
        attachments), queueing their objects in the outbox (:meth:`reap_objects` deletes them
        after the commit)."""
        deadlines = self.repo.upload_deadlines(conn, user_id=user_id, source=source)
        stale = self.repo.delete_stale_versions(conn, user_id=user_id, source=source, keep=keep)
        stale += self.repo.delete_attachments(
            conn, user_id=user_id, document_ids=[d.document_id for d in stale]
        )
        self._queue_objects(conn, stale, deadlines)
        return stale

    def _queue_objects(self, conn: Conn, documents: list[Document], deadlines: dict[UUID, datetime]) -> None:
        """Queue the objects of ``documents`` (rows deleted in this transaction) in the outbox.

        A signed upload URL may still write a document's original after its rows are gone (the
        client PUTs straight to the storage): its raw key stays queued until the upload window
        ends (the later of its waiting job's deadline in ``deadlines``, by document id, and, for
        an API upload, its registration plus the URL's lifetime and grace: a used URL stays
        valid), so the sweep deletes a late arrival.
        """
        window = timedelta(seconds=self.policy.deadline_seconds)
        keys: list[str] = []
        retain: dict[str, datetime] = {}
        for d in documents:
            keys += document_keys(d.user_id, d.document_id, d.raw_path)
            ends = [deadlines[d.document_id]] if d.document_id in deadlines else []
            if d.origin == "api" and d.created_at is not None:  # its first URL, maybe used and kept
                ends.append(d.created_at + window)
            if ends:
                retain[d.raw_path] = max(ends)
        self.repo.queue_object_deletions(conn, keys, retain_until=retain)

    def _settle_version(
        self, document: Document, *, meta: dict[str, Any], mtime_ns: int | None
    ) -> list[UUID]:
        """``document``, whose bytes were registered again, is its source's latest version:
        the source's other versions that serve nothing go, ``meta`` is merged into its
        metadata and ``mtime_ns`` recorded. Returns the ids of the versions deleted."""
        with self.db.transaction() as conn:
            self.repo.lock_source(conn, document.user_id, document.source)
            stale = self._delete_stale(conn, document.user_id, document.source, keep=document.document_id)
            if meta:
                self.repo.merge_document_meta(conn, document.document_id, meta)
            if mtime_ns is not None and mtime_ns != document.source_mtime_ns:
                self.repo.set_source_mtime(conn, document.document_id, mtime_ns)
        self.reap_objects(stale)
        return [d.document_id for d in stale if d.source == document.source]

    def reap_objects(self, documents: list[Document] | None = None, *, min_age_seconds: float = 0.0) -> int:
        """Delete queued objects: those of ``documents`` (rows deleted and committed), or, with
        None, every key in the outbox queued ``min_age_seconds`` ago or earlier whose upload
        window has ended (the sweep).

        Returns the objects deleted; a key the storage fails to delete stays queued, and so does
        one a signed upload URL may still write until that URL's window ends (the sweep deletes
        it again then).
        """
        if documents is not None:
            keys = [k for d in documents for k in document_keys(d.user_id, d.document_id, d.raw_path)]
        else:
            with self.db.connection() as conn:
                keys = self.repo.pending_object_deletions(conn, min_age_seconds=min_age_seconds, limit=500)
        if not keys:
            return 0
        done = delete_objects(self.storage, keys)
        with self.db.connection() as conn:
            self.repo.forget_object_deletions(conn, done)
        return len(done)

    def _register_again(
        self, path: Path, document: Document, job: Job, *, bytes_len: int, mime: str
    ) -> Registered:
        """Ingest ``path`` again for its ``document`` whose latest ``job`` failed.

        A job that failed at ``uploaded`` (its bytes never verified: the object was refused
        and deleted, never arrived, or was the wrong size) gets the file stored again and the
        document re-declared with the file's real size and type; then the verification runs
        again. A job that failed later is requeued from its last good stage, the file stored
        again only if the original object is gone. If another process requeued the job first,
        nothing changes.
        """
        before_verified = job.stage is Stage.UPLOADED
        store = before_verified or self.storage.head(document.raw_path) is None
        if store:
            self.storage.copy_from(document.raw_path, path)
        with self.db.transaction() as conn:
            updated = self.repo.requeue_failed_job(conn, job.job_id)
            if updated is None:  # requeued (or deleted) meanwhile
                return Registered(
                    document, self.repo.latest_job_for_document(conn, document.document_id), False
                )
            if before_verified:
                document = (
                    self.repo.redeclare_document(conn, document.document_id, bytes_len=bytes_len, mime=mime)
                    or document
                )
            self._retry_event(conn, job, updated, via="ingest", stored_again=store)
        return Registered(document, updated, False, requeued=True)

    # --- an upload (the API) -----------------------------------------------------------
    def presign(self, document: Document) -> SignedUpload:
        """A fresh signed upload URL for the document's raw object.

        Raises:
            StorageUnavailable: the storage cannot sign one.
        """
        return self.storage.presign_upload(
            document.raw_path,
            content_length=document.bytes_len,
            content_type=document.mime,
            sha256=document.file_sha256,
            expires_in=self.policy.upload_url_ttl_seconds,
        )

    def request_upload(
        self,
        user_id: str,
        *,
        filename: str,
        bytes_len: int,
        mime: str,
        sha256: str,
        source: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> UploadTicket:
        """Create the document and its waiting job, or answer with the user's existing version.

        Without ``source`` every request is a new document, its own source (its id); identical
        bytes are then not parsed or embedded again (the ``uploaded`` stage reuses the chunks
        of a stored document with the same SHA-256). With ``source``, the same bytes under that
        source are one version, so a request for them answers that document, never a new one,
        and the reply's ``created`` is False (HTTP 200); new bytes are a new version, which
        replaces the serving one when it completes, and the source's versions that serve
        nothing (waiting, in flight, failed) are deleted: the latest request wins. What an
        existing version's reply holds depends on its latest job:

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
          :meth:`retry` or deleted.

        The decision and every write happen in one transaction holding the job's row lock,
        so two simultaneous requests re-arm the job once (the second sees it waiting), and
        an error (storage, presigning) leaves the rows as they were.

        Raises:
            ValueError: a filename with nothing displayable.
            InvalidSource, UnsupportedType, EmptyFile, FileTooLarge, TooManyActiveJobs,
            Conflict (the same bytes registered concurrently), StorageUnavailable (deleting a
            stale object or presigning).
        """
        mime = normalise_mime(mime)
        ext = MIME_EXTENSIONS.get(mime)
        if ext is None:
            raise UnsupportedType(f"type {mime!r} is not supported; use one of {', '.join(MIME_EXTENSIONS)}")
        if bytes_len == 0:
            raise EmptyFile("bytes_len is 0: an empty file has nothing to ingest; upload the real file")
        if bytes_len > self.policy.max_file_bytes:
            raise FileTooLarge(
                f"{bytes_len} bytes is over the limit of {self.policy.max_file_bytes} "
                "(UPLOAD_PIPELINE_MAX_FILE_BYTES)"
            )
        document_id = uuid.uuid4()
        sha256 = sha256.lower()
        filename = display_filename(filename)
        source = check_source(source) if source is not None else None
        stale: list[Document] = []
        with self.db.user_transaction(user_id) as conn:
            if source is not None:
                self.repo.lock_source(conn, user_id, source)
            active, document, job = self.repo.create_upload(
                conn,
                user_id=user_id,
                document_id=document_id,
                job_id=uuid.uuid4(),
                filename=filename,
                mime=mime,
                bytes_len=bytes_len,
                file_sha256=sha256,
                raw_path=raw_key(user_id, document_id, ext),
                source=source,
                meta=json.dumps(meta or {}),
                max_active=self.policy.max_active_jobs_per_user,
                wait_seconds=self.policy.deadline_seconds,
            )
            if document is not None:
                if source is not None:
                    stale = self._delete_stale(conn, user_id, source, keep=document_id)
                # Inside the transaction: if presigning fails, nothing above is kept.
                ticket = UploadTicket(True, document, job, self.presign(document))
        if document is not None:
            self.reap_objects(stale)
            return ticket
        if source is None:  # a new source cannot be a duplicate: the limit refused it
            raise self._too_many(active)
        answer = self._existing(
            user_id, source, sha256, filename=filename, mime=mime, ext=ext, bytes_len=bytes_len, active=active
        )
        if answer is None:
            if active >= self.policy.max_active_jobs_per_user:
                raise self._too_many(active)
            raise Conflict("the same bytes were being registered concurrently; retry")  # deleted meanwhile
        return answer

    def _too_many(self, active: int) -> TooManyActiveJobs:
        return TooManyActiveJobs(
            f"you have {active} uploads in progress (limit {self.policy.max_active_jobs_per_user})",
            retry_after=10,
        )

    def _existing(
        self,
        user_id: str,
        source: str,
        sha256: str,
        *,
        filename: str,
        mime: str,
        ext: str,
        bytes_len: int,
        active: int,
    ) -> UploadTicket | None:
        """The reply of :meth:`request_upload` for bytes the user already has under ``source``
        (the source's other versions that serve nothing are deleted: this request is the
        latest); None when they have not."""
        with self.db.user_transaction(user_id) as conn:
            self.repo.lock_source(conn, user_id, source)
            document = self.repo.find_version(conn, user_id, source, sha256)
            if document is None:
                return None
            stale = self._delete_stale(conn, user_id, source, keep=document.document_id)
            ticket = self._answer_existing(
                conn, document, filename=filename, mime=mime, ext=ext, bytes_len=bytes_len, active=active
            )
        self.reap_objects(stale)  # committed: the rows are gone
        return ticket

    def _answer_existing(
        self,
        conn: Conn,
        document: Document,
        *,
        filename: str,
        mime: str,
        ext: str,
        bytes_len: int,
        active: int,
    ) -> UploadTicket:
        """:meth:`_existing`'s decision for ``document``, under the caller's transaction."""
        user_id = document.user_id
        job = self.repo.lock_latest_job(conn, document.document_id)
        if job is None:
            return UploadTicket(False, document, None, None)
        rearm = (
            job.state is State.FAILED and job.stage is Stage.UPLOADED and job.error_code in REUPLOAD_ERRORS
        )
        if not rearm and job.state is not State.WAITING:
            return UploadTicket(False, document, job, None)
        if rearm and active >= self.policy.max_active_jobs_per_user:
            raise self._too_many(active)  # like a new upload; nothing was written
        stored = self.storage.head(document.raw_path) is not None
        if job.state is State.WAITING and stored:  # arrived, not yet queued: keep its declaration
            return UploadTicket(False, document, job, self.presign(document))
        declared = {"filename": document.filename, "mime": document.mime, "bytes_len": document.bytes_len}
        wanted = {"filename": filename, "mime": mime, "bytes_len": bytes_len}
        reupload = rearm or declared != wanted
        if reupload:
            if stored:  # refused or late bytes, never accepted; the new PUT must find the key free
                self.storage.delete(document.raw_path)
            raw_path = document.raw_path
            if raw_path.rsplit(".", 1)[-1] != ext:  # the key's extension follows the type
                raw_path = raw_key(user_id, document.document_id, ext)
            document = (
                self.repo.redeclare_document(
                    conn,
                    document.document_id,
                    raw_path=raw_path,
                    filename=filename,
                    mime=mime,
                    bytes_len=bytes_len,
                )
                or document
            )
        if rearm:
            updated = self.repo.requeue_failed_job(
                conn, job.job_id, upload_deadline_seconds=self.policy.deadline_seconds
            )
        else:
            updated = self.repo.extend_upload_deadline(
                conn, job.job_id, deadline_seconds=self.policy.deadline_seconds
            )
        if updated is None:  # cannot happen under the lock; rolls back if it does
            raise Conflict("the job changed meanwhile; retry")
        if reupload:
            self.repo.insert_event(
                conn,
                job_id=job.job_id,
                document_id=document.document_id,
                stage=updated.stage.value,
                type="reupload_requested",
                payload={
                    "previous_state": job.state.value,
                    "previous_error_code": job.error_code,
                    "previous": declared,
                    **wanted,
                    "stale_object_deleted": stored,
                },
            )
        # Inside the transaction: if presigning fails, nothing above is kept.
        return UploadTicket(False, document, updated, self.presign(document), reupload=reupload)

    def complete_upload(self, user_id: str, job_id: UUID) -> Job:
        """The client says the bytes are stored: queue the job once the object exists.

        Returns:
            the job, ``queued`` (or as it was when it was no longer waiting).

        Raises:
            NotFound: no such job of the user's.
            Conflict: the object is missing, or the job failed.
        """
        job, document = self._job_and_document(job_id, user_id=user_id)
        if job.state is not State.WAITING:
            if job.state is State.FAILED:
                raise Conflict(f"the job failed ({job.error_code}); retry it with POST /jobs/{job_id}/retry")
            return job
        if self.storage.head(document.raw_path) is None:
            raise Conflict("the upload has not arrived: PUT the bytes to signed_url first")
        with self.db.user_transaction(user_id) as conn:
            queued = self.repo.queue_uploaded_job(conn, job_id, via="complete")
            current = queued or self.repo.get_job(conn, job_id, user_id=user_id)
        assert current is not None
        return current

    def on_stored(self, key: str) -> None:
        """The local storage service stored ``key``: queue its waiting job, if any; delete the
        object if it has a document original's shape (:func:`raw_key`) but no document names it
        (its document was deleted, or re-declared under another key, while the signed URL was
        still valid). Other keys (a storage client's own signed uploads) are left alone."""
        with self.db.connection() as conn:
            job_id = self.repo.waiting_job_by_key(conn, key)
            if job_id is not None:
                self.repo.queue_uploaded_job(conn, job_id, via="storage")
                return
            claimed = not is_raw_key(key) or self.repo.key_is_claimed(conn, key)
        if not claimed:
            log.info("upload of %s arrived for no document: deleted", key)
            self.storage.delete(key)

    def sweep(self, *, limit: int = 100) -> dict[str, int]:
        """Queue waiting jobs whose object exists; fail those past their deadline ``upload_expired``;
        delete the objects of deleted rows still queued a minute after their deletion (a crash
        between the commit and :meth:`reap_objects`).

        Returns:
            ``{"queued": n, "expired": n, "objects_deleted": n}`` of this pass (at most
            ``limit`` jobs looked at; it stops early when the storage does not answer).
        """
        counts = {"queued": 0, "expired": 0, "objects_deleted": self.reap_objects(min_age_seconds=60.0)}
        with self.db.connection() as conn:
            rows = self.repo.waiting_jobs(conn, min_age_seconds=1.0, limit=limit)
        for row in rows:
            try:
                present = self.storage.head(row["raw_path"]) is not None
            except DocingestError as exc:
                log.warning("upload sweep: storage unavailable: %s", exc)
                break
            with self.db.connection() as conn:
                if present:
                    counts["queued"] += (
                        self.repo.queue_uploaded_job(conn, row["job_id"], via="sweep") is not None
                    )
                elif row["expired"]:
                    err = UploadExpired(
                        f"no upload arrived within {self.policy.upload_url_ttl_seconds} s (the signed "
                        f"URL's lifetime) plus {self.policy.upload_grace_seconds:g} s grace"
                    )
                    counts["expired"] += (
                        self.repo.expire_upload(conn, row["job_id"], error_message=err.message) is not None
                    )
        return counts

    # --- every entry point -----------------------------------------------------------------
    def retry(self, job_id: UUID, *, user_id: str | None = None, via: RetryVia = "api") -> Retried:
        """A failed job back to its last good stage, with a ``retry_requested`` event.

        A job that failed at ``uploaded`` whose object is gone (refused and deleted, or never
        stored) needs the bytes again: for the API (``via="api"``) it waits for a new upload
        and a fresh signed URL is returned; anything else cannot send bytes to a URL and is
        refused.

        Args:
            user_id: only a job of this user's documents (the API, under row security); None:
                any job (the CLI, which owns the database).
            via: the entry point asking (the event's ``via``).

        Raises:
            NotFound: no such job (of the user's).
            Conflict: the job has not failed, changed meanwhile, or (not via the API) needs
                its file again: the message says to ingest it again.
        """
        job, document = self._job_and_document(job_id, user_id=user_id)
        if job.state is not State.FAILED:
            raise Conflict(f"only a failed job can be retried; this one is {job.state.value}")
        rearm = job.stage is Stage.UPLOADED and self.storage.head(document.raw_path) is None
        if rearm and via != "api":
            raise Conflict(
                f"job {job_id} failed {job.error_code} before its file was kept, so there is "
                f"nothing to retry: run `docingest ingest` on {document.filename} again (it "
                "requeues the failed document with the file)"
            )
        transaction = self.db.user_transaction(user_id) if user_id is not None else self.db.transaction()
        with transaction as conn:
            updated = self.repo.requeue_failed_job(
                conn, job_id, upload_deadline_seconds=self.policy.deadline_seconds if rearm else None
            )
            if updated is not None:
                self._retry_event(conn, job, updated, via=via, rearmed=rearm)
        if updated is None:
            raise Conflict("the job changed meanwhile; read it again")
        return Retried(updated, self.presign(document) if rearm else None)

    def _retry_event(self, conn: Conn, previous: Job, updated: Job, *, via: RetryVia, **details: Any) -> None:
        self.repo.insert_event(
            conn,
            job_id=updated.job_id,
            document_id=updated.document_id,
            stage=updated.stage.value,
            type="retry_requested",
            payload={"via": via, "previous_error_code": previous.error_code, **details},
        )

    def delete(self, user_id: str, document_id: UUID) -> Document:
        """Delete the document's rows (jobs, events, buffers, chunks: cascade), then its objects
        (queued in the object outbox in the same transaction; one the storage fails to delete
        stays queued for the sweep). The documents attached to it (an e-mail's attachments)
        are deleted with it.

        Raises:
            NotFound: no such document of the user's.
        """
        attached: list[Document] = []
        with self.db.user_transaction(user_id) as conn:
            deadlines = self.repo.upload_deadlines(conn, user_id=user_id, document_id=document_id)
            document = self.repo.delete_user_document(conn, user_id=user_id, document_id=document_id)
            if document is not None:
                attached = self.repo.delete_attachments(conn, user_id=user_id, document_ids=[document_id])
                self._queue_objects(conn, [document, *attached], deadlines)
        if document is None:
            raise NotFound(f"no document {document_id}")
        self.reap_objects([document, *attached])
        return document

    def delete_source(self, user_id: str, source: str) -> list[Document]:
        """Delete every version of the user's ``source`` (the file is gone: ``sync``), rows and
        objects as :meth:`delete` does (attachments included); returns the documents deleted
        (none: no such source)."""
        with self.db.transaction() as conn:
            self.repo.lock_source(conn, user_id, source)
            deadlines = self.repo.upload_deadlines(conn, user_id=user_id, source=source)
            gone = self.repo.delete_source(conn, user_id=user_id, source=source)
            gone += self.repo.delete_attachments(
                conn, user_id=user_id, document_ids=[d.document_id for d in gone]
            )
            self._queue_objects(conn, gone, deadlines)
        self.reap_objects(gone)
        return gone

    def versions_under(self, user_id: str, prefix: str) -> list[dict[str, Any]]:
        """Every version of the user's sources starting with ``prefix`` (every origin), by
        source then registration order (``Repository.sources_under``'s rows: ``document_id,
        source, file_sha256, bytes_len, source_mtime_ns, origin, version_seq, filename,
        state, error_code``)."""
        with self.db.connection() as conn:
            return self.repo.sources_under(conn, user_id=user_id, prefix=prefix)

    def merge_meta(self, document_id: UUID, meta: dict[str, Any]) -> bool:
        """Set ``meta``'s keys on the document's metadata (its values win); False when they
        were all set already (``sync --meta`` of an unchanged file)."""
        with self.db.connection() as conn:
            return self.repo.merge_document_meta(conn, document_id, meta)

    def record_source_mtime(self, document_id: UUID, mtime_ns: int) -> None:
        """Record ``mtime_ns`` as the modification time of the file a version's bytes were
        read from (``sync`` found the same bytes under a new time: the next one skips the file
        without reading it)."""
        with self.db.connection() as conn:
            self.repo.set_source_mtime(conn, document_id, mtime_ns)

    def get_document(self, user_id: str, document_id: UUID) -> dict[str, Any]:
        """The user's document with its latest job (``Repository.get_document_view``'s row).

        Raises:
            NotFound: no such document of the user's.
        """
        with self.db.user_transaction(user_id) as conn:
            row = self.repo.get_document_view(conn, user_id=user_id, document_id=document_id)
        if row is None:
            raise NotFound(f"no document {document_id}")
        return row

    def list_documents(
        self,
        user_id: str,
        *,
        limit: int,
        offset: int,
        states: Sequence[State] | None = None,
        name_contains: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """The user's documents as :meth:`get_document` gives one, newest first: a page of at
        most ``limit`` after skipping ``offset``, and the number of documents matching in all.

        Args:
            states: only documents whose latest job is in one of these states (None or empty: any).
            name_contains: only documents whose filename or source contains this text, ignoring
                case (taken literally: ``%`` and ``_`` are not wildcards; None or empty: any).

        Returns:
            ``(rows, total)``; both read in one transaction, so they agree.
        """
        with self.db.user_transaction(user_id) as conn:
            return self.repo.list_document_views(
                conn,
                user_id=user_id,
                limit=limit,
                offset=offset,
                states=[s.value for s in states] if states else None,
                name_contains=name_contains or None,
            )

    def _own_document(self, conn: Conn, user_id: str, document_id: UUID) -> Document:
        document = self.repo.get_document(conn, document_id)
        if document is None or document.user_id != user_id:
            raise NotFound(f"no document {document_id}")
        return document

    def document_chunks(
        self, user_id: str, document_id: UUID, *, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the user's document's stored chunks in ordinal order, and how many it has
        (none while it is in flight: chunks are stored at finalize): ``(rows, total)``, rows as
        ``Repository.document_chunk_page`` gives them.

        Raises:
            NotFound: no such document of the user's.
        """
        with self.db.user_transaction(user_id) as conn:
            self._own_document(conn, user_id, document_id)
            rows = self.repo.document_chunk_page(
                conn, user_id=user_id, document_id=document_id, limit=limit, offset=offset
            )
            total = self.repo.document_chunk_count(conn, document_id)
        return rows, total

    def document_history(self, user_id: str, document_id: UUID, *, limit: int) -> list[dict[str, Any]]:
        """The user's document's events of every job, oldest first, at most ``limit`` (the
        rows of ``Repository.events_after``).

        Raises:
            NotFound: no such document of the user's.
        """
        with self.db.user_transaction(user_id) as conn:
            self._own_document(conn, user_id, document_id)
            return self.repo.events_after(conn, document_id, 0, limit=limit)

    def download(self, user_id: str, document_id: UUID) -> tuple[SignedDownload, str]:
        """A short-lived (:data:`DOWNLOAD_URL_TTL_SECONDS`) signed ``GET`` of the user's
        document's original bytes, saved as its file name: ``(signed, filename)``.

        Raises:
            NotFound: no such document of the user's.
            Conflict: its bytes are not stored (the upload has not arrived, or was refused).
            StorageUnavailable: the storage cannot be reached or cannot sign.
        """
        with self.db.user_transaction(user_id) as conn:
            document = self._own_document(conn, user_id, document_id)
        if self.storage.head(document.raw_path) is None:
            raise Conflict(
                f"document {document_id} has no stored original: its upload has not arrived, or "
                "was refused (see its error); upload the file again"
            )
        signed = self.storage.presign_download(
            document.raw_path, filename=document.filename, expires_in=DOWNLOAD_URL_TTL_SECONDS
        )
        return signed, document.filename

    def get_job(self, user_id: str, job_id: UUID) -> Job:
        """One of the user's jobs.

        Raises:
            NotFound: no such job of the user's.
        """
        with self.db.user_transaction(user_id) as conn:
            job = self.repo.get_job(conn, job_id, user_id=user_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    def _job_and_document(self, job_id: UUID, *, user_id: str | None) -> tuple[Job, Document]:
        transaction = self.db.user_transaction(user_id) if user_id is not None else self.db.transaction()
        with transaction as conn:
            job = self.repo.get_job(conn, job_id, user_id=user_id)
            document = self.repo.get_document(conn, job.document_id) if job else None
        if job is None or document is None:
            raise NotFound(f"no job {job_id}")
        return job, document

    def job_rows(
        self, *, user_id: str | None = None, document_ids: list[UUID] | None = None
    ) -> list[dict[str, Any]]:
        """Every job (of ``user_id``, of ``document_ids``; None: all), oldest first, as
        ``Repository.list_jobs`` gives them."""
        with self.db.connection() as conn:
            return self.repo.list_jobs(conn, user_id=user_id, document_ids=document_ids)

    def attachments_of(self, document_ids: list[UUID]) -> list[UUID]:
        """The ids of the documents attached to ``document_ids`` (e-mails' attachments,
        registered by their parse), oldest first; not those attached to them."""
        if not document_ids:
            return []
        with self.db.connection() as conn:
            return self.repo.attached_documents(conn, document_ids)

    def statuses(self, *, user_id: str | None = None) -> list[JobStatus]:
        """Every job (of ``user_id``; None: everyone's), oldest first, as ``status`` shows them."""
        return [JobStatus.from_row(r) for r in self.job_rows(user_id=user_id)]

    def document_stats(self, document_ids: list[UUID]) -> list[dict[str, Any]]:
        """``document_id, page_count, chunks`` of each listed document."""
        with self.db.connection() as conn:
            return self.repo.document_stats(conn, document_ids)

    def inventory(self, user_id: str | None) -> dict[str, Any]:
        """``{documents, searchable, chunks, users, jobs_by_state: {state: n}}`` of ``user_id``
        (None: everyone; ``searchable``: the documents with chunks; ``users`` counts every user
        with a document).

        Raises:
            psycopg.Error: the database cannot be read.
        """
        with self.db.connection() as conn:
            return self.repo.inventory(conn, user_id)

    def events_after(self, document_id: UUID, after_event_id: int) -> tuple[Job | None, list[dict[str, Any]]]:
        """The document's latest job (read first) and its events after ``after_event_id``
        (at most 500, oldest first). Does not check the document's owner."""
        with self.db.connection() as conn:
            job = self.repo.latest_job_for_document(conn, document_id)
            rows = self.repo.events_after(conn, document_id, after_event_id)
        return job, rows

    def latest_event_id(self) -> int:
        """The newest event's id over every user (0: none): where a new user-wide stream starts."""
        with self.db.connection() as conn:
            return self.repo.latest_event_id(conn)

    def user_changes(
        self, user_id: str, after_event_id: int, *, views_of: Sequence[UUID], exists: Sequence[UUID]
    ) -> UserChanges:
        """One poll of the user's stream (``GET /events``), in one transaction under the user's
        row security: the user's events after ``after_event_id`` (at most
        :data:`~docingest.services.progress.USER_EVENTS_PAGE`, oldest first);
        the document views of ``views_of``, of those events' documents and of the user's jobs
        working now; which of ``exists`` are still the user's documents; and how many documents
        the user has, with the largest ``version_seq`` among them. One snapshot (``REPEATABLE
        READ``): a view that says ``done`` comes with the event its commit wrote."""
        with self.db.user_transaction(user_id, snapshot=True) as conn:
            events = self.repo.user_events_after(
                conn, user_id=user_id, after_event_id=after_event_id, limit=USER_EVENTS_PAGE
            )
            working = self.repo.working_document_ids(conn, user_id=user_id)
            ids = list(dict.fromkeys([*views_of, *(e["document_id"] for e in events), *working]))
            views = self.repo.document_views(conn, user_id=user_id, document_ids=ids)
            present = (
                self.repo.existing_documents(conn, user_id=user_id, document_ids=exists) if exists else set()
            )
            tally = self.repo.user_document_tally(conn, user_id=user_id)
        return UserChanges(events, views, present, tally)

    def latest_job(self, document_id: UUID) -> Job | None:
        """The document's latest job, or None."""
        with self.db.connection() as conn:
            return self.repo.latest_job_for_document(conn, document_id)

    def job_counts(self) -> list[tuple[str, str, int]]:
        """``[(stage, state, jobs)]`` over every job (queue depth).

        Raises:
            psycopg.Error: the database cannot be read.
        """
        with self.db.connection() as conn:
            return self.repo.job_counts(conn)

    def wake_parse_job(self, job_id: UUID, remote_job_id: str) -> bool:
        """Make a job waiting on remote parse ``remote_job_id`` claimable now; False if none."""
        with self.db.connection() as conn:
            return self.repo.wake_parse_job(conn, job_id, remote_job_id)


class UploadSweeper:
    """A daemon thread running :meth:`DocumentService.sweep` every ``interval`` seconds."""

    def __init__(self, service: DocumentService, interval: float) -> None:
        self.service = service
        self.interval = interval
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._loop, name="docingest-upload-sweeper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                counts = self.service.sweep()
                if any(counts.values()):
                    log.info("upload sweep: %s", counts)
            except Exception:
                log.exception("upload sweep failed")

    def stop(self) -> None:
        """Stop the thread (waits up to 10 s for a pass in progress)."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(10)
