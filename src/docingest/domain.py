"""Domain values: the stages and states of docs/architecture.md section 2, ``Job`` (with its
typed progress: :class:`JobControl` and :class:`JobProgress`) and ``Document``."""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger("docingest.domain")


class Stage(str, enum.Enum):
    """The last milestone a document reached, in pipeline order."""

    UPLOADED = "uploaded"
    PARSE_QUEUED = "parse_queued"
    PARSED = "parsed"
    PARSE_VALIDATED = "parse_validated"
    CHUNKING = "chunking"
    CHUNKS_STORED = "chunks_stored"
    EMBEDDING_QUEUED = "embedding_queued"
    EMBEDDING_IN_PROGRESS = "embedding_in_progress"
    EMBEDDINGS_STORED = "embeddings_stored"
    COMPLETE = "complete"

    @property
    def position(self) -> int:
        """Position in the pipeline, 0 for ``uploaded`` .. 9 for ``complete``."""
        return STAGES.index(self)

    def next(self) -> Stage:
        """The stage this one's handler reaches.

        Raises:
            ValueError: for ``complete``, which has no successor.
        """
        if self is Stage.COMPLETE:
            raise ValueError("complete is the last stage")
        return STAGES[self.position + 1]


STAGES: list[Stage] = list(Stage)

#: How a search ranks: ``vector`` (cosine only) or ``hybrid`` (cosine and full text fused).
Mode = Literal["vector", "hybrid"]
#: The most chunks of context a search returns on each side of a hit (its ``context``): 10 on
#: each side of 100 hits is at most 2,100 chunks in one answer.
MAX_CONTEXT = 10


class State(str, enum.Enum):
    """Where a job stands within its stage."""

    WAITING = "waiting"  # upload requested, bytes not yet received
    QUEUED = "queued"
    WORKING = "working"
    RETRYABLE = "retryable"
    DONE = "done"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """True for ``done`` and ``failed``: no worker runs the job again unless it is retried."""
        return self in TERMINAL_STATES

    @classmethod
    def is_terminal(cls, value: str | State) -> bool:
        """:attr:`terminal` of a state given as stored (``"done"``, ...).

        Raises:
            ValueError: ``value`` is not a state.
        """
        return cls(value).terminal


#: The states a job ends in (see :attr:`State.terminal`).
TERMINAL_STATES: frozenset[State] = frozenset({State.DONE, State.FAILED})


# --- a job's progress: control state and display figures ------------------------------------
# Stored in ``upload_jobs.control`` and ``upload_jobs.progress`` (jsonb objects), each merged
# key by key as the job goes (``progress || update``). A model keeps which fields were set
# (``model_fields_set``): an update writes exactly those, a field set to None included (it
# stores JSON null), and a model read from a row writes back exactly the keys the row had.


class _ProgressFields(BaseModel):
    """Frozen fields merged into a jsonb column of ``upload_jobs``; unset fields are not written."""

    model_config = ConfigDict(frozen=True)

    def as_dict(self) -> dict[str, Any]:
        """The fields set (explicit None kept), unknown keys included: what is merged into the row."""
        return self.model_dump(exclude_unset=True)

    def merge(self, update: Self | None) -> Self:
        """This model with ``update``'s set fields over it (as the row's merge does)."""
        if update is None or not update.model_fields_set:
            return self
        return self.model_copy(update=update.as_dict())

    @classmethod
    def parse(cls, stored: Mapping[str, Any]) -> tuple[Self, dict[str, Any]]:
        """``(model, rejected)`` from the stored keys this model declares (others are ignored,
        or kept as extras where the model allows them). A value of the wrong type does not
        stop the read: its key is left out of the model and returned in ``rejected``."""
        values = dict(stored)
        rejected: dict[str, Any] = {}
        while True:
            try:
                return cls.model_validate(values), rejected
            except ValidationError as exc:
                bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
                if not bad & values.keys():
                    raise
                for key in bad & values.keys():
                    rejected[key] = values.pop(key)


class JobControl(_ProgressFields):
    """State the pipeline branches on: ``upload_jobs.control`` (every key optional).

    Attributes:
        detected_kind: parser the ``uploaded`` stage picked from the content
            (``pdf``, ``docx``, ``html``, ``markdown``, ``text``); the parse stages use it.
        detected_mime: MIME type sniffed from the content (may differ from the declared one).
        llamaparse_job_id: the LlamaParse job being polled; None when none is pending.
        llamaparse_submitted_at: when it was submitted, Unix time in seconds.
        llamaparse_deadline: Unix time in seconds after which it fails ``parse_timeout``.
        llamaparse_polls: polls made so far (the next delay grows with it).
        llamaparse_last_job_id: the LlamaParse job that last failed, was cancelled or timed out.
        last_error_code: ``error_code`` of the transient failure that made the job ``retryable``
            (written by ``retry_job_later``).
        reembed_generation: a re-embedding job's target: the ``generation_id`` its document's
            chunks are embedded into (``embedding_generations``).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    detected_kind: str | None = None
    detected_mime: str | None = None
    llamaparse_job_id: str | None = None
    llamaparse_submitted_at: int | float | None = None
    llamaparse_deadline: int | float | None = None
    llamaparse_polls: int | None = None
    llamaparse_last_job_id: str | None = None
    last_error_code: str | None = None
    reembed_generation: int | None = None


class JobProgress(_ProgressFields):
    """Figures shown to users: ``upload_jobs.progress`` (API ``progress``, ``docingest status``,
    ``ingest``'s bar).

    Every key is optional: a stage writes its own as the job reaches it. Keys this model does
    not declare (a row written by another release) are kept as extras and shown as stored.

    Attributes:
        pages_total: pages of the original (PDF, or counted by LlamaParse); None for page-less kinds.
        pages_parsed: pages parsed so far (saved while a PDF parses, then equal to ``pages_total``).
        empty_pages: 1-based numbers of the pages without text.
        pages_ocred: pages (or image frames) whose text OCR read.
        chars: characters of the parsed text.
        parse_warnings: the parser's warnings (e.g. undecodable bytes replaced).
        chunk_warnings: ``chunking``'s warnings (e.g. chunks the embedder reads as unknown tokens).
        nul_removed: NUL characters (and U+FFFE/U+FFFF) removed from the parsed text.
        lone_surrogates_removed: lone UTF-16 surrogates removed from the parsed text.
        chunks_total: chunks made by ``chunking``.
        tokens_total: the chunks' word pieces (model tokens).
        chunks_embedded: chunks with a stored vector (a checkpoint per batch).
        embedding_cache_hits: chunks whose vector came from the embedding cache.
        chunks_stored: chunks moved to the searchable table by ``embeddings_stored``.
        eta_s: seconds left in the running stage at the rate observed in this attempt; 0 when
            done; None when no rate is known yet.
        llamaparse_status: LlamaParse's last reported status (``PENDING``, ``COMPLETED``, ...).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    pages_total: int | None = None
    pages_parsed: int | None = None
    empty_pages: list[int] | None = None
    pages_ocred: int | None = None
    chars: int | None = None
    parse_warnings: list[str] | None = None
    chunk_warnings: list[str] | None = None
    nul_removed: int | None = None
    lone_surrogates_removed: int | None = None
    chunks_total: int | None = None
    tokens_total: int | None = None
    chunks_embedded: int | None = None
    embedding_cache_hits: int | None = None
    chunks_stored: int | None = None
    eta_s: int | float | None = None
    llamaparse_status: str | None = None

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any] | None) -> JobProgress:
        """The display figures of a row's ``progress`` object (None reads as empty; see
        :func:`read_progress`: control keys are left out, unknown keys kept as extras)."""
        return read_progress(stored)[1]

    def without_eta(self) -> JobProgress:
        """This progress without ``eta_s`` (for a job nothing runs: its last rate means nothing)."""
        if "eta_s" not in self.model_fields_set:
            return self
        return JobProgress.model_validate({k: v for k, v in self.as_dict().items() if k != "eta_s"})


#: The keys of :class:`JobControl` (``upload_jobs.control``; in ``progress`` before migration 005).
CONTROL_KEYS: frozenset[str] = frozenset(JobControl.model_fields)


def read_progress(
    progress: Mapping[str, Any] | None, control: Mapping[str, Any] | None = None
) -> tuple[JobControl, JobProgress]:
    """``(control, display)`` from a row's ``progress`` and ``control`` objects (None reads as
    empty).

    Never raises for what an older or newer release wrote: control keys found in ``progress``
    (a row written before migration 005) are read as control state, ``control``'s own winning;
    keys neither model declares are kept as display extras (shown as stored); a value of an
    unexpected type for a declared key is logged and read as unset.
    """
    progress = progress or {}
    legacy, bad = JobControl.parse({k: v for k, v in progress.items() if k in CONTROL_KEYS})
    own, bad_own = JobControl.parse(control or {})
    display, rejected = JobProgress.parse({k: v for k, v in progress.items() if k not in CONTROL_KEYS})
    if bad or bad_own or rejected:
        log.warning(
            "job progress: values of an unexpected type read as unset: %s", {**bad, **bad_own, **rejected}
        )
    return legacy.merge(own), display


def shown_object(control: JobControl, display: JobProgress) -> dict[str, Any]:
    """The ``progress`` object API replies and ``docingest status --json`` show: the display
    figures and, beside them, the control keys, in jsonb's key order (shorter first, then by
    bytes), the order one jsonb object holding both would have."""
    merged = {**display.as_dict(), **control.as_dict()}
    return dict(sorted(merged.items(), key=lambda kv: (len(kv[0].encode()), kv[0].encode())))


@dataclass(frozen=True)
class Job:
    """A row of ``upload_pipeline.upload_jobs`` as the worker holds it.

    ``control`` (the row's ``control`` jsonb) is the state the pipeline branches on; ``progress``
    (its ``progress`` jsonb) the figures shown to users.
    """

    job_id: UUID
    document_id: UUID
    stage: Stage
    state: State
    attempt_id: UUID | None
    claimed_by: str | None
    lease_expires_at: datetime | None
    attempts: int
    retry_count: int
    lost_leases: int
    next_attempt_at: datetime | None
    progress: JobProgress = field(default_factory=JobProgress)
    control: JobControl = field(default_factory=JobControl)
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    #: ``ingest`` (a document through the ten stages) or ``reembed`` (a stored document's
    #: chunks embedded again by another generation: stages ``embedding_in_progress`` ->
    #: ``embeddings_stored`` -> ``complete``)
    kind: str = "ingest"

    def stalled(self, now: datetime) -> bool:
        """True when the job is ``working`` under a lease that expired before ``now`` (an aware
        datetime): the process holding it died or hung, and the next claim takes it over."""
        return (
            self.state is State.WORKING and self.lease_expires_at is not None and self.lease_expires_at < now
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        """Build from a dict row (extra keys are ignored); its ``progress`` and ``control`` objects
        are parsed by :func:`read_progress` (unknown keys never fail the read).

        Raises:
            ValueError: ``stage`` or ``state`` is not one of the machine's.
        """
        names = cls.__dataclass_fields__.keys() - {"progress", "control"}
        values = {k: row[k] for k in names if k in row}
        values["stage"] = Stage(values["stage"])
        values["state"] = State(values["state"])
        control, progress = read_progress(row.get("progress"), row.get("control"))
        return cls(**values, progress=progress, control=control)


@dataclass(frozen=True)
class Document:
    """A row of ``upload_pipeline.documents``."""

    document_id: UUID
    user_id: str
    filename: str
    mime: str
    bytes_len: int
    file_sha256: str
    raw_path: str
    parsed_path: str | None = None
    parsed_sha256: str | None = None
    page_count: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: what this document is a version of, unique per user among serving versions
    source: str = ""
    #: the user's metadata object (search filters on it)
    meta: dict[str, Any] = field(default_factory=dict)
    #: ``file`` (registered from the file system), ``api`` (an upload) or ``attachment`` (a file
    #: attached to an e-mail, registered by its parse: ``meta.attached_to`` names the message)
    origin: str = "api"
    #: the file's modification time when registered (ns since the epoch), None for an upload
    source_mtime_ns: int | None = None
    #: registration order (later versions of a source have larger ones)
    version_seq: int | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Document:
        """Build from a dict row (extra keys are ignored)."""
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: row[k] for k in names if k in row})


@dataclass(frozen=True)
class Generation:
    """A row of ``upload_pipeline.embedding_generations``: what made a set of vectors.

    Attributes:
        generation_id: its id (``document_chunks.generation_id``).
        provider: ``local``, ``hashing`` or ``openai`` (``EMBEDDING_PROVIDER``).
        model: the embedder's model name (``document_chunks.embed_model``).
        dimensions: the vectors' length.
    """

    generation_id: int
    provider: str
    model: str
    dimensions: int

    @property
    def label(self) -> str:
        """``provider/model/dimensions``, as people are shown it."""
        return f"{self.provider}/{self.model}/{self.dimensions}"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Generation:
        """Build from a dict row (extra keys are ignored)."""
        return cls(int(row["generation_id"]), row["provider"], row["model"], int(row["dimensions"]))


class Claim(NamedTuple):
    """A job just claimed, the state it was claimed from, and its document.

    ``previous_state`` is ``"working"`` when an expired lease was taken over, and then
    ``previous_worker`` is the id of the worker that held it (else None).
    """

    job: Job
    previous_state: str
    document: Document
    previous_worker: str | None = None


#: The chunk ``meta`` key holding the context embedded before the chunk's text (the document's
#: title and the chunk's heading path, within ``EMBEDDING_CONTEXT_TOKENS``); absent: none.
EMBEDDED_CONTEXT = "embedded_context"


def embedding_input(text: str, meta: Mapping[str, Any] | None) -> str:
    """The text the embedder is given for a chunk: its context line (``meta[EMBEDDED_CONTEXT]``),
    a blank line, then the chunk's own text; the text alone when there is no context.

    The stored and returned text is the chunk's own; only its vector sees the context. The
    embedding cache's key is the SHA-256 of this string, so a chunk with another context is
    embedded anew. Contextual chunk headers: the document title and section path written
    before a chunk, as in Anthropic's "Contextual Retrieval" (2024) and LlamaIndex's metadata
    in ``get_content(MetadataMode.EMBED)``.
    """
    context = (meta or {}).get(EMBEDDED_CONTEXT)
    return f"{context}\n\n{text}" if context else text
