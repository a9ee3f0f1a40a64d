"""``docingest reembed``: move stored chunks to this process's embedding generation, in the
background of searches, through the same queue as ingestion.

Each complete document with chunks of another generation gets a re-embedding job
(``upload_jobs.kind = 'reembed'``, ``stages/reembed.py``): its stored chunks are embedded again
by this process's model (no parsing), under the same leases, retries and rate limits as any
job; a user is switched in one transaction once every chunk of theirs is covered. Until then
their searches keep being answered by the previous generation (``Searcher`` embeds queries by
the serving generation's model).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol
from uuid import UUID

from docingest.db.database import Database
from docingest.db.repository import Repository
from docingest.domain import Generation, State
from docingest.services.ingest import IngestHost, run_until_terminal
from docingest.services.progress import IngestSnapshot


class ReembedHost(IngestHost, Protocol):
    """What re-embedding needs of the process (``Runtime`` is one): an ingest host's settings,
    documents service, generation and worker slots, and its database and queries."""

    database: Database
    repo: Repository


@dataclass
class Coverage:
    """One generation's share of a user's (or everyone's) stored chunks.

    Attributes:
        generation_id, label: the generation (``provider/model/dimensions``).
        chunks: stored chunks whose vector is of it.
        waiting: chunks with a vector of it waiting for their user's switch (re-embedding).
        serving_users: users whose searches it serves.
        share: ``(chunks + waiting) / total`` stored chunks, in [0, 1] (1: it covers all).
    """

    generation_id: int
    label: str
    chunks: int
    waiting: int
    serving_users: int
    share: float

    @property
    def line(self) -> str:
        """One line for a person: ``local/all-MiniLM-L6-v2/384: 9,224 chunks (100%), serving 1 user``."""
        parts = [f"{self.label}: {self.chunks:,} chunks"]
        if self.waiting:
            parts.append(f"{self.waiting:,} re-embedded awaiting the switch")
        text = ", ".join(parts) + f" ({self.share:.0%} covered)"
        if self.serving_users:
            text += f", serving {self.serving_users} user{'s' if self.serving_users != 1 else ''}"
        return text


def coverage(db: Database, repo: Repository, user_id: str | None) -> list[Coverage]:
    """Every generation with chunks, waiting vectors or users, of ``user_id`` (None: everyone).

    Raises:
        psycopg.Error: the database cannot be read.
    """
    with db.connection() as conn:
        rows = repo.generation_coverage(conn, user_id)
        total = int(repo.inventory(conn, user_id)["chunks"])
    found = []
    for r in rows:
        chunks, waiting, users = int(r["chunks"]), int(r["waiting"]), int(r["serving_users"])
        if not (chunks or waiting or users):
            continue
        label = Generation(r["generation_id"], r["provider"], r["model"], r["dimensions"]).label
        share = min(1.0, (chunks + waiting) / total) if total else 0.0
        found.append(Coverage(r["generation_id"], label, chunks, waiting, users, round(share, 4)))
    return found


@dataclass
class ReembedSummary:
    """What ``reembed`` reports (``--json`` prints it as one object).

    Attributes:
        generation: the target (``provider/model/dimensions``).
        queued: documents this run re-embedded: those with chunks of another generation and no
            vector of the target yet, and those whose re-embedding an earlier run left unfinished.
        complete, failed: of those jobs.
        failed_by_code: ``{error_code: jobs}``.
        switched_users: users switched to the target by this run.
        chunks: chunks re-embedded by this run's jobs.
        remaining: stored chunks the target still does not cover afterwards (documents being
            ingested meanwhile, or whose job failed): run it again once they are done.
        coverage: every generation's coverage afterwards (:class:`Coverage`).
    """

    generation: str
    queued: int = 0
    complete: int = 0
    failed: int = 0
    failed_by_code: dict[str, int] = field(default_factory=dict)
    switched_users: int = 0
    chunks: int = 0
    remaining: int = 0
    wall_s: float = 0.0
    coverage: list[Coverage] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def queue(rt: ReembedHost, *, user_id: str | None = None) -> tuple[Generation, list[UUID]]:
    """Queue re-embedding jobs into this process's generation (of ``user_id``; None: every
    user) for the documents with chunks it does not cover; ``(generation, document ids)`` of
    those jobs and of the re-embedding jobs into it not finished yet (an interrupted run's).

    Raises:
        psycopg.Error: the database refused.
    """
    generation = rt.generation()
    with rt.database.transaction() as conn:
        jobs = rt.repo.queue_reembed_jobs(conn, user_id=user_id, generation_id=generation.generation_id)
        jobs += rt.repo.unfinished_reembed_jobs(conn, user_id=user_id, generation_id=generation.generation_id)
    return generation, list(dict.fromkeys(j["document_id"] for j in jobs))


def switch_covered_users(rt: ReembedHost, generation: Generation, *, user_id: str | None = None) -> int:
    """Switch every user (or ``user_id``) not served by ``generation`` whose chunks it covers
    wholly (e.g. their other chunks were deleted meanwhile, or re-embedded by an earlier run
    whose last job failed); returns the users switched."""
    switched = 0
    with rt.database.connection() as conn:
        users = rt.repo.users_not_served_by(conn, generation.generation_id, user_id=user_id)
    for user in users:
        with rt.database.transaction() as conn:
            moved = rt.repo.switch_generation_if_covered(
                conn, user_id=user, generation_id=generation.generation_id
            )
        switched += moved is not None
    return switched


def reembed(
    rt: ReembedHost,
    *,
    user_id: str | None = None,
    concurrency: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    poll_seconds: float = 0.5,
) -> ReembedSummary:
    """Queue the re-embedding jobs (:func:`queue`) and run worker slots in this process until
    they are terminal, then switch users already covered (:func:`switch_covered_users`).

    ``on_progress(finished, queued)`` is called after each poll. Other workers (``docingest
    worker``) take part through the queue.

    Raises:
        IngestInterrupted: on KeyboardInterrupt; the slots have released their jobs (run it
            again to resume: queued jobs stay queued, vectors stored are kept).
    """
    started = time.monotonic()
    generation, ids = queue(rt, user_id=user_id)
    summary = ReembedSummary(generation=generation.label, queued=len(ids))
    before = _served_by(coverage(rt.database, rt.repo, user_id), generation)
    latest: dict[UUID, dict[str, Any]] = {}
    if ids:  # each document's latest job is the re-embedding one just queued or left unfinished

        def progress(snap: IngestSnapshot) -> None:
            if on_progress:
                on_progress(snap.finished, snap.documents)

        latest, _ = run_until_terminal(
            rt, ids, started=started, concurrency=concurrency, on_progress=progress, poll_seconds=poll_seconds
        )
    switch_covered_users(rt, generation, user_id=user_id)
    with rt.database.connection() as conn:
        summary.remaining = rt.repo.generation_remaining_all(
            conn, user_id=user_id, generation_id=generation.generation_id
        )
    failed = [j for j in latest.values() if j["state"] == State.FAILED.value]
    summary.complete = sum(j["state"] == State.DONE.value for j in latest.values())
    summary.failed = len(failed)
    summary.failed_by_code = dict(Counter(j["error_code"] for j in failed))
    summary.chunks = sum(int((j["progress"] or {}).get("chunks_total") or 0) for j in latest.values())
    summary.coverage = coverage(rt.database, rt.repo, user_id)
    summary.switched_users = _served_by(summary.coverage, generation) - before
    summary.wall_s = round(time.monotonic() - started, 3)
    return summary


def _served_by(found: list[Coverage], generation: Generation) -> int:
    """Users served by ``generation`` in a :func:`coverage` answer."""
    return next((c.serving_users for c in found if c.generation_id == generation.generation_id), 0)
