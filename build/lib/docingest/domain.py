"""Domain values: the stages and states of docs/architecture.md section 2, ``Job`` and ``Document``."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID


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
    def index(self) -> int:
        """Position in the pipeline, 0 for ``uploaded`` .. 9 for ``complete``."""
        return STAGES.index(self)

    def next(self) -> Stage:
        """The stage this one's handler reaches.

        Raises:
            ValueError: for ``complete``, which has no successor.
        """
        if self is Stage.COMPLETE:
            raise ValueError("complete is the last stage")
        return STAGES[self.index + 1]


STAGES: list[Stage] = list(Stage)


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
        return self in (State.DONE, State.FAILED)


@dataclass(frozen=True)
class Job:
    """A row of ``upload_pipeline.upload_jobs`` as the worker holds it."""

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
    progress: dict[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None

    def stalled(self, now: datetime) -> bool:
        """True when the job is ``working`` under a lease that expired before ``now`` (an aware
        datetime): the process holding it died or hung, and the next claim takes it over."""
        return self.state is State.WORKING and self.lease_expires_at is not None and self.lease_expires_at < now

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        """Build from a dict row (extra keys are ignored)."""
        names = cls.__dataclass_fields__.keys()
        values = {k: row[k] for k in names if k in row}
        values["stage"] = Stage(values["stage"])
        values["state"] = State(values["state"])
        values["progress"] = values.get("progress") or {}
        return cls(**values)


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

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Document:
        """Build from a dict row (extra keys are ignored)."""
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: row[k] for k in names if k in row})


class Claim(NamedTuple):
    """A job just claimed, the state it was claimed from, and its document.

    ``previous_state`` is ``"working"`` when an expired lease was taken over, and then
    ``previous_worker`` is the id of the worker that held it (else None).
    """

    job: Job
    previous_state: str
    document: Document
    previous_worker: str | None = None
