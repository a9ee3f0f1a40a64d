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

Secrets in text: every handler :func:`configure_logging` installs (and every handler
already on another logger, e.g. uvicorn's) carries a :class:`RedactingFilter`, and the
rendered line passes :func:`redact_text` again (tracebacks included). It replaces by
:data:`REDACTED`: the values of query parameters that carry credentials (``token=``,
``apikey=``, ``key=``, ``X-Amz-Signature=`` ...: a signed URL in uvicorn's access log or
in httpx's request line), ``Authorization``/``apikey`` header values, ``Bearer`` tokens,
JWT-shaped strings (``eyJ...``), URL passwords (``://user:pw@``) and the literal values
registered with :func:`register_secrets` (the runtime registers the configured API keys).

Job outcomes: the worker writes one line per finished job, failure, scheduled retry and
lease takeover on the :data:`JOBS_LOGGER` logger; ``configure_logging(job_lines=True)``
shows them at any level (``docingest worker``, ``serve``), ``job_lines=False`` never
(``ingest``'s progress bar shares the terminal; it shows them with ``-v``).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

JOB_KEYS = ("job_id", "document_id", "user_id", "stage", "attempt_id")
REDACTED_KEYS = frozenset(
    {
        "text",
        "texts",
        "content",
        "contents",
        "markdown",
        "body",
        "chunk",
        "chunks_text",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "authorization",
        "api_key",
        "password",
        "secret",
        "jwt",
        "jwt_secret",
        "signed_url",
        "cookie",
    }
)
JOBS_LOGGER = "docingest.jobs"
REDACTED = "REDACTED"
# Query parameters whose value is a credential (signed URLs, API keys in URLs).
# ``q``/``query``: a search's text is the user's words, kept out of access logs like documents.
_SECRET_PARAM = (
    r"(?:[\w.-]*(?:token|signature|apikey|api_key|api-key|secret|password|credential)[\w.-]*"
    r"|key|sig|jwt|q|query)"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"(?i)([?&;]{_SECRET_PARAM}=)[^&#\s\"'<>;]+"), rf"\g<1>{REDACTED}"),
    (
        re.compile(
            r"(?i)\b((?:proxy-)?authorization|x-api-key|api-key|apikey)(\W{0,3}\s*[:=]\s*\W{0,2})"
            r"((?:bearer|basic|token)\s+)?[^\s\"'&,;}\]]+"
        ),
        rf"\g<1>\g<2>\g<3>{REDACTED}",
    ),
    (re.compile(r"(?i)\bbearer\s+(?!REDACTED)[A-Za-z0-9._~+/=-]+"), f"Bearer {REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){0,2}"), REDACTED),
    (re.compile(r"\b(?:sk|llx)-[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"(://[^:/@\s]+:)[^@/\s]+@"), rf"\g<1>{REDACTED}@"),
)
_secrets: list[str] = []
_secrets_lock = threading.Lock()
QUIET_LOGGERS = (
    "httpx",
    "httpcore",
    "urllib3",
    "sentence_transformers",
    "transformers",
    "psycopg.pool",
    "multipart",
    "filelock",
)


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask the values of sensitive keys (:data:`REDACTED_KEYS`)."""
    for key in event.keys() & REDACTED_KEYS:
        event[key] = "[redacted]"
    return event


def register_secrets(*values: str | None) -> None:
    """Add literal secret values (API keys, service keys) that :func:`redact_text` replaces.

    ``None``, empty values and values shorter than 8 characters (a placeholder, not a
    key) are ignored; registering a value twice is harmless. Process-wide.
    """
    with _secrets_lock:
        for value in values:
            if value and len(value) >= 8 and value not in _secrets:
                _secrets.append(value)
        _secrets.sort(key=len, reverse=True)  # a key containing another is replaced whole


def redact_text(text: str) -> str:
    """``text`` with credentials replaced by :data:`REDACTED` (see the module docstring).

    Idempotent; the text is returned unchanged (same object) when nothing matched.
    """
    for value in _secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """A handler filter that redacts credentials in a record before it is formatted.

    It rewrites, in place: a string message and its ``%`` arguments (each argument, so a
    formatter that unpacks them, as uvicorn's access formatter does, still can; the
    formatted message instead when a secret spans both), a
    structlog event dict (every string value, nested ones too) and the string values of
    ``extra`` fields. It never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.args:
            if isinstance(record.args, Mapping):  # one mapping argument (botocore's headers are not a dict)
                record.args = _redact_value(dict(record.args))
            else:
                record.args = tuple(_redact_value(a) for a in record.args)
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a broken format is logging's to report
                return True
            redacted = redact_text(message)
            if redacted != message:  # a secret spanning the format and its arguments
                record.msg, record.args = redacted, ()
        else:
            record.msg = _redact_value(record.msg)
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRS and isinstance(value, str):
                record.__dict__[key] = redact_text(value)
        return True


class _RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """structlog's formatter whose rendered line (a traceback's text too) is redacted again."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def install_redaction(handlers: Iterable[logging.Handler] | None = None) -> None:
    """Add a :class:`RedactingFilter` to ``handlers`` (default: every handler of every logger
    that exists now, the root's included); a handler that has one is left as it is."""
    if handlers is None:
        loggers = [
            logging.getLogger(),
            *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)),
        ]
        handlers = [h for lg in loggers for h in lg.handlers]
    for handler in handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
        _drop_color_message,
    ]


def _drop_color_message(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Drop uvicorn's ``color_message`` extra: its message again, with terminal colour codes."""
    event.pop("color_message", None)
    return event


def configure_logging(
    level: int | str = logging.INFO,
    *,
    json: bool | None = None,
    stream: TextIO | None = None,
    job_lines: bool | None = None,
) -> None:
    """Configure structlog and the root logger of this process (idempotent: replaces handlers).

    Every handler gets a :class:`RedactingFilter` (those other libraries installed too) and
    renders lines through :func:`redact_text`.

    Args:
        level: the root level (``logging.INFO``, ``"WARNING"``...).
        json: JSON lines (True), console rendering (False), or None: JSON unless
            ``stream`` is a terminal.
        stream: where lines go; standard error by default.
        job_lines: the worker's job outcome lines (:data:`JOBS_LOGGER`): True shows them
            even when ``level`` is above INFO, False hides them, None follows ``level``.
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
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = _RedactingFormatter(
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
    jobs = logging.getLogger(JOBS_LOGGER)
    jobs.setLevel(
        {True: min(logging.INFO, root.level), False: logging.CRITICAL + 1, None: logging.NOTSET}[job_lines]
    )
    install_redaction()


def _configure_passthrough() -> None:
    """Until :func:`configure_logging` runs, hand structlog events to standard logging as
    ``message`` + ``extra``, so a library user's own logging setup decides what is shown
    (structlog's default would print every event to standard output)."""
    if not structlog.is_configured():
        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,
                structlog.contextvars.merge_contextvars,
                redact,
                structlog.stdlib.render_to_log_kwargs,
            ],
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
        "job_id": str(job.job_id),
        "document_id": str(job.document_id),
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
