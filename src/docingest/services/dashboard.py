"""What the dashboard's pages show that no other entry point computes: a document's stages
with their durations, retries and lease takeovers (:func:`stage_spans`, from its events), and
the Health page's summary (:func:`summary`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from docingest.domain import STAGES

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
