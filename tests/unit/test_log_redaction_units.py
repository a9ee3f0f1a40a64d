"""The logging filter and formatter that keep tokens, JWTs and keys out of every log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Mapping

import pytest
import structlog

from docingest.observability import logs

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJlLXZhbHVl"
KEY = "unit-registered-key-0123456789"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    # As a fresh process has them: an earlier test in this process may have run uvicorn with its
    # own logging config (uvicorn.access with a handler of its own, not propagating) or a
    # dictConfig that disabled existing loggers.
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error", "httpx", "t"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate, logger.disabled = True, False
        logger.setLevel(logging.NOTSET)
    logs.register_secrets(KEY)
    logs.configure_logging(logging.DEBUG, json=True, stream=out)
    yield out
    logging.getLogger().handlers.clear()
    logging.getLogger().setLevel(logging.WARNING)  # the root's default: later tests log as usual
    logging.getLogger(logs.JOBS_LOGGER).setLevel(logging.NOTSET)
    structlog.reset_defaults()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"PUT /storage/v1/object/upload/sign/documents/u/a.pdf?token={JWT} HTTP/1.1",
            "PUT /storage/v1/object/upload/sign/documents/u/a.pdf?token=REDACTED HTTP/1.1",
        ),
        (
            "GET /x?a=1&apikey=abc&X-Amz-Signature=f00&key=k&keep=yes",
            "GET /x?a=1&apikey=REDACTED&X-Amz-Signature=REDACTED&key=REDACTED&keep=yes",
        ),
        (
            "{'authorization': 'Bearer abc.def', 'apikey': 'sb-123', 'accept': '*/*'}",
            "{'authorization': 'Bearer REDACTED', 'apikey': 'REDACTED', 'accept': '*/*'}",
        ),
        ("Authorization: Basic dXNlcjpwdw==", "Authorization: Basic REDACTED"),
        (f"jwt {JWT} in a message", "jwt REDACTED in a message"),
        (f"key {KEY}!", "key REDACTED!"),
        ("postgresql://app:pw@db:5432/x", "postgresql://app:REDACTED@db:5432/x"),
        ("monkey=banana&keystone=1 nothing secret", "monkey=banana&keystone=1 nothing secret"),
        (
            '"GET /api/v2/search?q=what+is+mvcc%3f&k=5 HTTP/1.1" 200',
            '"GET /api/v2/search?q=REDACTED&k=5 HTTP/1.1" 200',
        ),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    logs.register_secrets(KEY)
    assert logs.redact_text(text) == expected
    assert logs.redact_text(expected) == expected  # idempotent


def test_every_kind_of_record_is_redacted(stream: io.StringIO) -> None:
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "PUT", f"/u?token={JWT}", "1.1", 200)
    logging.getLogger("httpx").warning("HTTP Request: %s %s", "GET", f"http://h/x?apikey={KEY}")
    logging.getLogger("t").warning("headers", extra={"headers": f"Authorization: Bearer {JWT}"})
    logs.get_logger("t").warning("structlog", detail={"nested": [f"Bearer {KEY}"]}, url=f"/x?key={KEY}")
    try:
        raise RuntimeError(f"upload to /s?token={JWT} failed")
    except RuntimeError:
        logging.getLogger("t").exception("with a traceback")
    text = stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 5 and "REDACTED" in text
    assert JWT not in text and KEY not in text and "eyJ" not in text
    assert lines[0]["event"] == '127.0.0.1:5 - "PUT /u?token=REDACTED HTTP/1.1" 200'


def test_a_handler_installed_by_another_library_gets_the_filter(stream: io.StringIO) -> None:
    own = io.StringIO()
    handler = logging.StreamHandler(own)
    other = logging.getLogger("some.library")
    other.addHandler(handler)
    other.propagate = False
    try:
        logs.install_redaction()
        other.warning("GET /x?token=%s", JWT)
    finally:
        other.removeHandler(handler)
        other.propagate = True
    assert own.getvalue() == "GET /x?token=REDACTED\n"


class _Headers(Mapping[str, str]):
    """A mapping that is not a dict, as botocore's and urllib3's HTTP headers are."""

    def __init__(self, **items: str) -> None:
        self._items = items

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def test_a_record_whose_one_argument_is_a_mapping_is_formatted_and_redacted(stream: io.StringIO) -> None:
    # botocore: logger.debug("Response headers: %r", headers), headers an HTTPHeaders
    logging.getLogger("t").warning(
        "Response headers: %(authorization)s / %(server)s",
        _Headers(authorization=f"Bearer {JWT}", server="moto"),
    )
    logging.getLogger("t").warning("Response headers: %r", _Headers(server="moto", etag="x"))
    lines = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert lines == [
        "Response headers: Bearer REDACTED / moto",
        "Response headers: {'server': 'moto', 'etag': 'x'}",
    ]
