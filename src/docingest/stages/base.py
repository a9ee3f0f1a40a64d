"""What a stage handler receives and returns.

A handler gets its collaborators (storage, parser, chunker, embedder) in its
constructor; ``run(ctx)`` does the work and returns a :class:`StageResult`. The
worker owns the transaction, the fencing check and the transition: it runs
``result.persist(conn)`` and the stage change in one transaction that first
checks the attempt still holds the job.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from docingest.domain import Document, Job, JobControl, JobProgress, Stage

Persist = Callable[[Any], None]


@dataclass
class StageResult:
    """The outcome of one handler run.

    Attributes:
        progress: display figures merged into ``upload_jobs.progress`` (the fields set).
        control: control state merged into ``upload_jobs.control`` (the fields set).
        persist: writes to make in the fenced transaction (gets the connection).
        events: ``(type, payload)`` rows written with the transition.
        delay_seconds: when set, the job stays at its stage and is rescheduled
            after this many seconds (polling a remote job without holding a slot).
        next_stage: the stage the job moves to instead of ``stage.next()`` (bytes whose chunks
            and vectors another document already has skip to ``embeddings_stored``).
        after_commit: called with a connection once the transition is committed (work that
            must not run if it rolls back, e.g. deleting the objects of versions replaced);
            its errors are logged, never the job's.
    """

    progress: JobProgress = field(default_factory=JobProgress)
    control: JobControl = field(default_factory=JobControl)
    persist: Persist | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    delay_seconds: float | None = None
    next_stage: Stage | None = None
    after_commit: Persist | None = None


class StageContext(Protocol):
    """The worker's side of a running job, as a handler sees it."""

    job: Job
    document: Document

    def check(self) -> None:
        """Raise ``LeaseLost`` (or stop) when this attempt must not go on."""

    def fenced(self) -> AbstractContextManager[Any]:
        """A transaction on a connection, entered only while the attempt holds the job."""

    def reading(self) -> AbstractContextManager[Any]:
        """A connection for reads only: no fence and no lock on the job row, so it never waits
        for (nor holds up) this job's fenced transactions. What is written after is fenced."""

    def save_progress(
        self, progress: JobProgress, persist: Persist | None = None, *, control: JobControl | None = None
    ) -> None:
        """Write ``persist`` and merge ``progress`` (and ``control``) in one fenced transaction
        (a checkpoint); ``job`` then holds the merged fields."""


class StageHandler(Protocol):
    """Handles the job at ``stage`` and reaches ``stage.next()``."""

    stage: Stage

    def run(self, ctx: StageContext) -> StageResult: ...
