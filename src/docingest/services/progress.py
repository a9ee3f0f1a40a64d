"""Honest progress: what a job's progress says, and a document's event stream.

A job's display figures (``upload_jobs.progress``) are a :class:`~docingest.domain.JobProgress`
(every key, its unit and the stage writing it are documented there); its control state
(``upload_jobs.control``) is a :class:`~docingest.domain.JobControl`.
:func:`shown_progress` is the ``progress`` object the API and ``docingest status --json``
show; :func:`document_events` yields a document's rows of ``upload_pipeline.events``
(the SSE endpoint ``GET /api/v2/documents/{id}/events`` streams them with
:func:`sse_message`); :class:`UserStream` reads what changed in all of a user's documents
(events, and document views whose job moved), which ``GET /api/v2/events`` streams with
:func:`user_sse_stream`; :func:`format_progress` is the one-line summary
``docingest status`` shows.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import anyio

from docingest.domain import STAGES, Job, JobControl, JobProgress, Stage, State, read_progress, shown_object

#: States in which nothing runs a job: a stored ``eta_s`` (the last attempt's) means nothing.
_IDLE_STATES = frozenset({State.WAITING, State.QUEUED, State.RETRYABLE, State.FAILED})

#: A job's progress as display code receives it: the model, or a row's stored ``progress``.
ProgressLike = JobProgress | Mapping[str, Any] | None


def display_progress(progress: ProgressLike) -> JobProgress:
    """The display figures of ``progress`` (a :class:`JobProgress` as is; a stored ``progress``
    object, or None, parsed by :meth:`JobProgress.from_stored`)."""
    return progress if isinstance(progress, JobProgress) else JobProgress.from_stored(progress)


def _idle(stalled: bool, state: str | State | None) -> bool:
    return stalled or (state is not None and State(state) in _IDLE_STATES)


def shown_progress(
    progress: ProgressLike,
    *,
    stalled: bool,
    state: str | State | None = None,
    control: JobControl | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A job's ``progress`` object as shown to a user (API replies, ``status --json``).

    Its display figures, without ``eta_s`` when nothing runs the job: it is stalled (its lease
    expired) or in an idle ``state`` (queued, retryable, waiting, failed), so the last attempt's
    rate says nothing about when it ends; beside them the job's control keys, as stored
    (``control``: the model, or a row's ``control`` object). See :func:`~docingest.domain.shown_object`.
    """
    if isinstance(progress, JobProgress):
        display = progress
        own = control if isinstance(control, JobControl) else read_progress(None, control)[0]
    else:
        own, display = read_progress(
            progress, control.as_dict() if isinstance(control, JobControl) else control
        )
    if _idle(stalled, state):
        display = display.without_eta()
    return shown_object(own, display)


def format_progress(
    progress: ProgressLike, *, stalled: bool = False, state: str | State | None = None
) -> str:
    """``"pages 12/12 (3 OCRed), chunks 40/100, eta 3s"`` from a job's progress (empty parts left
    out; no ETA for a ``stalled`` or idle job, see :func:`shown_progress`)."""
    p = display_progress(progress)
    parts = []
    if p.pages_total:
        ocred = f" ({p.pages_ocred} OCRed)" if p.pages_ocred else ""
        parts.append(f"pages {p.pages_parsed or 0}/{p.pages_total}{ocred}")
    if p.chunks_total is not None:
        parts.append(f"chunks {p.chunks_embedded or 0}/{p.chunks_total}")
    if p.eta_s and not _idle(stalled, state):
        parts.append(f"eta {duration(float(p.eta_s))}")
    n = len(p.parse_warnings or []) + len(p.chunk_warnings or [])
    if n:
        parts.append(f"{n} warning{'s' if n > 1 else ''}")
    return ", ".join(parts)


def duration(seconds: float) -> str:
    """``"39s"``, ``"1m47s"`` or ``"2h05m"``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def event_dict(row: dict[str, Any]) -> dict[str, Any]:
    """A JSON-ready event: ``{event_id, job_id, document_id, stage, type, payload, created_at}``."""
    return {
        "event_id": int(row["event_id"]),
        "job_id": str(row["job_id"]),
        "document_id": str(row["document_id"]),
        "stage": row["stage"],
        "type": row["type"],
        "payload": row["payload"] or {},
        "created_at": row["created_at"].isoformat() if row.get("created_at") else None,
    }


class EventLog(Protocol):
    """What the event stream reads (``DocumentService`` is one)."""

    def events_after(self, document_id: UUID, after_event_id: int) -> tuple[Job | None, list[dict[str, Any]]]:
        """The document's latest job and its events after ``after_event_id`` (at most 500, oldest first)."""
        ...

    def latest_job(self, document_id: UUID) -> Job | None:
        """The document's latest job, or None."""
        ...


def document_events(
    documents: EventLog,
    document_id: UUID | str,
    after_event_id: int = 0,
    *,
    follow: bool = True,
    poll_seconds: float = 0.5,
    timeout_seconds: float | None = None,
    stop: threading.Event | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield a document's events after ``after_event_id``, oldest first (see :func:`event_dict`).

    With ``follow`` it keeps polling (every ``poll_seconds``) until the
    document's latest job is terminal (``done`` or ``failed``) and every event
    up to then was yielded, or ``timeout_seconds`` passed; without it, it yields
    what is stored now and returns. A client that reconnects passes the last
    ``event_id`` it saw (SSE ``Last-Event-ID``) and misses nothing. Once ``stop`` is set (the
    server shuts down) it returns at its next wait, without waiting.

    Blocking (psycopg, ``time.sleep``): run it in a thread (Starlette does so for
    a sync iterator given to ``StreamingResponse``). The caller checks that the
    document belongs to the user; this function does not.
    """
    doc_id = UUID(str(document_id))
    last = int(after_event_id)
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while True:
        job, rows = documents.events_after(doc_id, last)
        for row in rows:
            last = int(row["event_id"])
            yield event_dict(row)
        if len(rows) >= 500:
            continue  # a full page: read on before deciding anything
        if not follow or job is None or job.state.terminal:
            return
        if deadline is not None and time.monotonic() >= deadline:
            return
        if stop is None:
            time.sleep(poll_seconds)
        elif stop.wait(poll_seconds):
            return


def sse_message(event: dict[str, Any]) -> str:
    """One Server-Sent Events message: ``id`` (the event id), ``event`` (its type), ``data`` (JSON)."""
    return StreamMessage(event["type"], event, event["event_id"]).sse()


def _finished(documents: EventLog, document_id: UUID) -> bool:
    job = documents.latest_job(document_id)
    return job is None or job.state.terminal


def sse_stream(
    documents: EventLog,
    document_id: UUID | str,
    last_event_id: int = 0,
    *,
    keepalive_seconds: float = 15.0,
    poll_seconds: float = 0.5,
    max_seconds: float | None = None,
    stop: threading.Event | None = None,
) -> Iterator[str]:
    """The text of an SSE response (``text/event-stream``) for a document's events.

    Yields :func:`sse_message` for each event after ``last_event_id`` (the
    request's ``Last-Event-ID``), a ``: keepalive`` comment after
    ``keepalive_seconds`` without one (so proxies keep the connection), and ends
    when the document's job is terminal, after ``max_seconds``, or as soon as ``stop`` is set
    (the server shuts down: the client reconnects to the next one). For FastAPI:
    ``StreamingResponse(sse_stream(documents, doc_id, last_id), media_type="text/event-stream")``.
    """
    doc_id = UUID(str(document_id))
    last = int(last_event_id)
    started = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        for event in document_events(
            documents, doc_id, last, poll_seconds=poll_seconds, timeout_seconds=keepalive_seconds, stop=stop
        ):
            last = event["event_id"]
            yield sse_message(event)
        if stop is not None and stop.is_set():
            return
        if _finished(documents, doc_id):
            return
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            return
        yield ": keepalive\n\n"


# --- every document of a user: GET /events ---------------------------------------------
@dataclass(frozen=True)
class UserChanges:
    """What one poll of a user's stream read (one transaction, under the user's row security).

    Attributes:
        events: the user's events after the stream's last, oldest first (at most
            :data:`USER_EVENTS_PAGE` rows of ``upload_pipeline.events``).
        views: document views (``Repository.get_document_view``'s rows) of the documents those
            events name, of the documents the stream saw working, and of every one of the user's
            documents whose job is working now.
        present: of the documents the stream asked about, those that still exist.
        tally: ``(documents, largest version_seq)`` of the user's documents: when it differs
            from the previous poll's, the list changed (a document added, deleted, replaced).
    """

    events: list[dict[str, Any]]
    views: list[dict[str, Any]]
    present: set[UUID]
    tally: tuple[int, int] = (0, 0)


class UserFeed(Protocol):
    """What the user-wide stream reads (``DocumentService`` is one)."""

    def latest_event_id(self) -> int:
        """The newest event's id, every user's (0: none)."""
        ...

    def user_changes(
        self, user_id: str, after_event_id: int, *, views_of: Sequence[UUID], exists: Sequence[UUID]
    ) -> UserChanges:
        """The user's events after ``after_event_id``; the views of ``views_of``, of those events'
        documents and of the user's working jobs; which of ``exists`` still exist; the tally of
        the user's documents."""
        ...


@dataclass(frozen=True)
class StreamMessage:
    """One Server-Sent Events message: ``event`` (its type), ``data`` (JSON), ``id`` (an event's
    id, which a client sends back as ``Last-Event-ID``; None for a ``document`` message)."""

    event: str
    data: dict[str, Any]
    id: int | None = None

    def sse(self) -> str:
        """The message as ``text/event-stream`` text."""
        head = f"id: {self.id}\n" if self.id is not None else ""
        return f"{head}event: {self.event}\ndata: {json.dumps(self.data, default=str)}\n\n"


class UserStream:
    """What changed in one user's documents since the last :meth:`poll`.

    Args:
        feed: the reads (``DocumentService``).
        user_id: whose documents.
        after_event_id: resume after this event (a client's ``Last-Event-ID``); None, or an id
            newer than the newest event (kept from before the events were reset): after the
            newest event when the first poll runs (a new page has just read the documents).
        view: a document view row to the JSON sent as a ``document`` message's data.

    Attributes:
        last_event_id: the last event sent (None before the first poll of a new stream).
        shown: the last ``document`` data sent per document: a view is sent again only when it
            differs.
        tally: the user's ``(documents, largest version_seq)`` at the last poll (None before
            the first).
    """

    def __init__(
        self,
        feed: UserFeed,
        user_id: str,
        after_event_id: int | None,
        *,
        view: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        self.feed, self.user_id, self.view = feed, user_id, view
        self.last_event_id = after_event_id
        #: True until the first poll checked where the stream starts.
        self.first = True
        self.shown: dict[UUID, dict[str, Any]] = {}
        self.tally: tuple[int, int] | None = None
        #: True when the last poll read a full page of events (read on without waiting).
        self.behind = False

    def unfinished(self) -> list[UUID]:
        """Documents last shown in a state a worker or an upload still moves (not done or failed)."""
        return [d for d, v in self.shown.items() if not State.is_terminal(v.get("state") or "done")]

    def working(self) -> list[UUID]:
        """Documents last shown ``working``: whatever their job did next is read again."""
        return [d for d, v in self.shown.items() if v.get("state") == State.WORKING.value]

    def poll(self) -> list[StreamMessage]:
        """One read (:meth:`UserFeed.user_changes`, one transaction); the messages, in order:

        - each new event: ``StreamMessage(type, event_dict(row), id=event_id)``;
        - ``document_deleted`` (``{"document_id"}``) for each document a ``version_replaced``
          event names, and each document shown unfinished that no longer exists;
        - ``document`` (``view(row)``) for each document whose view differs from the one last
          sent: its job was claimed, moved a stage, saved progress, was retried, failed, ended;
        - ``documents_changed`` (``{"total": documents}``) when the user's number of documents
          or the largest ``version_seq`` among them differs from the previous poll's (a
          document deleted or added anywhere, seen in flight or not; the first poll only
          records them): a client reloads its list.

        Blocking (psycopg): an async caller runs it in a thread.
        """
        after = self.last_event_id
        if self.first or after is None:  # None, or an id from before the events were reset: now
            latest = self.feed.latest_event_id()
            after = latest if after is None or after > latest else after
            self.last_event_id, self.first = after, False
        changes = self.feed.user_changes(
            self.user_id, after, views_of=self.working(), exists=self.unfinished()
        )
        out: list[StreamMessage] = []
        gone: list[UUID] = []
        for row in changes.events:
            event = event_dict(row)
            self.last_event_id = event["event_id"]
            out.append(StreamMessage(event["type"], event, event["event_id"]))
            if row["type"] == "version_replaced":
                gone += [UUID(str(d)) for d in (row["payload"] or {}).get("replaced") or []]
        gone += [d for d in self.unfinished() if d not in changes.present]
        for document_id in dict.fromkeys(gone):
            self.shown.pop(document_id, None)
            out.append(StreamMessage("document_deleted", {"document_id": str(document_id)}))
        for row in changes.views:
            document_id = UUID(str(row["document_id"]))
            if document_id in gone:
                continue
            data = self.view(row)
            if self.shown.get(document_id) != data:
                self.shown[document_id] = data
                out.append(StreamMessage("document", data))
        if self.tally is not None and changes.tally != self.tally:
            out.append(StreamMessage("documents_changed", {"total": changes.tally[0]}))
        self.tally = changes.tally
        self.behind = len(changes.events) >= USER_EVENTS_PAGE
        return out


#: Events one poll of a user's stream reads at most (``UserFeed.user_changes``).
USER_EVENTS_PAGE = 500


async def user_sse_stream(
    stream: UserStream,
    *,
    keepalive_seconds: float = 15.0,
    poll_seconds: float = 0.5,
    max_seconds: float | None = None,
    stop: threading.Event | None = None,
) -> AsyncIterator[str]:
    """The text of the user-wide SSE response (``GET /events``): ``retry: 2000``, then each
    poll's messages as they come, a ``: keepalive`` comment after ``keepalive_seconds`` without
    a message, until ``max_seconds`` have passed (None: for ever) or ``stop`` is set (the server
    shuts down; checked every ``poll_seconds`` at most).

    Each poll runs in a worker thread; between polls the stream waits on the event loop, so an
    idle stream holds no thread, and a client that goes away ends it at the next wait.
    """
    started = last_sent = time.monotonic()
    yield "retry: 2000\n\n"
    while stop is None or not stop.is_set():
        messages = await anyio.to_thread.run_sync(stream.poll)
        if messages:
            yield "".join(m.sse() for m in messages)
            last_sent = time.monotonic()
        now = time.monotonic()
        if max_seconds is not None and now - started >= max_seconds:
            return
        if now - last_sent >= keepalive_seconds:
            yield ": keepalive\n\n"
            last_sent = now
        if not stream.behind:
            await anyio.sleep(poll_seconds)


# --- ingest's progress: work, rate, ETA ------------------------------------------------
#: A document's parse counts as this share of its chunks' embedding (an estimate: parsing a
#: page costs about what embedding half a page's chunks does on the default local model).
PARSE_SHARE = 0.5
#: Chunks expected per byte of a file before any document of the run is chunked (after that,
#: the ratio observed over the run's chunked documents is used).
DEFAULT_CHUNKS_PER_BYTE = 1 / 2000
#: The rate is not shown (and no ETA) before this many seconds of the run's own work.
MIN_RATE_SECONDS = 2.0
#: No ETA while the run's work has not moved for this many seconds (a large file parsing or
#: chunking reports nothing until it is done): an ETA from a stalled rate only grows.
STALLED_ETA_SECONDS = 10.0
#: What a job does while its stage is the one reached (its handler works towards the next).
_DOING = {
    "uploaded": "verifying",
    "parse_queued": "parsing",
    "parsed": "validating",
    "parse_validated": "chunking",
    "chunking": "chunking",
    "chunks_stored": "embedding",
    "embedding_queued": "embedding",
    "embedding_in_progress": "embedding",
    "embeddings_stored": "storing",
}

# Stages a job has reached once parsed / once embedded (the machine's order, domain.STAGES).
_PARSED_AT = frozenset(s.value for s in STAGES[STAGES.index(Stage.PARSED) :])
_EMBEDDED_AT = frozenset(s.value for s in STAGES[STAGES.index(Stage.EMBEDDINGS_STORED) :])


@dataclass(frozen=True)
class IngestSnapshot:
    """Where an ``ingest`` run stands (:meth:`IngestProgress.update`).

    Work is counted in chunk units: a document's chunks to embed (its ``chunks_total``, or
    an estimate from its bytes until it is chunked) plus :data:`PARSE_SHARE` of that for its
    parse (moved by ``pages_parsed/pages_total`` while a PDF parses).

    Attributes:
        documents, complete, failed: documents in the run; done; failed.
        chunks_embedded: chunks with a vector, of the documents chunked so far.
        chunks_known: ``chunks_total`` summed over the documents chunked so far.
        work_done, work_total: chunk units done and expected (``work_total`` >= ``work_done``).
        rate_chunks_s: chunks embedded per second by this run (None until measurable).
        eta_s: seconds left at this run's rate of work (None until measurable; 0 when done).
        elapsed_s: seconds since the run started.
        waiting_jobs: jobs held by another process under a lease not expired yet.
        waiting_lease_left_s: seconds until the first of those leases expires (None: none).
        expired_jobs: jobs held by another process whose lease expired (to be taken over).
        taken_over: jobs this run took over from a process whose lease expired.
        unchunked: documents not chunked yet (their chunks are not in ``chunks_known``).
        working_on: what this run's slots do now, e.g. ``["parsing big.pdf", "embedding a.md"]``.
    """

    documents: int = 0
    complete: int = 0
    failed: int = 0
    chunks_embedded: int = 0
    chunks_known: int = 0
    work_done: float = 0.0
    work_total: float = 0.0
    rate_chunks_s: float | None = None
    eta_s: float | None = None
    elapsed_s: float = 0.0
    waiting_jobs: int = 0
    waiting_lease_left_s: float | None = None
    expired_jobs: int = 0
    taken_over: int = 0
    unchunked: int = 0
    working_on: tuple[str, ...] = ()

    @property
    def finished(self) -> int:
        """Documents done or failed."""
        return self.complete + self.failed

    @property
    def fraction(self) -> float:
        """``work_done / work_total`` in [0, 1] (0 with nothing known yet)."""
        return min(1.0, self.work_done / self.work_total) if self.work_total > 0 else 0.0

    def chunks_text(self) -> str:
        """``"1,024/3,310 chunks"``, and how many documents are not chunked yet (their chunks
        are not counted in the second figure): ``"512/512 chunks (+3 docs to chunk)"``."""
        more = (
            f" (+{self.unchunked} doc{'s' if self.unchunked != 1 else ''} to chunk)" if self.unchunked else ""
        )
        return f"{self.chunks_embedded:,}/{self.chunks_known:,} chunks{more}"

    def note(self) -> str:
        """What this run is doing (when its work has not moved) and what it waits for, or
        took over, in words; empty when nothing is to say."""
        parts = []
        if self.eta_s is None and self.working_on and self.elapsed_s >= MIN_RATE_SECONDS:
            parts.append(", ".join(self.working_on))
        if self.waiting_jobs:
            left = f", lease expires in {round(self.waiting_lease_left_s or 0)} s"
            parts.append(f"waiting for {_jobs(self.waiting_jobs)} leased by another process{left}")
        if self.expired_jobs:
            parts.append(f"{_jobs(self.expired_jobs)} of a stopped process: lease expired, taking over")
        if self.taken_over:
            parts.append(f"took over {_jobs(self.taken_over)} whose lease expired")
        return "; ".join(parts)

    def line(self) -> str:
        """One plain line: ``ingest: 12/45 documents, 1,024/3,310 chunks embedded, 21.3
        chunks/s, eta 1m47s, elapsed 0:01:12`` (then :meth:`note`, if any)."""
        parts = [f"ingest: {self.finished}/{self.documents} documents", f"{self.chunks_text()} embedded"]
        if self.rate_chunks_s is not None:
            parts.append(f"{self.rate_chunks_s:,.1f} chunks/s")
        if self.eta_s is not None:
            parts.append(f"eta {duration(self.eta_s)}")
        parts.append(f"elapsed {clock(self.elapsed_s)}")
        note = self.note()
        return ", ".join(parts) + (f"; {note}" if note else "")


def _jobs(n: int) -> str:
    return f"{n} job{'s' if n != 1 else ''}"


def clock(seconds: float) -> str:
    """``"0:01:12"``: hours, minutes and seconds."""
    s = max(0, int(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class IngestProgress:
    """Turns ``list_jobs`` rows of a run into :class:`IngestSnapshot`; pure (no I/O, no clock).

    Args:
        worker_id: this run's worker (jobs claimed by another are "leased by another process").
        started: the run's start, in the same clock as ``now`` (seconds).

    Rows need ``state, stage, progress, bytes_len, claimed_by, lease_left_s, lost_leases,
    job_id`` (``Repository.list_jobs``). The rate and ETA are those of this run's own work:
    what was already done at the first :meth:`update` (a resumed run) does not count.
    """

    def __init__(self, *, worker_id: str | None, started: float) -> None:
        self.worker_id = worker_id
        self.started = started
        self._baseline: tuple[float, float, int] | None = None  # (time, work done, chunks embedded)
        self._moved: tuple[float, float] | None = None  # (time, work done) when work last moved
        self._lost_leases: dict[Any, int] = {}
        self._taken_over: set[Any] = set()
        self._held_elsewhere: set[Any] = set()

    @property
    def embedded_at_start(self) -> int:
        """Chunks already embedded at the first :meth:`update` (0 before it): a resumed run's
        earlier work, which its rate does not count."""
        return self._baseline[2] if self._baseline is not None else 0

    def update(self, jobs: list[dict[str, Any]], now: float) -> IngestSnapshot:
        """The snapshot for ``jobs`` (each document's latest job) at ``now``."""
        shown = {j["job_id"]: display_progress(j["progress"]) for j in jobs}
        known = [
            (j["bytes_len"] or 0, p.chunks_total)
            for j in jobs
            if (p := shown[j["job_id"]]).chunks_total is not None
        ]
        known_bytes = sum(b for b, _ in known)
        per_byte = sum(c for _, c in known) / known_bytes if known_bytes else DEFAULT_CHUNKS_PER_BYTE
        done = total = 0.0
        embedded = chunks_known = 0
        waiting, expired, unchunked = 0, 0, 0
        lease_left: list[float] = []
        working_on: list[str] = []
        for j in jobs:
            p = shown[j["job_id"]]
            if p.chunks_total is None and not State.is_terminal(j["state"]):
                unchunked += 1
            if (
                j["state"] == "working"
                and j.get("claimed_by") == self.worker_id
                and j["stage"] in _DOING
                and j.get("filename")
            ):
                working_on.append(f"{_DOING[j['stage']]} {j['filename']}")
            d, t = job_work(j["state"], j["stage"], p, j["bytes_len"] or 0, per_byte)
            done, total = done + d, total + t
            if p.chunks_total is not None:
                chunks_known += p.chunks_total
                embedded += p.chunks_total if j["state"] == State.DONE.value else p.chunks_embedded or 0
            self._lost_leases.setdefault(j["job_id"], j.get("lost_leases") or 0)
            holder = j.get("claimed_by")
            elsewhere = holder is not None and holder != self.worker_id
            if j["state"] == "working" and elsewhere and j.get("lease_left_s") is not None:
                self._held_elsewhere.add(j["job_id"])
                if j["lease_left_s"] > 0:
                    waiting += 1
                    lease_left.append(float(j["lease_left_s"]))
                else:
                    expired += 1
            # Its lease was taken over, and not by another process (ours now, or since finished).
            if (
                j["job_id"] in self._held_elsewhere
                and not elsewhere
                and (j.get("lost_leases") or 0) > self._lost_leases[j["job_id"]]
            ):
                self._taken_over.add(j["job_id"])
        if self._baseline is None:
            self._baseline = (now, done, embedded)
        since, done0, embedded0 = self._baseline
        seconds = now - since
        rate = eta = None
        if self._moved is None or done > self._moved[1]:
            self._moved = (now, done)
        if seconds >= MIN_RATE_SECONDS:
            rate = max(0, embedded - embedded0) / seconds
            work_rate = (done - done0) / seconds
            stalled = now - self._moved[0] >= STALLED_ETA_SECONDS
            eta = (total - done) / work_rate if work_rate > 0 and not stalled else None
        finished = all(State.is_terminal(j["state"]) for j in jobs)
        return IngestSnapshot(
            documents=len(jobs),
            complete=sum(j["state"] == "done" for j in jobs),
            failed=sum(j["state"] == "failed" for j in jobs),
            chunks_embedded=embedded,
            chunks_known=chunks_known,
            work_done=done,
            work_total=total,
            rate_chunks_s=rate,
            eta_s=0.0 if finished and jobs else eta,
            elapsed_s=now - self.started,
            waiting_jobs=waiting,
            waiting_lease_left_s=min(lease_left) if lease_left else None,
            expired_jobs=expired,
            taken_over=len(self._taken_over),
            unchunked=unchunked,
            working_on=tuple(working_on[:2]),
        )


def job_work(
    state: str, stage: str, progress: ProgressLike, bytes_len: int, chunks_per_byte: float
) -> tuple[float, float]:
    """``(done, total)`` work of one document's job, in chunk units (see :class:`IngestSnapshot`).

    Its chunks are ``chunks_total`` once chunked, else ``bytes_len * chunks_per_byte`` (at least
    1). A done job's work is all done; a failed job's total is what it had done (the rest will
    not be). The parse share moves with ``pages_parsed/pages_total`` while it parses.
    """
    p = display_progress(progress)
    chunks = float(p.chunks_total) if p.chunks_total is not None else max(1.0, bytes_len * chunks_per_byte)
    parse_total = PARSE_SHARE * chunks
    total = parse_total + chunks
    if state == "done":
        return total, total
    if stage in _PARSED_AT:
        parse_done = parse_total
    elif p.pages_total:
        parse_done = parse_total * min(1.0, (p.pages_parsed or 0) / p.pages_total)
    else:
        parse_done = 0.0
    embed_done = chunks if stage in _EMBEDDED_AT else min(chunks, float(p.chunks_embedded or 0))
    done = parse_done + embed_done
    return (done, done) if state == "failed" else (done, total)
