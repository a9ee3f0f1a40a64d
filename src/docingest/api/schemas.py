"""Request and response models, one set per entity (``UploadCreate``, ``DocumentPublic`` ...)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from docingest.domain import MAX_CONTEXT, Document, Job
from docingest.providers.storage import SignedUpload
from docingest.services.documents import (
    MAX_META_BYTES,
    MAX_META_KEY_CHARS,
    MAX_META_KEYS,
    MAX_SOURCE_CHARS,
    MIME_EXTENSIONS,
    NAME_PATTERN,
    check_meta,
    display_filename,
)
from docingest.services.filters import MAX_FILTER_CHARS, MAX_FILTER_KEYS, MAX_FILTER_VALUES, SearchFilter
from docingest.services.progress import shown_progress
from docingest.services.search import clean_query

#: The events ``GET /documents/{id}/timeline`` returns at most.
TIMELINE_EVENTS = 2000

STALLED_DESCRIPTION = (
    "true when the job is 'working' but its lease expired: the worker holding it "
    "died or hung; another worker takes it over (state stays as stored, and "
    "progress has no eta_s)"
)


class ErrorPublic(BaseModel):
    """Every error reply: a stable code and a message a user can act on."""

    error_code: str
    message: str


class FieldErrorPublic(BaseModel):
    """One failed check of a request: which field, where, and what is wrong."""

    field: str = Field(description="dotted path of the field, e.g. 'sha256' or 'q'")
    in_: str = Field(alias="in", description="body, query, path or header")
    problem: str
    type: str = Field(description="pydantic's error type, e.g. 'string_pattern_mismatch'")


class ValidationErrorPublic(ErrorPublic):
    """A 422 ``invalid_request``: the message names the fields; ``errors`` lists every check."""

    errors: list[FieldErrorPublic]


# --- uploads -----------------------------------------------------------------------
#: A metadata key: 1 to 128 characters, not blank, no control characters.
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_META_KEY_CHARS, pattern=NAME_PATTERN)]
#: A metadata value: a JSON scalar, or a list of them.
MetaScalar = StrictStr | StrictInt | StrictFloat | StrictBool | None
MetaValue = MetaScalar | list[MetaScalar]
_SCALAR_SCHEMAS: list[dict[str, Any]] = [
    {"type": "string", "pattern": "^[^\\u0000]*$"},  # PostgreSQL stores no NUL
    *({"type": t} for t in ("number", "boolean", "null")),
]
#: The metadata object, its JSON Schema written out: pydantic's puts the key pattern in
#: ``patternProperties`` and lets other keys through, which the validator then refuses.
MetaObject = Annotated[
    dict[MetaKey, MetaValue],
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_META_KEYS,
            "propertyNames": {"minLength": 1, "maxLength": MAX_META_KEY_CHARS, "pattern": NAME_PATTERN},
            "additionalProperties": {
                "anyOf": [*_SCALAR_SCHEMAS, {"type": "array", "items": {"anyOf": _SCALAR_SCHEMAS}}]
            },
        }
    ),
]


class UploadCreate(BaseModel):
    """What the client declares about the file it will upload."""

    filename: str = Field(
        min_length=1,
        max_length=1024,
        description="original name, display only: its last path segment must hold a displayable "
        "character other than '.' (else 422 invalid_request; the schema's pattern)",
    )
    bytes_len: int = Field(
        strict=True,
        ge=0,  # 0 passes the model so that the service answers 422 empty_file
        # no upper bound here: any size over MAX_FILE_BYTES is the service's 413 file_too_large
        description="exact size in bytes, a JSON integer: 0 is refused (422 empty_file), above "
        "UPLOAD_PIPELINE_MAX_FILE_BYTES too (413 file_too_large; the schema's maximum)",
    )
    mime: str = Field(
        min_length=1,
        max_length=255,
        description="declared MIME type, one of the enum as written (else 415 unsupported_type)",
        json_schema_extra={"enum": list(MIME_EXTENSIONS)},  # the list the upload route checks
    )
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="hex SHA-256 of the bytes")
    source: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_SOURCE_CHARS,
        pattern=NAME_PATTERN,
        description="what this document is a version of (a path, a URL, your own id): the same "
        "bytes under one source are one document (200), new bytes a new version that replaces "
        "the one serving searches when it completes; omitted: a new source of its own (the "
        "document's id). Not blank, no control characters (else 422 invalid_request)",
    )
    meta: MetaObject | None = Field(
        None,
        max_length=MAX_META_KEYS,
        description="your metadata object, which search filters on (meta.KEY=VALUE): at most "
        f"{MAX_META_KEYS} keys of at most {MAX_META_KEY_CHARS} characters, values strings, "
        f"numbers, booleans, null or lists of those, {MAX_META_BYTES} bytes of JSON in all",
    )

    @field_validator("meta")
    @classmethod
    def _meta(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_meta(value)

    @field_validator("bytes_len", mode="before")
    @classmethod
    def _integral(cls, value: Any) -> Any:
        """A JSON number with no fractional part (``1e3``, ``1000.0``) is an integer, as JSON
        Schema counts it; strings, booleans and fractions stay refused."""
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @field_validator("filename")
    @classmethod
    def _displayable(cls, value: str) -> str:
        return display_filename(value)


class UploadPublic(BaseModel):
    """An upload ticket: PUT the bytes to ``signed_url`` (with ``upload_headers``) before it expires.

    ``signed_url`` is null for a duplicate whose bytes were already received. ``reupload`` is
    true when this request re-armed the upload of bytes you already sent (refused, expired or
    not yet arrived) with its own filename, type and size: PUT them to ``signed_url`` again.
    """

    document_id: UUID
    source: str = Field(description="what the document is a version of (its id when none was named)")
    job_id: UUID | None
    created: bool
    reupload: bool = Field(
        False,
        description="an earlier upload of these bytes was re-armed with this "
        "request's filename, type and size",
    )
    signed_url: str | None
    upload_method: str | None
    upload_headers: dict[str, str]
    upload_expires_at: datetime | None
    stage: str | None
    state: str | None

    @classmethod
    def build(
        cls,
        document: Document,
        job: Job | None,
        upload: SignedUpload | None,
        created: bool,
        reupload: bool = False,
    ) -> UploadPublic:
        return cls(
            document_id=document.document_id,
            source=document.source,
            job_id=job.job_id if job else None,
            created=created,
            reupload=reupload,
            signed_url=upload.url if upload else None,
            upload_method=upload.method if upload else None,
            upload_headers=upload.headers if upload else {},
            upload_expires_at=datetime.fromtimestamp(upload.expires_at).astimezone() if upload else None,
            stage=job.stage.value if job else None,
            state=job.state.value if job else None,
        )


# --- jobs ----------------------------------------------------------------------------
class JobPublic(BaseModel):
    """A job's stage, state, progress and error."""

    job_id: UUID
    document_id: UUID
    stage: str
    state: str
    progress: dict[str, Any]
    attempts: int
    retry_count: int
    error_code: str | None
    error_message: str | None
    created_at: datetime | None
    updated_at: datetime | None
    finished_at: datetime | None
    upload_deadline: datetime | None = Field(None, description="set while the job waits for its upload")
    stalled: bool = Field(False, description=STALLED_DESCRIPTION)

    @classmethod
    def from_job(cls, job: Job) -> JobPublic:
        stalled = job.stalled(datetime.now(UTC))
        return cls(
            job_id=job.job_id,
            document_id=job.document_id,
            stage=job.stage.value,
            state=job.state.value,
            progress=shown_progress(job.progress, stalled=stalled, state=job.state, control=job.control),
            stalled=stalled,
            attempts=job.attempts,
            retry_count=job.retry_count,
            error_code=job.error_code,
            error_message=job.error_message,
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
            upload_deadline=job.next_attempt_at if job.state.value == "waiting" else None,
        )


class JobRetryPublic(JobPublic):
    """A retried job; ``signed_url`` is set when it waits for a new upload."""

    signed_url: str | None = None
    upload_headers: dict[str, str] = Field(default_factory=dict)


# --- documents -------------------------------------------------------------------------
class DocumentPublic(BaseModel):
    """A document and where its latest job stands."""

    document_id: UUID
    source: str = Field(description="what the document is a version of (its id when none was named)")
    meta: dict[str, Any] = Field(description="the user's metadata object")
    serving_document_id: UUID | None = Field(
        description="the version of this source whose chunks searches return: this document "
        "once complete; another (older) one while this version is in flight or failed; null "
        "when no version of the source has completed"
    )
    filename: str
    mime: str
    bytes_len: int
    file_sha256: str
    page_count: int | None
    chunks: int | None
    created_at: datetime
    updated_at: datetime
    job_id: UUID | None
    stage: str | None
    state: str | None
    progress: dict[str, Any]
    attempts: int | None
    retry_count: int | None
    error_code: str | None
    error_message: str | None
    job_created_at: datetime | None
    job_updated_at: datetime | None
    finished_at: datetime | None
    stalled: bool = Field(False, description=STALLED_DESCRIPTION)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DocumentPublic:
        values: dict[str, Any] = {k: row.get(k) for k in cls.model_fields}
        stalled = bool(row.get("stalled"))
        values["stalled"] = stalled
        values["progress"] = shown_progress(
            row.get("progress"), stalled=stalled, state=row.get("state"), control=row.get("control")
        )
        return cls(**values)


#: The largest event id (``bigserial``): the bound of ``Last-Event-ID`` on both event streams.
MAX_EVENT_ID = 2**63 - 1


class DocumentEventPublic(BaseModel):
    """One event of a document's stream (``GET /documents/{id}/events``: each message's ``data``)."""

    event_id: int = Field(description="increasing; the message's id")
    job_id: UUID
    document_id: UUID
    stage: str | None
    type: str = Field(description="e.g. job_created, retry_scheduled, warning")
    payload: dict[str, Any]
    created_at: datetime | None


class ChunkPublic(BaseModel):
    """One stored chunk of a document."""

    chunk_id: UUID
    ordinal: int = Field(description="the chunk's position in its document, from 0")
    text: str
    page: int | None = Field(description="first page of the chunk; null for formats without pages")
    page_end: int | None = Field(description="last page of the chunk; null for formats without pages")
    heading_path: list[str] = Field(description="the headings the chunk sits under, outermost first")
    token_count: int | None = Field(description="the chunk's tokens, as the embedding model counts them")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ChunkPublic:
        """From ``Repository.document_chunk_page``'s row (values of the wrong type read as unset)."""
        page, page_end, path = row.get("page"), row.get("page_end"), row.get("heading_path")
        page = page if isinstance(page, int) else None
        return cls(
            chunk_id=row["chunk_id"],
            ordinal=row["ordinal"],
            text=row["text"],
            page=page,
            page_end=page_end if isinstance(page_end, int) else page,
            heading_path=[str(h) for h in path] if isinstance(path, list) else [],
            token_count=row.get("token_count"),
        )


class ChunkList(BaseModel):
    """A page of a document's stored chunks in ordinal order (none while it is in flight)."""

    chunks: list[ChunkPublic]
    total: int = Field(description="the document's stored chunks")
    limit: int
    offset: int


class StagePublic(BaseModel):
    """The work at one stage of a document, from its events."""

    stage: str = Field(description="the stage the job was at while working, e.g. uploaded (verifying)")
    reached: str | None = Field(description="the stage that work moved the job to; null: not completed")
    started_at: datetime | None = Field(description="when the attempt that completed the stage started")
    finished_at: datetime | None = Field(description="when the stage completed; null: not completed")
    seconds: float | None = Field(description="the completing attempt's work, in seconds")
    attempts: int = Field(description="tries: completed, retried, failed, or lost with their lease")
    retries: int = Field(description="tries that ended in retry_scheduled")
    lease_takeovers: int = Field(description="tries lost with their lease: another worker took the job over")
    error_code: str | None = Field(description="the last error at the stage")
    workers: list[str] = Field(description="the workers whose attempts completed the stage")


class TimelinePublic(BaseModel):
    """A document's history: every event of its jobs, oldest first, and its stages."""

    document_id: UUID
    events: list[DocumentEventPublic]
    stages: list[StagePublic] = Field(description="the stages worked at, in the pipeline's order")
    truncated: bool = Field(
        description=f"true when the document has more than {TIMELINE_EVENTS} events: the first ones are shown"
    )


class DownloadPublic(BaseModel):
    """``POST /documents/{id}/download``: GET ``signed_url`` (no other credential) before
    ``expires_at`` for the original bytes, saved as ``filename``."""

    signed_url: str = Field(
        description="a short-lived URL of the original bytes (Content-Disposition: attachment)"
    )
    expires_at: datetime = Field(description="after this the URL is refused")
    filename: str


class DocumentDeletedPublic(BaseModel):
    """``GET /events``'s ``document_deleted`` message: a document was deleted or replaced by a
    newer version of its source."""

    document_id: UUID


class DocumentsChangedPublic(BaseModel):
    """``GET /events``'s ``documents_changed`` message: the user's list of documents changed
    (a document added, deleted or replaced, wherever): reload it."""

    total: int = Field(ge=0, description="how many documents the user has now")


class DocumentList(BaseModel):
    """A page of the user's documents, newest first."""

    documents: list[DocumentPublic]
    total: int = Field(description="how many documents match the filters, over every page")
    limit: int
    offset: int


# --- sign-in -----------------------------------------------------------------------------
class LocalTokenPublic(BaseModel):
    """``POST /auth/local``: a bearer token for the local user (development, loopback only)."""

    access_token: str = Field(description="send as `Authorization: Bearer <access_token>`")
    token_type: Literal["bearer"] = "bearer"
    user_id: str = Field(description="the token's user (`local`)")
    expires_in: int = Field(description="seconds until the token expires")


# --- search ------------------------------------------------------------------------------
class PassageChunkPublic(BaseModel):
    """One chunk of a passage: its span of the passage's ``text``, and whether it is a hit."""

    chunk_id: UUID
    ordinal: int = Field(description="the chunk's position in its document, from 0")
    start: int = Field(description="passage.text[start:end] is this chunk's text (offsets in code points)")
    end: int
    page: int | None = Field(description="first page of the chunk; null for formats without pages")
    page_end: int | None
    heading_path: list[str]
    hit_rank: int | None = Field(description="the rank of the hit this chunk is; null for a neighbour")


class PassagePublic(BaseModel):
    """A hit with ``context`` chunks on each side in its document, merged with the other hits'
    windows where they overlap or touch: no chunk appears in two passages."""

    ordinals: list[int] = Field(description="the chunk ordinals covered, ascending")
    hit_ranks: list[int] = Field(description="the ranks of the hits it contains, best first")
    page: int | None = Field(description="first page covered; null for formats without pages")
    page_end: int | None = Field(description="last page covered")
    text: str = Field(
        description="the chunks' text in document order, to paste as is: shared (overlapping) "
        "text once, chunks that do not touch joined by a newline or a blank line"
    )
    chunks: list[PassageChunkPublic]


class SearchHitPublic(BaseModel):
    """One ranked chunk of the user's documents."""

    document_id: UUID
    source: str = Field(description="what the hit's document is a version of")
    filename: str
    page: int | None = Field(description="the chunk's first page; null for formats without pages")
    page_end: int | None = Field(
        None, description="the chunk's last page (a chunk of a PDF may run over pages); null without pages"
    )
    score: float = Field(
        description="cosine similarity of the chunk to the question, in [-1, 1], in both modes"
    )
    text: str
    chunk_id: UUID
    ordinal: int
    heading_path: list[str]
    rank: int = Field(description="position in the answer, from 1")
    rrf_score: float | None = Field(
        None,
        description="hybrid mode: the fused reciprocal-rank score that ordered the hits; null in vector mode",
    )
    passage: PassagePublic | None = Field(
        None,
        description="with context > 0, on the best-ranked hit of each passage: the hit and its "
        "neighbouring chunks; null on the passage's other hits and with context 0",
    )
    passage_rank: int | None = Field(
        None,
        description="with context > 0: the rank of the hit whose passage holds this hit (its own "
        "rank when it carries it); null with context 0",
    )


#: What ``q`` must hold (ECMA-262, as JSON Schema reads it): a character that is neither NUL
#: nor whitespace (Python's ``str.isspace``, what :func:`clean_query` strips).
QUERY_PATTERN = (
    r"[^\u0000\t\n\u000b\u000c\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a"
    r"\u2028\u2029\u202f\u205f\u3000]"
)


def asked(q: str) -> str:
    """``q`` cleaned (:func:`clean_query`); a ``ValueError`` (422 ``invalid_request`` naming
    ``q``) when nothing is left: the schema's ``pattern`` (:data:`QUERY_PATTERN`) says the same."""
    query = clean_query(q)
    if not query:
        raise ValueError("the query is empty or only whitespace: ask a question")
    return query


#: RFC 3339's date-time (JSON Schema's ``format: date-time``): a date, ``T``, a time and an offset.
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: Any) -> Any:
    """A time as RFC 3339 writes it, or refused (pydantic alone would take a number as Unix
    seconds, or a time without an offset, which the schema's ``date-time`` does not allow)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        raise ValueError("a time is an RFC 3339 date-time with an offset, e.g. 2024-05-01T12:00:00Z")
    return value


#: A filter's time bound: RFC 3339 (``2024-05-01T12:00:00Z``), timezone-aware.
Timestamp = Annotated[datetime, BeforeValidator(_rfc3339)]

#: A filter's text value: 1 to 1,024 characters, no NUL (PostgreSQL text cannot hold one).
FilterText = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_FILTER_CHARS, pattern="^[^\\u0000]+$")
]
#: A MIME type in a filter: a filter text with something other than whitespace before any ";"
#: (what ``normalise_mime`` keeps; the service refuses a blank one, ``invalid_filter``).
FilterMime = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=MAX_FILTER_CHARS,
        pattern="^[^;\\u0000]*[^;\\u0000\\t\\n\\u000b\\u000c\\r\\u001c-\\u0020\\u0085\\u00a0"
        "\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$",
    ),
]
#: A metadata value compared by text form (services/filters.py): a string, a finite number, a boolean.
FilterScalar = (
    Annotated[str, StringConstraints(max_length=MAX_FILTER_CHARS, pattern="^[^\\u0000]*$")]
    | StrictBool
    | StrictInt
    | Annotated[float, Strict(), Field(allow_inf_nan=False)]
)


def _keys_by_name(schema: dict[str, Any]) -> None:
    """A dict's key constraints as ``propertyNames`` (length and pattern), its values'
    schema as ``additionalProperties``: pydantic's ``patternProperties`` leave a key outside
    the pattern, or of any length, unconstrained."""
    [(pattern, values)] = schema.pop("patternProperties").items()
    schema["additionalProperties"] = values
    schema["propertyNames"] = {"minLength": 1, "maxLength": MAX_FILTER_CHARS, "pattern": pattern}


class SearchFilterCreate(BaseModel):
    """Which of your documents a search ranks the chunks of: every condition given must hold
    (a condition left out does not restrict)."""

    model_config = ConfigDict(extra="forbid")

    source_prefix: FilterText | None = Field(None, description="the document's source starts with this")
    document_ids: Annotated[list[UUID], Field(min_length=1, max_length=MAX_FILTER_VALUES)] | None = Field(
        None, description="the document is one of these (ids of other users' documents match nothing)"
    )
    meta: Annotated[
        dict[
            Annotated[
                str, StringConstraints(min_length=1, max_length=MAX_FILTER_CHARS, pattern="^[^\\u0000]+$")
            ],
            FilterScalar | Annotated[list[FilterScalar], Field(min_length=1, max_length=MAX_FILTER_VALUES)],
        ],
        Field(max_length=MAX_FILTER_KEYS, json_schema_extra=_keys_by_name),
    ] = Field(
        default_factory=dict,
        description="metadata equality: the document's value under each key equals the value (a list: "
        'any of them), compared as text (2024 matches "2024"); a list-valued metadata entry matches '
        "when it holds the value",
    )
    mime: Annotated[list[FilterMime], Field(min_length=1, max_length=MAX_FILTER_VALUES)] | None = Field(
        None, description="the document's MIME type is one of these"
    )
    created_after: Timestamp | None = Field(None, description="registered at or after this time")
    created_before: Timestamp | None = Field(None, description="registered before this time")
    updated_after: Timestamp | None = Field(None, description="last updated at or after this time")
    updated_before: Timestamp | None = Field(None, description="last updated before this time")

    def to_filter(self) -> SearchFilter:
        """The service's filter (checked again there: :meth:`SearchFilter.build`)."""
        return SearchFilter.build(
            source_prefix=self.source_prefix,
            document_ids=self.document_ids,
            meta=self.meta,
            mime=self.mime,
            created_after=self.created_after,
            created_before=self.created_before,
            updated_after=self.updated_after,
            updated_before=self.updated_before,
        )


def _number(value: Any) -> Any:
    """A JSON number as JSON Schema reads it: not a boolean or a string (which pydantic's lax
    mode would take as 0/1 or parse)."""
    if isinstance(value, bool | str):
        raise ValueError("a number, not a boolean or a string")  # noqa: TRY004 (pydantic wants ValueError)
    return value


def _integer(value: Any) -> Any:
    """A JSON Schema integer: an integral number (``92.0`` too), not a boolean or a string."""
    value = _number(value)
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: A body's integer, as its JSON Schema says (``type: integer``).
JsonInteger = Annotated[int, BeforeValidator(_integer)]


class SearchCreate(BaseModel):
    """``POST /search``: ``GET /search``'s parameters, and a ``filter``, as a JSON body."""

    model_config = ConfigDict(extra="forbid")

    q: Annotated[StrictStr, AfterValidator(asked)] = Field(
        json_schema_extra={"pattern": QUERY_PATTERN},
        description="the question: at least one character that is not whitespace (else 422 "
        "invalid_request); over UPLOAD_PIPELINE_SEARCH_MAX_QUERY_CHARS (2000) characters once "
        "surrounding whitespace is removed: 422 query_too_long",
    )
    # numbers as the schema has them: true or "5" is not a k, 5.0 is (JSON Schema's integer)
    k: JsonInteger = Field(5, ge=1, le=100, description="results to return")
    mode: Literal["vector", "hybrid"] = "hybrid"
    min_score: Annotated[float, Field(ge=-1, le=1), BeforeValidator(_number)] | None = Field(
        None, description="drop hits whose cosine score is below this (fewer than k may come back)"
    )
    context: JsonInteger = Field(
        0,
        ge=0,
        le=MAX_CONTEXT,
        description="return this many chunks before and after each hit in its document, merged into one "
        "passage where hits' windows overlap or touch",
    )
    filter: SearchFilterCreate = Field(
        default_factory=lambda: SearchFilterCreate.model_validate({}),
        description="search only the documents this matches",
    )


class SearchPublic(BaseModel):
    query: str
    mode: Literal["vector", "hybrid"]
    k: int
    context: int = Field(0, description="chunks of context asked for on each side of a hit")
    results: list[SearchHitPublic]


# --- the Health page ----------------------------------------------------------------------
class JobCountPublic(BaseModel):
    stage: str
    state: str
    count: int


class FailureCountPublic(BaseModel):
    error_code: str
    count: int
    last_at: datetime | None = Field(description="when the last of them failed")
    message: str | None = Field(description="the last one's message: what to do about it")


class WorkerPublic(BaseModel):
    worker_id: str = Field(description="host:pid:random of the worker process")
    jobs_working: int = Field(description="jobs it holds now")
    jobs_stalled: int = Field(description="of those, jobs whose lease expired: it died or hangs")
    last_seen: datetime | None = Field(description="its last lease renewal, write or completed stage")


class BucketPublic(BaseModel):
    bucket: str = Field(description="e.g. openai:requests, openai:tokens")
    capacity: float
    refill_per_second: float
    tokens: float = Field(description="left now")
    blocked_until: datetime | None = Field(description="the end of the backoff a 429 started; null: none")


class EmbedderPublic(BaseModel):
    provider: str
    model: str
    dimensions: int
    description: str
    rpm: int | None = Field(description="requests per minute, every worker's; null: no limit")
    tpm: int | None = Field(description="tokens per minute, every worker's; null: no limit")
    buckets: list[BucketPublic]


class GenerationCoveragePublic(BaseModel):
    generation_id: int
    label: str = Field(description="provider/model/dimensions")
    chunks: int = Field(description="your stored chunks whose vector is of it")
    waiting: int = Field(description="your chunks with a vector of it waiting for the switch")
    serving_users: int = Field(description="1 when it serves your searches, else 0")
    share: float = Field(description="(chunks + waiting) / your stored chunks, in [0, 1]")


class SummaryPublic(BaseModel):
    """``GET /summary``: the dashboard's Health page."""

    user_id: str
    jobs: list[JobCountPublic] = Field(description="your jobs by stage and state")
    failures: list[FailureCountPublic] = Field(description="your failed jobs by error_code, most first")
    workers: list[WorkerPublic] = Field(description="every worker holding a job or seen in the last hour")
    embedder: EmbedderPublic
    generations: list[GenerationCoveragePublic] = Field(description="embedding generations of your chunks")


class HealthPublic(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
