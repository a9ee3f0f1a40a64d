"""Structured logging: structlog in front of the standard library, configured in one place.

Every line is one event with key/value fields. On a terminal it is rendered for
people (``ConsoleRenderer``); otherwise (a service, a pipe, a file) as one JSON
object per line: ``{"event", "level", "logger", "timestamp" (ISO 8601, UTC), ...}``.

Lines written with the standard ``logging`` module (docingest's older modules,
libraries) pass through the same processors, so they are JSON too and carry the
same context.

Job context: the worker binds ``job_id``, ``document_id``, ``user_id``, ``stage``
and ``attempt_id`` in a context variable (:func:`bind_job`) for the time it holds
a job, so every line the job causes, in the worker or in a stage handler on that
thread, carries them. Values bound under :data:`REDACTED_KEYS` (file contents,
texts, tokens, secrets, signed URLs) are replaced by ``"[redacted]"``; never put
document text in an event's message.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

JOB_KEYS = ("job_id", "document_id", "user_id", "stage", "attempt_id")
REDACTED_KEYS = frozenset({
    "text", "texts", "content", "contents", "markdown", "body", "chunk", "chunks_text",
    "token", "access_token", "refresh_token", "id_token", "authorization", "api_key",
    "password", "secret", "jwt", "jwt_secret", "signed_url", "cookie",
})
QUIET_LOGGERS = ("httpx", "httpcore", "urllib3", "sentence_transformers", "transformers",
                 "psycopg.pool", "multipart", "filelock")


def redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask the values of sensitive keys (:data:`REDACTED_KEYS`)."""
    for key in event.keys() & REDACTED_KEYS:
        event[key] = "[redacted]"
    return event


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]


def configure_logging(
    level: int | str = logging.INFO, *, json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Configure structlog and the root logger of this process (idempotent: replaces handlers).

    Args:
        level: the root level (``logging.INFO``, ``"WARNING"``...).
        json: JSON lines (True), console rendering (False), or None: JSON unless
            ``stream`` is a terminal.
        stream: where lines go; standard error by default.
    """
    stream = stream or sys.stderr
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer(default=str)
        exc: list[Any] = [structlog.processors.dict_tracebacks]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        exc = []
    shared = _shared_processors()
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exc, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def _configure_passthrough() -> None:
    """Until :func:`configure_logging` runs, hand structlog events to standard logging as
    ``message`` + ``extra``, so a library user's own logging setup decides what is shown
    (structlog's default would print every event to standard output)."""
    if not structlog.is_configured():
        structlog.configure(
            processors=[structlog.stdlib.filter_by_level, structlog.contextvars.merge_contextvars,
                        redact, structlog.stdlib.render_to_log_kwargs],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=False,
        )


def get_logger(name: str) -> Any:
    """A structlog logger named ``name`` writing through the standard ``logging`` module."""
    _configure_passthrough()
    return structlog.stdlib.get_logger(name)


def bind_job(job: Any, *, user_id: str | None = None) -> None:
    """Bind a job's ids (and ``user_id`` once known) to every line of this thread/task.

    ``job`` is a ``domain.Job``; rebinding after a transition updates ``stage``.
    """
    values: dict[str, Any] = {
        "job_id": str(job.job_id), "document_id": str(job.document_id),
        "stage": getattr(job.stage, "value", job.stage),
    }
    if job.attempt_id:  # a job let go (queued, done) has none: keep the attempt that did the work
        values["attempt_id"] = str(job.attempt_id)
    if user_id is not None:
        values["user_id"] = user_id
    structlog.contextvars.bind_contextvars(**values)


def unbind_job() -> None:
    """Forget the job context of this thread/task (the worker calls it when it lets a job go)."""
    structlog.contextvars.unbind_contextvars(*JOB_KEYS)
