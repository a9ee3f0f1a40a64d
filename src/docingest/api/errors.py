"""One place that turns exceptions into ``{"error_code", "message"}`` replies with a status."""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from docingest import errors as e

log = logging.getLogger("docingest.api")

#: Status of the document errors the API can meet while answering a request.
STATUS: dict[type[e.DocingestError], int] = {
    e.FileTooLarge: 413,
    e.UnsupportedType: 415,
    e.ContentTypeMismatch: 415,
    e.EmptyFile: 422,
    e.StorageUnavailable: 503,
}


def _reply(status: int, code: str, message: str, retry_after: float | None = None) -> JSONResponse:
    headers = {"Retry-After": str(int(retry_after + 0.999))} if retry_after else None
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="docingest"'}
    return JSONResponse({"error_code": code, "message": message}, status_code=status, headers=headers)


async def docingest_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.DocingestError)
    if isinstance(exc, e.RequestError):
        status = exc.status_code
    else:
        status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 500 if exc.retryable else 400)
    if status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    return _reply(status, exc.error_code, exc.message, exc.retry_after)


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, psycopg.DataError):  # e.g. a value PostgreSQL cannot store
        return _reply(422, "invalid_value", f"a value cannot be stored: {exc.diag.message_primary or exc}")
    log.exception("database error on %s %s", request.method, request.url.path)
    return _reply(503, "database_unavailable", "the database did not answer; retry")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(e.DocingestError, docingest_error)
    app.add_exception_handler(psycopg.Error, database_error)

