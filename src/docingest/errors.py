"""Error model: every failure docingest reports, with a stable ``error_code``.

Every class carries, as class attributes, its ``error_code`` (stable snake_case),
``retryable`` (a retry of the same input may succeed) and ``http_status`` (what the API
answers when the error escapes a route; for an error only the pipeline raises, the status
it would have), plus ``meaning`` and ``user_action`` for the README's tables. No table
elsewhere maps a class to a status or a code. The tree (the httpx habit of drawing it once,
here)::

    DocingestError                     base: ``error_code``, ``retryable``, ``http_status``
    ├── PermanentError (400)           job errors never retried: the input is wrong, or a retry
    │                                  would meet the same state
    │   ├── EmptyFile                  empty_file (422)
    │   ├── FileTooLarge               file_too_large (413)
    │   ├── UnsupportedType            unsupported_type (415)
    │   ├── ContentTypeMismatch        content_type_mismatch (415)
    │   ├── ChecksumMismatch           checksum_mismatch (422)
    │   ├── SizeMismatch               size_mismatch (422)
    │   ├── PdfEncrypted               pdf_encrypted (422)
    │   ├── PdfCorrupt                 pdf_corrupt (422)
    │   ├── DocumentCorrupt            document_corrupt (422)
    │   ├── DocumentEncrypted          document_encrypted (422): a password-protected Office file
    │   ├── ArchiveTooLarge            archive_too_large (422): a ZIP-based document unpacks too big
    │   ├── SpreadsheetTooLarge        spreadsheet_too_large (422)
    │   ├── ImageTooLarge              image_too_large (422)
    │   ├── OcrFailed                  ocr_failed (422)
    │   ├── TextTooLarge               text_too_large (422): over UPLOAD_PIPELINE_MAX_DOCUMENT_CHARS
    │   ├── NoText                     no_text (422)
    │   ├── ChunkTooLong               chunk_too_long (500)
    │   ├── EmbeddingDimensionMismatch embedding_dimension_mismatch (400)
    │   ├── UploadExpired              upload_expired (410)
    │   ├── WorkerLost                 worker_lost (500; raised after N lost leases)
    │   ├── EmbeddingInputTooLong      embedding_input_too_long (400)
    │   ├── EmbeddingRejected          embedding_rejected (400; a 4xx other than 429)
    │   ├── RemoteParseFailed          remote_parse_failed (502; LlamaParse job FAILED)
    │   ├── RemoteParseCancelled       remote_parse_cancelled (502)
    │   └── InternalInvariantError     internal_invariant (500): a bug, docingest found a state
    │                                  it never writes; failed at once, never retried
    ├── TransientError (500)           retried with backoff, then failed with the last cause
    │   ├── StorageUnavailable         storage_unavailable (503)
    │   ├── ObjectMissing              object_missing (404): a stored object is gone (a FileNotFoundError)
    │   ├── EmbeddingUnavailable       embedding_unavailable (500)
    │   ├── ParseTimeout               parse_timeout (504)
    │   ├── ParseCrashed               parse_crashed (500)
    │   ├── ParseOutOfMemory           parse_oom (500)
    │   ├── InternalError              internal_error (500; an unexpected exception)
    │   └── ParserUnavailable          parser_unavailable (503; LlamaParse 5xx, 429, network)
    ├── RequestError                   bad_request (400): refused API requests, never stored on a job
    │   ├── Unauthorized               invalid_token (401)
    │   ├── NotFound                   not_found (404): also another user's ids
    │   ├── Conflict                   conflict (409): the resource is not in a state for this
    │   ├── TooManyActiveJobs          too_many_active_jobs (429, ``retry_after``)
    │   ├── InvalidRequest             invalid_request (422): a field fails validation
    │   ├── InvalidValue               invalid_value (422): a value the database cannot store
    │   ├── DatabaseUnavailable        database_unavailable (503)
    │   ├── MethodNotAllowed           method_not_allowed (405): the path exists, not for this method
    │   ├── BadWebhookSignature        unauthorized (401): the LlamaParse webhook's signature
    │   ├── QueryTooLong               query_too_long (422): also a ValueError, for the CLI
    │   └── InvalidFilter              invalid_filter (422): a search filter's value; also a ValueError
    ├── SetupError                     the installation needs its operator (also a RuntimeError);
    │   │                              its message keeps server paths (the API scrubs them)
    │   ├── DatabaseNotMigrated        database_not_migrated (503): run ``docingest migrate``
    │   ├── EmbeddedDatabaseFailed     embedded_database_failed (503): pgserver did not start
    │   ├── DependencyMissing          dependency_missing (503): an optional package is not installed
    │   └── InvalidConfiguration       invalid_configuration (503): a setting docingest cannot use
    └── StorageError                   bad_request (400): refusals of the local storage service,
        │                              answered in Supabase Storage's body with ``supabase_error``
        ├── StorageUnauthorized        invalid_token (403, "Unauthorized"): no token, or a role
        │                              no row-level security policy lets do this
        ├── SignedUrlError             invalid_token (403, "InvalidJWT"): bad or expired signed URL
        │   └── SignedUrlTokenMissing  bad_request (400, "InvalidJWT"): no ``?token=``
        ├── BucketNotFound             not_found (404, "Bucket not found")
        ├── ObjectNotFound             not_found (404, "not_found")
        ├── StorageRouteNotFound       not_found (404, "Not Found"): no such route (or not implemented)
        ├── StorageMethodNotAllowed    method_not_allowed (405, "Method Not Allowed")
        ├── InvalidObjectKey           bad_request (400, "InvalidKey")
        ├── InvalidBucketName          bad_request (400, "Invalid Input")
        ├── BucketExists               conflict (409, "Duplicate")
        ├── BucketNotEmpty             conflict (409, "ResourceNotEmpty")
        ├── MimeTypeNotAllowed         unsupported_type (415, "invalid_mime_type")
        ├── RangeNotSatisfiable        bad_request (416, "InvalidRange")
        ├── ObjectExists               conflict (409, "Duplicate")
        ├── BodyLongerThanDeclared     size_mismatch (413, "Payload too large")
        ├── BodyTooLarge               file_too_large (413, "Payload too large")
        ├── BodySizeMismatch           size_mismatch (400, "InvalidRequest")
        ├── BodyChecksumMismatch       checksum_mismatch (400, "InvalidChecksum")
        └── ClientDisconnected         bad_request (400, "ClientDisconnect")

    Control-flow signals, not failures (caught inside the package, never reported):
    LeaseLost                          the worker lost its claim (attempt fenced out) and
                                       must write nothing
    WorkerStopping (worker.loop)       the worker is stopping: the held job is released
    IngestInterrupted (services.ingest) ``ingest`` was interrupted: run it again to resume

The local storage service's codes are the README's (``size_mismatch`` there is the same
condition as on a job); its status and ``error`` string follow Supabase Storage.
Library errors are translated at the edge (``raise PdfCorrupt(...) from exc``);
the worker turns a ``DocingestError`` into a retry or a ``failed`` job, the API
into ``{"error_code", "message"}`` with ``http_status``.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: Directories whose paths never appear in a stored message (``register_private_root``):
#: the data dir and the storage root, the temporary directory.
_PRIVATE_ROOTS: set[str] = set()
# An absolute POSIX path not inside a URL or a word (``http://h/x``, ``text/plain`` stay).
_ABS_PATH = re.compile(r"(?<![\w.:/~-])/[^\s'\"`<>|,;:()\[\]{}]+")
# Top-level directories a server path starts with (besides any registered root).
_SYSTEM_TOPS = {
    "tmp",
    "var",
    "home",
    "root",
    "srv",
    "opt",
    "usr",
    "mnt",
    "media",
    "data",
    "work",
    "private",
    "Users",
    "run",
    "dev",
    "proc",
    "etc",
    "app",
    "workspace",
    "code",
    "builds",
}


def register_private_root(path: str | os.PathLike[str]) -> None:
    """Never show ``path`` (or anything under it) in an error message: the data dir, storage root."""
    text = os.fspath(path).rstrip("/")
    if text not in ("", "."):
        _PRIVATE_ROOTS.add(text)
    try:
        _PRIVATE_ROOTS.add(str(Path(text or "/").resolve()).rstrip("/"))
    except OSError:
        pass
    _PRIVATE_ROOTS.discard("")


def scrub_paths(text: str, replacement: str = "<file>") -> str:
    """``text`` with every server file path replaced by ``replacement``.

    A message stored on a job (and shown to API users) must not reveal where the server
    keeps files: paths under a registered root (relative or absolute), and any absolute
    path with two or more parts starting at a usual top-level directory or one that
    exists here (``/tmp/x/.docingest/providers/storage/...``). URLs and MIME types are left alone.
    """
    for root in sorted(_PRIVATE_ROOTS, key=len, reverse=True):
        if root in text:  # the root itself, or a path under it (a relative root: under it only)
            tail = r"(?:/[^\s'\"`<>|,;:()\[\]{}]*)" + ("?" if root.startswith("/") else "")
            text = re.sub(r"(?<![\w.:~-])(?:\./)?" + re.escape(root) + tail, replacement, text)

    def swap(match: re.Match[str]) -> str:
        path = match.group(0)
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and (parts[0] in _SYSTEM_TOPS or os.path.isdir("/" + parts[0])):
            return replacement
        return path

    return _ABS_PATH.sub(swap, text)


register_private_root(tempfile.gettempdir())


class DocingestError(Exception):
    """Base of every failure docingest reports to a user.

    Attributes:
        error_code: stable snake_case code stored in ``upload_jobs.error_code`` and answered
            by the API.
        retryable: True when retrying the same input may succeed.
        http_status: the HTTP status the API answers when the error escapes a route.
        meaning: what happened (shown in the README table).
        user_action: what the user can do about it (shown in the README table).
        scrub: True when the message loses its server paths at construction (it is stored
            on jobs and answered to API users); :class:`SetupError`, read by the operator,
            keeps them and the API scrubs them when it answers.
        message: the message, scrubbed when ``scrub``; ``meaning`` when none was given.
        retry_after: seconds the caller asked us to wait before retrying, if any.
    """

    error_code: str = "internal_error"
    retryable: bool = True
    http_status: int = 500
    meaning: str = "unexpected error"
    user_action: str = "retry; report it if it persists"
    scrub: bool = True

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        # Stored on jobs and answered to API users: never a server path (``scrub_paths``).
        if not message:
            message = self.meaning
        elif self.scrub:
            message = scrub_paths(message)
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class PermanentError(DocingestError):
    """A failure that no retry can fix; the job fails at once."""

    retryable = False
    http_status = 400


class TransientError(DocingestError):
    """A failure that may pass; retried with exponential backoff and jitter."""

    retryable = True
    http_status = 500


class EmptyFile(PermanentError):
    error_code = "empty_file"
    http_status = 422
    meaning = "the file has zero bytes"
    user_action = "upload the file again; the copy received was empty"


class FileTooLarge(PermanentError):
    error_code = "file_too_large"
    http_status = 413
    meaning = "the file is larger than UPLOAD_PIPELINE_MAX_FILE_BYTES"
    user_action = "split the file or raise UPLOAD_PIPELINE_MAX_FILE_BYTES"


class UnsupportedType(PermanentError):
    error_code = "unsupported_type"
    http_status = 415
    meaning = (
        "the content is of no supported kind (PDF, Office, OpenDocument, EPUB, RTF, e-mail, "
        "PNG/JPEG/TIFF/WebP images, HTML, Markdown, CSV, JSON, text)"
    )
    user_action = "convert the file to a supported format"


class ContentTypeMismatch(PermanentError):
    error_code = "content_type_mismatch"
    http_status = 415
    meaning = "the bytes are not of the declared type"
    user_action = "declare the type the file really has (the message names it)"


class ChecksumMismatch(PermanentError):
    error_code = "checksum_mismatch"
    http_status = 422
    meaning = "the stored bytes do not match the declared SHA-256"
    user_action = "upload again; the file changed or was corrupted in transit"


class SizeMismatch(PermanentError):
    error_code = "size_mismatch"
    http_status = 422
    meaning = "the stored object is not the declared size"
    user_action = "upload again with the right bytes_len"


class PdfEncrypted(PermanentError):
    error_code = "pdf_encrypted"
    http_status = 422
    meaning = "the PDF needs a password to open"
    user_action = "remove the password (e.g. qpdf --decrypt) and upload again"


class PdfCorrupt(PermanentError):
    error_code = "pdf_corrupt"
    http_status = 422
    meaning = "the PDF is damaged or truncated"
    user_action = "re-export or repair the PDF and upload again"


class DocumentCorrupt(PermanentError):
    error_code = "document_corrupt"
    http_status = 422
    meaning = "the document cannot be read (damaged DOCX, undecodable text)"
    user_action = "re-save the document and upload again"


class DocumentEncrypted(PermanentError):
    error_code = "document_encrypted"
    http_status = 422
    meaning = "the document (an Office or OpenDocument file) is protected by a password"
    user_action = "save a copy without the password (File > Info > Protect / Encrypt) and upload it"


class ArchiveTooLarge(PermanentError):
    error_code = "archive_too_large"
    http_status = 422
    meaning = (
        "the ZIP-based document (DOCX, PPTX, XLSX, EPUB, OpenDocument) unpacks to more than "
        "UPLOAD_PIPELINE_MAX_UNPACKED_MB: a zip bomb, or a document too large to read"
    )
    user_action = "split the document, or raise UPLOAD_PIPELINE_MAX_UNPACKED_MB if it is genuine"


class SpreadsheetTooLarge(PermanentError):
    error_code = "spreadsheet_too_large"
    http_status = 422
    meaning = "the spreadsheet holds more cells than UPLOAD_PIPELINE_MAX_SPREADSHEET_CELLS"
    user_action = "split the workbook or export the sheets you need as CSV, or raise the limit"


class ImageTooLarge(PermanentError):
    error_code = "image_too_large"
    http_status = 422
    meaning = "the image has more pixels than UPLOAD_PIPELINE_MAX_IMAGE_PIXELS"
    user_action = "scale the image down (300 dpi is enough for OCR) and upload it again"


class OcrFailed(PermanentError):
    error_code = "ocr_failed"
    http_status = 422
    meaning = "Tesseract could not read the image or scanned page"
    user_action = (
        "check the image opens and holds text; for another language install its Tesseract data "
        "and set UPLOAD_PIPELINE_OCR_LANGUAGES"
    )


class TextTooLarge(PermanentError):
    error_code = "text_too_large"
    http_status = 422
    meaning = "the document's text is longer than UPLOAD_PIPELINE_MAX_DOCUMENT_CHARS"
    user_action = "split the document (or export only the part you need), or raise the limit"


class ReusedChunksGone(TransientError):
    error_code = "reused_chunks_gone"
    http_status = 503
    meaning = "the document whose chunks were being reused for the same bytes was deleted meanwhile"
    user_action = "nothing: the job verifies the upload again and processes it in full"


class NoText(PermanentError):
    error_code = "no_text"
    http_status = 422
    meaning = "no text was found in the document"
    user_action = (
        "the file may be scanned images: install Tesseract (apt-get install tesseract-ocr) and keep "
        "UPLOAD_PIPELINE_OCR at auto, or run OCR first"
    )


class ChunkTooLong(PermanentError):
    error_code = "chunk_too_long"
    http_status = 500
    meaning = "a chunk exceeds the embedding model's token limit"
    user_action = "report it: the chunker guarantees the limit"


class EmbeddingDimensionMismatch(PermanentError):
    error_code = "embedding_dimension_mismatch"
    meaning = "the embedder returned vectors of another length than the database column"
    user_action = "set UPLOAD_PIPELINE_EMBEDDING_DIMENSIONS to the model's dimension"


class UploadExpired(PermanentError):
    error_code = "upload_expired"
    http_status = 410
    meaning = "the upload never arrived before its signed URL expired"
    user_action = "request a new upload"


class WorkerLost(PermanentError):
    error_code = "worker_lost"
    http_status = 500
    meaning = "workers holding this job died too many times"
    user_action = "check worker logs (memory, crashes), then `docingest retry JOB`"


class StorageUnavailable(TransientError):
    error_code = "storage_unavailable"
    http_status = 503
    meaning = "object storage did not answer"
    user_action = "check the storage service; the job retries by itself"


class ObjectMissing(TransientError, FileNotFoundError):
    """A stored object a job needs is not in storage (also a ``FileNotFoundError``, what the
    ``Storage`` protocol's readers raise for a missing key). Transient: an object store that
    lists eventually may show it on a retry; a deleted original stays missing and fails."""

    error_code = "object_missing"
    http_status = 404
    meaning = "a stored object the job needs is not in storage"
    user_action = "ingest or upload the file again; the job retries first in case storage was behind"


class EmbeddingUnavailable(TransientError):
    error_code = "embedding_unavailable"
    meaning = "the embedding provider failed or rate-limited us"
    user_action = "check the provider; the job retries by itself"


class ParseTimeout(TransientError):
    error_code = "parse_timeout"
    http_status = 504
    meaning = "parsing took longer than its time limit"
    user_action = "split the document or raise UPLOAD_PIPELINE_PARSE_TIMEOUT_SECONDS"


class ParseCrashed(TransientError):
    error_code = "parse_crashed"
    meaning = "the parser process crashed"
    user_action = "the file may be malformed; re-export it"


class ParseOutOfMemory(TransientError):
    error_code = "parse_oom"
    meaning = "the parser exceeded its memory limit"
    user_action = "split the document or raise UPLOAD_PIPELINE_PARSE_MEMORY_MB"


class InternalError(TransientError):
    error_code = "internal_error"
    meaning = "an unexpected error"
    user_action = "retry; report it with the job id if it persists"


class EmbeddingInputTooLong(PermanentError):
    error_code = "embedding_input_too_long"
    meaning = "a chunk is over the embedding model's per-input token limit (context length)"
    user_action = "lower UPLOAD_PIPELINE_EMBEDDING_MAX_TOKENS so chunks fit the model"


class EmbeddingRejected(PermanentError):
    error_code = "embedding_rejected"
    meaning = "the embedding provider refused the request (4xx: key, model or input)"
    user_action = "check UPLOAD_PIPELINE_OPENAI_API_KEY, EMBEDDING_MODEL and the message"


class RemoteParseFailed(PermanentError):
    error_code = "remote_parse_failed"
    http_status = 502
    meaning = "LlamaParse reported the parse job as failed"
    user_action = "read the message; re-export the file or use UPLOAD_PIPELINE_PARSER=local"


class RemoteParseCancelled(PermanentError):
    error_code = "remote_parse_cancelled"
    http_status = 502
    meaning = "the LlamaParse job was cancelled"
    user_action = "retry the job (`docingest retry JOB`)"


class InternalInvariantError(PermanentError):
    """A state docingest never writes was found (a bug): the job fails at once, never retried.

    The message says it is a bug and what was found, e.g. ``bug: finalize found 40 buffered
    chunks but 37 buffered vectors``. Retrying would meet the same state again.
    """

    error_code = "internal_invariant"
    http_status = 500
    meaning = "docingest found its own data in a state it never writes (a bug)"
    user_action = "report it with the job id and message; `docingest retry JOB` after the fix"


class ParserUnavailable(TransientError):
    error_code = "parser_unavailable"
    http_status = 503
    meaning = "the remote parser (LlamaParse) failed, timed out or rate-limited us"
    user_action = "check LlamaParse status and UPLOAD_PIPELINE_LLAMAPARSE_API_KEY; it retries"


class LeaseLost(Exception):
    """The job's lease was taken over (or the job changed): this attempt must write nothing."""


@dataclass(frozen=True)
class ErrorCode:
    """One row of the error table: code, meaning, retryable, what the user can do."""

    code: str
    meaning: str
    retryable: bool
    user_action: str


def error_table() -> list[ErrorCode]:
    """Return every error code docingest can store, in the order of the class tree."""
    rows: list[ErrorCode] = []
    stack: list[type[DocingestError]] = [PermanentError, TransientError]
    while stack:
        cls = stack.pop(0)
        for sub in cls.__subclasses__():
            stack.append(sub)
            rows.append(ErrorCode(sub.error_code, sub.meaning, sub.retryable, sub.user_action))
    return rows


def classify(exc: BaseException) -> DocingestError:
    """Map any exception to a ``DocingestError`` (unknown ones become ``InternalError``)."""
    if isinstance(exc, DocingestError):
        exc.message = scrub_paths(exc.message)  # a message set after construction, too
        return exc
    return InternalError(f"{type(exc).__name__}: {exc}")


class RequestError(DocingestError):
    """A refused API request (not a document failure: never stored on a job).

    Its ``http_status`` is the status the API answers.
    """

    http_status = 400
    error_code = "bad_request"
    retryable = False
    meaning = "the request is invalid"
    user_action = "fix the request"


class Unauthorized(RequestError):
    http_status = 401
    error_code = "invalid_token"
    meaning = "the bearer token is missing, malformed, badly signed, expired or not yet valid"
    user_action = "send a valid token: `Authorization: Bearer <jwt>`"


class NotFound(RequestError):
    http_status = 404
    error_code = "not_found"
    meaning = "no such resource"
    user_action = "check the id"


class Conflict(RequestError):
    http_status = 409
    error_code = "conflict"
    meaning = "the resource is not in a state that allows this"
    user_action = "read the resource's state and try what it allows"


class TooManyActiveJobs(RequestError):
    http_status = 429
    error_code = "too_many_active_jobs"
    meaning = "too many of your uploads are still being processed"
    user_action = (
        "wait for some to finish (see Retry-After) or raise UPLOAD_PIPELINE_MAX_ACTIVE_JOBS_PER_USER"
    )


class InvalidRequest(RequestError):
    """The request does not match the operation's schema (FastAPI's validation failed).

    Attributes:
        errors: one ``{"field", "in", "problem", "type"}`` per failed check.
    """

    http_status = 422
    error_code = "invalid_request"
    meaning = "a field of the request is missing, of the wrong type, or out of range"
    user_action = "fix the field(s) the message names (each is listed in `errors`)"

    def __init__(self, message: str | None = None, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class InvalidValue(RequestError):
    http_status = 422
    error_code = "invalid_value"
    meaning = "a value cannot be stored (PostgreSQL refused it)"
    user_action = "remove the character or value the message names"


class DatabaseUnavailable(RequestError):
    http_status = 503
    error_code = "database_unavailable"
    retryable = True
    meaning = "the database did not answer"
    user_action = "retry shortly; check the database if it persists"


class MethodNotAllowed(RequestError):
    http_status = 405
    error_code = "method_not_allowed"
    meaning = "the path exists but not for this HTTP method"
    user_action = "use a method the `Allow` header lists (see /openapi.json)"


class BadWebhookSignature(RequestError):
    http_status = 401
    error_code = "unauthorized"
    meaning = (
        "the LlamaParse webhook call has a missing or wrong `X-Docingest-Signature` (or no secret is set)"
    )
    user_action = "set UPLOAD_PIPELINE_WEBHOOK_SECRET; only LlamaParse, with the header registered, calls it"


class QueryTooLong(RequestError, ValueError):
    """A search query over ``UPLOAD_PIPELINE_SEARCH_MAX_QUERY_CHARS``: refused by the search
    service itself, so the API and the CLI (which reports ``ValueError``s) say the same."""

    http_status = 422
    error_code = "query_too_long"
    meaning = "the search query is longer than UPLOAD_PIPELINE_SEARCH_MAX_QUERY_CHARS (2000)"
    user_action = "ask a shorter question: only its first 256 word pieces are embedded anyway"


class InvalidSource(RequestError, ValueError):
    """A document's source name refused at registration (``ingest``, ``sync``, ``POST /upload``)."""

    http_status = 422
    error_code = "invalid_source"
    meaning = "the document's source name is empty, too long or has control characters"
    user_action = "name the source with printable characters, at most 1,024 of them"


class InvalidMetadata(RequestError, ValueError):
    """A document's metadata object refused at registration."""

    http_status = 422
    error_code = "invalid_metadata"
    meaning = "a document's metadata is not an object of scalar values, or is too large"
    user_action = "send an object of at most 64 keys whose values are strings, numbers, booleans, null or lists of those"


class FileUnreadable(RequestError):
    """A local file named for ``ingest``/``sync`` cannot be read (permissions, I/O error); it is
    not registered, and the other files are."""

    http_status = 422
    error_code = "file_unreadable"
    meaning = "a local file cannot be read (permissions or an I/O error)"
    user_action = "make the file readable by the user running docingest, then run the command again"


class SourceConflict(RequestError):
    """Two files of one ``ingest``/``sync`` command map to the same source; nothing was registered."""

    http_status = 409
    error_code = "source_conflict"
    meaning = "two files of one command would be the same source (the same path under two roots)"
    user_action = "ingest each root with its own --source-prefix, or name their common parent directory"


class InvalidFilter(RequestError, ValueError):
    """A search filter the service cannot apply (an empty key, a bad time, too many values):
    refused by :class:`~docingest.services.filters.SearchFilter` itself, so the CLI and the API
    say the same."""

    http_status = 422
    error_code = "invalid_filter"
    meaning = "a search filter has an empty key, a value that is not a scalar, a time that is not ISO 8601, or too many values"
    user_action = "fix the filter the message names (metadata keys non-empty, times ISO 8601, at most 100 values a list)"


class SetupError(DocingestError, RuntimeError):
    """The installation needs its operator (not a document's or a request's fault).

    Also a ``RuntimeError``, for callers that catch those. Its message keeps server paths
    (``scrub`` is False: the operator needs them, e.g. the log to read); the API scrubs it
    when it answers.
    """

    error_code = "setup_error"
    retryable = False
    http_status = 503
    meaning = "the installation is not ready"
    user_action = "read the message and fix the installation"
    scrub = False


class DatabaseNotMigrated(SetupError):
    """The database answers but lacks the schema or the ``vector`` type."""

    error_code = "database_not_migrated"
    meaning = "the database has no upload_pipeline schema or no pgvector type"
    user_action = "run `docingest migrate` with the same UPLOAD_PIPELINE_DATABASE_URL"


class EmbeddedDatabaseFailed(SetupError):
    """The embedded PostgreSQL (pgserver) under the data directory did not start."""

    error_code = "embedded_database_failed"
    retryable = True
    meaning = "the embedded PostgreSQL under UPLOAD_PIPELINE_DATA_DIR did not start"
    user_action = "read the server log the message names; or set UPLOAD_PIPELINE_DATABASE_URL"


class DependencyMissing(SetupError):
    """A package the configured provider needs is not installed (an optional extra)."""

    error_code = "dependency_missing"
    meaning = "a package the configured provider needs is not installed"
    user_action = "install the extra the message names (e.g. pip install 'docingest[local]'), or configure another provider"


class InvalidConfiguration(SetupError):
    """A setting (an ``UPLOAD_PIPELINE_*`` variable, in the environment or ``.env``) has a value
    docingest cannot use; the message names the variable."""

    error_code = "invalid_configuration"
    meaning = "a setting (environment variable or .env) has a value docingest cannot use"
    user_action = "fix or unset the variable the message names (docingest info shows the settings in use)"


class EmbeddingGenerationMismatch(SetupError):
    """A search whose user's index is served by an embedding generation this process cannot
    embed queries with: refused, never compared across models."""

    error_code = "embedding_generation_mismatch"
    meaning = "the query embedder is not the model and dimensions of the generation serving the index"
    user_action = (
        "configure EMBEDDING_PROVIDER/MODEL/DIMENSIONS as the message names, or finish `docingest reembed`"
    )


class StorageError(DocingestError):
    """A refusal of the local storage service (``/storage/v1``), answered in Supabase
    Storage's error body ``{"statusCode", "error", "code", "message", "error_code"}``.

    Attributes:
        supabase_error: the body's ``error`` string, as Supabase Storage spells it.
        supabase_code: the body's ``code`` (Supabase's ``ErrorCode``: ``NoSuchKey``, ...),
            what storage-js reads.

    Its ``error_code`` is a code of the README's tables (the same condition on a job or an
    API request); ``http_status``, ``supabase_error`` and ``supabase_code`` follow Supabase
    Storage. The base class is a malformed request.
    """

    error_code = "bad_request"
    retryable = False
    http_status = 400
    supabase_error = "InvalidRequest"
    supabase_code = "InvalidRequest"
    meaning = "the storage request is invalid"
    user_action = "fix the request"


class StorageUnauthorized(StorageError):
    """No valid token (``Authorization: Bearer`` or ``apikey``), or a role that may not do
    this (no row-level security policy grants it)."""

    error_code = "invalid_token"
    http_status = 403
    supabase_error = "Unauthorized"
    supabase_code = "AccessDenied"


class SignedUrlError(StorageError):
    """A signed URL that is malformed, tampered with, expired or for another object."""

    error_code = "invalid_token"
    http_status = 403
    supabase_error = "InvalidJWT"
    supabase_code = "InvalidJWT"


class SignedUrlTokenMissing(SignedUrlError):
    """A signed-URL route called without ``?token=``."""

    error_code = "bad_request"
    http_status = 400


class BucketNotFound(StorageError):
    """No bucket of that name (or one the caller's role cannot see)."""

    error_code = "not_found"
    http_status = 404
    supabase_error = "Bucket not found"
    supabase_code = "NoSuchBucket"


class ObjectNotFound(StorageError):
    """No object under the key (or one the caller's role cannot see)."""

    error_code = "not_found"
    http_status = 404
    supabase_error = "not_found"
    supabase_code = "NoSuchKey"


class StorageRouteNotFound(StorageError):
    """No storage route at that path, or one the local service does not implement (image
    transformations, TUS resumable uploads)."""

    error_code = "not_found"
    http_status = 404
    supabase_error = "Not Found"


class StorageMethodNotAllowed(StorageError):
    """A storage route called with a method it does not answer."""

    error_code = "method_not_allowed"
    http_status = 405
    supabase_error = "Method Not Allowed"


class InvalidObjectKey(StorageError):
    """A key Supabase refuses (characters outside its set) or a file system cannot hold
    (an empty, ``.`` or ``..`` segment, a segment over 255 bytes)."""

    http_status = 400
    supabase_error = "InvalidKey"
    supabase_code = "InvalidKey"


class InvalidBucketName(StorageError):
    """A bucket name outside Supabase's characters or length, or starting with ``.``."""

    http_status = 400
    supabase_error = "Invalid Input"
    supabase_code = "InvalidBucketName"


class BucketExists(StorageError):
    """A bucket of that name exists already."""

    error_code = "conflict"
    http_status = 409
    supabase_error = "Duplicate"
    supabase_code = "BucketAlreadyExists"


class BucketNotEmpty(StorageError):
    """A bucket that still holds objects (or the settings' bucket) cannot be deleted."""

    error_code = "conflict"
    http_status = 409
    supabase_error = "ResourceNotEmpty"
    supabase_code = "ResourceNotEmpty"


class MimeTypeNotAllowed(StorageError):
    """The upload's content type is not in the bucket's ``allowed_mime_types``."""

    error_code = "unsupported_type"
    http_status = 415
    supabase_error = "invalid_mime_type"
    supabase_code = "InvalidMimeType"


class RangeNotSatisfiable(StorageError):
    """A download's ``Range`` starts past the object's end."""

    error_code = "bad_request"
    http_status = 416
    supabase_error = "InvalidRange"
    supabase_code = "InvalidRange"


class ObjectExists(StorageError):
    """An object is already stored under the key (a signed upload URL works once)."""

    error_code = "conflict"
    http_status = 409
    supabase_error = "Duplicate"
    supabase_code = "KeyAlreadyExists"


class BodyLongerThanDeclared(StorageError):
    """The file passed the length declared for the signed URL; reading stopped there."""

    error_code = "size_mismatch"
    http_status = 413
    supabase_error = "Payload too large"
    supabase_code = "EntityTooLarge"


class BodyTooLarge(StorageError):
    """The file passed the bucket's size limit; reading stopped there."""

    error_code = "file_too_large"
    http_status = 413
    supabase_error = "Payload too large"
    supabase_code = "EntityTooLarge"


class BodySizeMismatch(StorageError):
    """The whole file is shorter than the length declared for the signed URL."""

    error_code = "size_mismatch"
    http_status = 400
    supabase_error = "InvalidRequest"


class BodyChecksumMismatch(StorageError):
    """The file's SHA-256 is not the one declared for the signed URL."""

    error_code = "checksum_mismatch"
    http_status = 400
    supabase_error = "InvalidChecksum"
    supabase_code = "InvalidChecksum"


class ClientDisconnected(StorageError):
    """The client hung up before the end of the body (the signed URL is still unused)."""

    http_status = 400
    retryable = True
    supabase_error = "ClientDisconnect"


def request_error_for_status(status: int) -> type[RequestError]:
    """The refusal class answered for an HTTP status raised outside our routes (an unknown
    path: 404, a wrong method: 405): the first class of the tree, breadth first, whose
    ``http_status`` it is (the general one of each status is declared first), else
    ``RequestError``."""
    stack: list[type[RequestError]] = [RequestError]
    while stack:
        cls = stack.pop(0)
        if cls.http_status == status:
            return cls
        stack.extend(cls.__subclasses__())
    return RequestError


def setup_error_table() -> list[tuple[int, ErrorCode]]:
    """Every ``(HTTP status, row)`` of a :class:`SetupError` raised, in the order of the tree
    (the base class, never raised, is left out)."""
    rows: list[tuple[int, ErrorCode]] = []
    stack: list[type[SetupError]] = list(SetupError.__subclasses__())
    while stack:
        cls = stack.pop(0)
        rows.append((cls.http_status, ErrorCode(cls.error_code, cls.meaning, cls.retryable, cls.user_action)))
        stack.extend(cls.__subclasses__())
    return rows


def request_error_table() -> list[tuple[int, ErrorCode]]:
    """Every ``(HTTP status, row)`` the API answers a refused request with, base class first."""
    rows: list[tuple[int, ErrorCode]] = []
    stack: list[type[RequestError]] = [RequestError]
    while stack:
        cls = stack.pop(0)
        rows.append((cls.http_status, ErrorCode(cls.error_code, cls.meaning, cls.retryable, cls.user_action)))
        stack.extend(cls.__subclasses__())
    return rows


def error_table_markdown() -> str:
    """README.md's ``## Error codes`` tables: job errors, refused API requests, setup errors."""
    lines = [
        "| error_code | meaning | retried | what you can do |",
        "|---|---|---|---|",
    ]
    for row in error_table():
        retried = "yes, with backoff, then failed" if row.retryable else "no"
        lines.append(f"| `{row.code}` | {row.meaning} | {retried} | {row.user_action} |")
    lines += [
        "",
        "Refused requests (never stored on a job) answer `{error_code, message}` with the codes below;",
        "the CLI prints `error: CODE: message` and exits 2. Through the API, a field its schema refuses",
        "(a `source` with a control character, `meta` of the wrong shape, a malformed `where`) is",
        "`invalid_request`, naming the field; `invalid_source`, `invalid_metadata`, `source_conflict`",
        "and `file_unreadable` are the CLI's (and `invalid_filter` a filter the schema admits but the",
        "service cannot use). The dashboard's routes use the same codes: `POST",
        "/api/v2/documents/{id}/download` answers `409 conflict` when the original is not stored (its",
        "upload has not arrived, or was refused: upload it again) and `503 storage_unavailable` when the",
        "storage cannot sign; `GET /documents?state=` with another value than the six states is",
        "`422 invalid_request`; `POST /api/v2/auth/local` outside development, or not from the same",
        "machine, is `404 not_found`, as an unknown path:",
        "",
        "| error_code | HTTP status | meaning | what you can do |",
        "|---|---|---|---|",
    ]
    for status, row in request_error_table():
        lines.append(f"| `{row.code}` | {status} | {row.meaning} | {row.user_action} |")
    setup = (
        "Setup errors (the installation needs its operator: the CLI prints the message and exits 2,"
        " the API answers `{error_code, message}` with the status):"
    )
    lines += ["", setup, "", "| error_code | HTTP status | meaning | what you can do |", "|---|---|---|---|"]
    for status, row in setup_error_table():
        lines.append(f"| `{row.code}` | {status} | {row.meaning} | {row.user_action} |")
    return "\n".join(lines)
