"""Honest progress: what a job's ``progress`` says, and a document's event stream.

``upload_jobs.progress`` keys written by the stages (all optional, merged as the job goes):

| key | written by | meaning |
|---|---|---|
| ``pages_total``, ``pages_parsed`` | ``parse_queued`` | pages of the original (PDF; absent for page-less kinds), saved while the parse runs (after the first page, then at most once per ``PARSE_PROGRESS_INTERVAL_SECONDS``) and at its end |
| ``chunks_total``, ``tokens_total`` | ``chunking`` | chunks made, and their word pieces |
| ``chunks_embedded`` | ``embedding_in_progress`` | chunks with a stored vector (a checkpoint per batch) |
| ``eta_s`` | ``parse_queued``, ``embedding_in_progress`` | seconds left in the running stage at the rate observed in this attempt; 0 when done |

:func:`document_events` yields a document's rows of ``upload_pipeline.events``
(the SSE endpoint ``GET /api/v2/documents/{id}/events`` streams them with
:func:`sse_message`); :func:`format_progress` is the one-line summary
``docingest status`` shows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

TERMINAL_STATES = ("done", "failed")


def shown_progress(progress: dict[str, Any] | None, *, stalled: bool) -> dict[str, Any]:
    """A job's progress as shown to a user: without ``eta_s`` when the job is stalled (its
    lease expired: nothing is running it, so the last rate says nothing about when it ends)."""
    p = dict(progress or {})
    if stalled:
        p.pop("eta_s", None)
    return p


def format_progress(progress: dict[str, Any] | None, *, stalled: bool = False) -> str:
    """``"pages 12/12, chunks 40/100, eta 3s"`` from a job's progress (empty parts left out;
    no ETA for a ``stalled`` job, see :func:`shown_progress`)."""
    p = shown_progress(progress, stalled=stalled)
    parts = []
    if p.get("pages_total"):
        parts.append(f"pages {p.get('pages_parsed', 0)}/{p['pages_total']}")
    if p.get("chunks_total") is not None:
        parts.append(f"chunks {p.get('chunks_embedded', 0)}/{p['chunks_total']}")
    eta = p.get("eta_s")
    if eta:
        parts.append(f"eta {_duration(float(eta))}")
    if p.get("parse_warnings"):
        n = len(p["parse_warnings"])
        parts.append(f"{n} parse warning{'s' if n > 1 else ''}")
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def event_dict(row: dict[str, Any]) -> dict[str, Any]:
    """A JSON-ready event: ``{event_id, job_id, document_id, stage, type, payload, created_at}``."""
    return {
        "event_id": int(row["event_id"]), "job_id": str(row["job_id"]),
        "document_id": str(row["document_id"]), "stage": row["stage"], "type": row["type"],
        "payload": row["payload"] or {},
        "created_at": row["created_at"].isoformat() if row.get("created_at") else None,
    }


def document_events(
    runtime: Any,
    document_id: UUID | str,
    after_event_id: int = 0,
    *,
    follow: bool = True,
    poll_seconds: float = 0.5,
    timeout_seconds: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield a document's events after ``after_event_id``, oldest first (see :func:`event_dict`).

    With ``follow`` it keeps polling (every ``poll_seconds``) until the
    document's latest job is terminal (``done`` or ``failed``) and every event
    up to then was yielded, or ``timeout_seconds`` passed; without it, it yields
    what is stored now and returns. A client that reconnects passes the last
    ``event_id`` it saw (SSE ``Last-Event-ID``) and misses nothing.

    Blocking (psycopg, ``time.sleep``): run it in a thread (Starlette does so for
    a sync iterator given to ``StreamingResponse``). The caller checks that the
    document belongs to the user; this function does not.
    """
    doc_id = UUID(str(document_id))
    last = int(after_event_id)
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while True:
        with runtime.pool().connection() as conn:
            job = runtime.repo.latest_job_for_document(conn, doc_id)
            rows = runtime.repo.events_after(conn, doc_id, last)
        for row in rows:
            last = int(row["event_id"])
            yield event_dict(row)
        if len(rows) >= 500:
            continue  # a full page: read on before deciding anything
        if not follow or job is None or job.state.value in TERMINAL_STATES:
            return
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(poll_seconds)


def sse_message(event: dict[str, Any]) -> str:
    """One Server-Sent Events message: ``id`` (the event id), ``event`` (its type), ``data`` (JSON)."""
    return f"id: {event['event_id']}\nevent: {event['type']}\ndata: {json.dumps(event, default=str)}\n\n"


def _finished(runtime: Any, document_id: UUID) -> bool:
    with runtime.pool().connection() as conn:
        job = runtime.repo.latest_job_for_document(conn, document_id)
    return job is None or job.state.value in TERMINAL_STATES


def sse_stream(
    runtime: Any,
    document_id: UUID | str,
    last_event_id: int = 0,
    *,
    keepalive_seconds: float = 15.0,
    poll_seconds: float = 0.5,
    max_seconds: float | None = None,
) -> Iterator[str]:
    """The text of an SSE response (``text/event-stream``) for a document's events.

    Yields :func:`sse_message` for each event after ``last_event_id`` (the
    request's ``Last-Event-ID``), a ``: keepalive`` comment after
    ``keepalive_seconds`` without one (so proxies keep the connection), and ends
    when the document's job is terminal or after ``max_seconds``. For FastAPI:
    ``StreamingResponse(sse_stream(rt, doc_id, last_id), media_type="text/event-stream")``.
    """
    doc_id = UUID(str(document_id))
    last = int(last_event_id)
    started = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        for event in document_events(runtime, doc_id, last, poll_seconds=poll_seconds,
                                     timeout_seconds=keepalive_seconds):
            last = event["event_id"]
            yield sse_message(event)
        if _finished(runtime, doc_id):
            return
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            return
        yield ": keepalive\n\n"
