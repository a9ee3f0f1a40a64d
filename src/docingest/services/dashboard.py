"""What the dashboard's pages show that no other entry point computes: a document's stages
with their durations, retries and lease takeovers (:func:`stage_spans`, from its events), and
the Health page's data (:func:`summary`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from docingest.db.database import Database
from docingest.db.repository import Repository
from docingest.domain import STAGES
from docingest.providers.embedding.hashing import HashingEmbedder
from docingest.services.info import describe
from docingest.services.reembed import Coverage, coverage
from docingest.settings import Settings

#: Events that end an attempt at the job's stage without completing it.
_ATTEMPT_ENDS = frozenset({"retry_scheduled", "failed"})


@dataclass
class StageSpan:
    """The work done at one stage of a document's jobs (the handler of ``stage`` moves the job
    to ``reached``), from the document's events.

    Attributes:
        stage: the stage the job was at while working (``uploaded``: verifying the upload ...).
        reached: the stage that work moved the job to (None: not completed).
        started_at, finished_at: when the attempt that completed it started and ended (None: not
            completed).
        seconds: that attempt's work, in seconds (the ``stage_completed`` event's ``seconds``;
            None: not completed).
        attempts: tries at the stage: the one that completed it, each that ended in a retry or a
            failure, and each that lost its lease (another worker took the job over).
        retries: tries that ended in ``retry_scheduled``.
        lease_takeovers: claims that took the job over from a worker whose lease expired.
        error_code: the last error at the stage (None: none).
        workers: the workers whose attempts completed it.
    """

    stage: str
    reached: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    seconds: float | None = None
    attempts: int = 0
    retries: int = 0
    lease_takeovers: int = 0
    error_code: str | None = None
    workers: list[str] = field(default_factory=list)


def stage_spans(events: list[dict[str, Any]]) -> list[StageSpan]:
    """The stages worked at, in the state machine's order, from a document's events (rows of
    ``upload_pipeline.events``, oldest first, of every job of the document).

    A stage completed more than once (a re-embedding job, a retry from an earlier stage) keeps
    its last completion's times and counts every try. ``stage_completed``'s payload has the
    stage it came ``from`` and the attempt's ``seconds``; ``retry_scheduled`` and ``failed``
    (at the job's stage) end a try; ``lease_taken_over`` starts one.
    """
    spans: dict[str, StageSpan] = {}
    for event in events:
        payload = event.get("payload") or {}
        kind = event["type"]
        if kind == "stage_completed":
            stage = str(payload.get("from") or "")
            if not stage:
                continue
            span = spans.setdefault(stage, StageSpan(stage))
            span.attempts += 1
            span.reached = event["stage"]
            span.finished_at = event["created_at"]
            seconds = payload.get("seconds")
            span.seconds = float(seconds) if isinstance(seconds, int | float) else None
            span.started_at = (
                span.finished_at - timedelta(seconds=span.seconds)
                if span.finished_at is not None and span.seconds is not None
                else None
            )
            worker = payload.get("worker")
            if isinstance(worker, str) and worker not in span.workers:
                span.workers.append(worker)
        elif kind in _ATTEMPT_ENDS or kind == "lease_taken_over":
            span = spans.setdefault(event["stage"], StageSpan(event["stage"]))
            span.attempts += 1  # a takeover: the try that lost its lease (it wrote no event)
            if kind == "lease_taken_over":
                span.lease_takeovers += 1
                continue
            span.retries += kind == "retry_scheduled"
            code = payload.get("error_code")
            span.error_code = code if isinstance(code, str) else span.error_code
    order = {s.value: i for i, s in enumerate(STAGES)}
    return sorted(spans.values(), key=lambda s: order.get(s.stage, len(order)))


# --- the Health page ------------------------------------------------------------------------
@dataclass(frozen=True)
class JobCount:
    """Jobs of the user at one stage in one state."""

    stage: str
    state: str
    count: int


@dataclass(frozen=True)
class FailureCount:
    """The user's failed jobs of one ``error_code``: how many, the last one's time and message."""

    error_code: str
    count: int
    last_at: datetime | None
    message: str | None


@dataclass(frozen=True)
class WorkerSeen:
    """A worker (``host:pid:random``) holding jobs now or that completed a stage in the last hour.

    Attributes:
        jobs_working: jobs it holds now.
        jobs_stalled: of those, jobs whose lease expired (it died or hangs; another worker will
            take them over).
        last_seen: its last lease renewal, write or completed stage.
    """

    worker_id: str
    jobs_working: int
    jobs_stalled: int
    last_seen: datetime | None


@dataclass(frozen=True)
class BucketState:
    """A shared rate-limit bucket (``openai:requests`` ...): its size, what is left now, and
    the end of a backoff a 429 started (None: none)."""

    bucket: str
    capacity: float
    refill_per_second: float
    tokens: float
    blocked_until: datetime | None


@dataclass(frozen=True)
class EmbedderState:
    """The configured embedder and its limits (requests and tokens per minute, every worker's);
    ``description`` is ``docingest info``'s line for it (runtime, endpoint)."""

    provider: str
    model: str
    dimensions: int
    description: str
    rpm: int | None
    tpm: int | None
    buckets: list[BucketState]


@dataclass(frozen=True)
class Summary:
    """The Health page: the user's queue and failures; the installation's workers and embedder;
    the embedding generations of the user's chunks."""

    user_id: str
    jobs: list[JobCount]
    failures: list[FailureCount]
    workers: list[WorkerSeen]
    embedder: EmbedderState
    generations: list[Coverage]


def summary(db: Database, repo: Repository, settings: Settings, user_id: str) -> Summary:
    """The Health page's data for ``user_id``: their jobs by stage and state and their failures
    by ``error_code`` (read under their row security); the workers seen and the rate-limit
    buckets (installation facts, the same for every user); the configured embedder
    (``settings``); the coverage of the user's chunks by embedding generation.

    Raises:
        psycopg.Error: the database cannot be read.
    """
    with db.user_transaction(user_id) as conn:
        jobs = [JobCount(r["stage"], r["state"], int(r["n"])) for r in repo.summary_jobs(conn, user_id)]
        failures = [
            FailureCount(r["error_code"], int(r["n"]), r["last_at"], r["message"])
            for r in repo.summary_failures(conn, user_id)
        ]
    with db.connection() as conn:
        workers = [
            WorkerSeen(r["worker_id"], int(r["jobs_working"]), int(r["jobs_stalled"]), r["last_seen"])
            for r in repo.summary_workers(conn, lease_seconds=settings.lease_seconds)
        ]
        buckets = [
            BucketState(
                r["bucket"],
                float(r["capacity"]),
                float(r["refill_per_second"]),
                float(r["tokens"]),
                r["blocked_until"],
            )
            for r in repo.rate_limit_buckets(conn)
        ]
    model = settings.embedding_model
    if settings.embedding_provider == "hashing":  # its own name, whatever EMBEDDING_MODEL says
        model = HashingEmbedder(settings.embedding_dimensions).model
    embedder = EmbedderState(
        provider=settings.embedding_provider,
        model=model,
        dimensions=settings.embedding_dimensions,
        description=describe(settings).embedder,
        rpm=settings.embedding_rpm,
        tpm=settings.embedding_tpm,
        buckets=buckets,
    )
    return Summary(user_id, jobs, failures, workers, embedder, coverage(db, repo, user_id))
