"""One place that turns exceptions into ``{"error_code", "message"}`` replies with a status.

A :class:`~docingest.errors.DocingestError` is answered with its own ``http_status`` and
``error_code`` (the classes carry them; there is no table here), its message scrubbed of
server paths. Starlette's ``HTTPException`` (an unknown path: 404, a wrong method: 405) is
answered ``not_found`` / ``method_not_allowed`` (another status: the code of the first
``RequestError`` class with that ``http_status``), never ``{"detail": ...}``. FastAPI's own validation errors (``{"detail": [...]}``) are answered in the same shape:
``422 invalid_request`` whose message names each field and its problem, the checks listed
in ``errors``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from docingest import errors as e

log = logging.getLogger("docingest.api")

_MAX_LISTED = 5  # fields named in the message; ``errors`` has them all


def _reply(
    status: int,
    code: str,
    message: str,
    retry_after: float | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    headers = {"Retry-After": str(int(retry_after + 0.999))} if retry_after else None
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="docingest"'}
    body = {"error_code": code, "message": message, **(extra or {})}
    return JSONResponse(body, status_code=status, headers=headers)


async def docingest_error(request: Request, exc: Exception) -> JSONResponse:
    """A ``DocingestError`` as ``{"error_code", "message"}`` with its ``http_status`` (plus
    ``errors`` for ``invalid_request``, ``Retry-After`` when it has ``retry_after``)."""
    assert isinstance(exc, e.DocingestError)
    status = exc.http_status
    if status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    message = exc.message if exc.scrub else e.scrub_paths(exc.message)
    extra = {"errors": exc.errors} if isinstance(exc, e.InvalidRequest) else None
    return _reply(status, exc.error_code, message, exc.retry_after, extra)


def _field(loc: Sequence[Any]) -> tuple[str, str]:
    """``('body', 'sha256')`` -> ``('sha256', 'body')``; a whole-body error names ``body``."""
    where = str(loc[0]) if loc else "request"
    path = ".".join(str(p) for p in loc[1:])
    return (path or where), where


def invalid_request(details: Iterable[dict[str, Any]]) -> e.InvalidRequest:
    """Pydantic/FastAPI validation errors as one ``InvalidRequest``.

    The message names each field, where it was (body, query, path, header) and what is
    wrong with it, e.g. ``invalid request: sha256 (body): String should match pattern
    '^[0-9a-fA-F]{64}$'``. The submitted values are not echoed back.
    """
    errors = []
    for d in details:
        loc: Sequence[Any] = d.get("loc") or ()
        field, where = _field(loc)
        problem = str(d.get("msg", "invalid"))
        if d.get("type") == "json_invalid":  # loc is ("body", character offset), not a field
            field = where = "body"
            if len(loc) > 1 and isinstance(loc[1], int):
                problem = f"{problem} at character {loc[1]}"
        errors.append({"field": field, "in": where, "problem": problem, "type": str(d.get("type", ""))})
    listed = "; ".join(f"{x['field']} ({x['in']}): {x['problem']}" for x in errors[:_MAX_LISTED])
    more = f"; and {len(errors) - _MAX_LISTED} more" if len(errors) > _MAX_LISTED else ""
    return e.InvalidRequest(
        f"invalid request: {listed or 'the request does not match the schema'}{more}", errors=errors
    )


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return await docingest_error(request, invalid_request(exc.errors()))


_HTTP_MESSAGES = {404: "no such resource: {method} {path}", 405: "{method} is not allowed on {path}"}


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette/FastAPI ``HTTPException`` (routing's 404 and 405) as ``{error_code, message}``."""
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status >= 500:
        code = e.InternalError.error_code
    else:
        code = e.request_error_for_status(status).error_code
    if status == 400 and exc.__cause__ is not None:  # FastAPI could not read the body (e.g. not UTF-8)
        problem = f"the body cannot be read as JSON ({type(exc.__cause__).__name__})"
        return await docingest_error(
            request,
            e.InvalidRequest(
                f"invalid request: body (body): {problem}",
                errors=[{"field": "body", "in": "body", "problem": problem, "type": "json_invalid"}],
            ),
        )
    template = _HTTP_MESSAGES.get(status)
    if template is not None:
        message = template.format(method=request.method, path=request.url.path)
    else:
        message = exc.detail if isinstance(exc.detail, str) else "the request was refused"
    reply = _reply(status, code, message)
    for name, value in (exc.headers or {}).items():  # e.g. ``Allow`` on a 405
        reply.headers[name] = value
    if status == 405:
        reply.headers["Allow"] = ", ".join(allowed_methods(request))
    return reply


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (Starlette's own 405 names only the
    first route matching the path, e.g. ``GET`` where ``DELETE`` is another route's)."""
    routes = request.app.router.routes
    return sorted(
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    )


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, psycopg.DataError):  # e.g. a value PostgreSQL cannot store
        err: e.RequestError = e.InvalidValue(f"a value cannot be stored: {exc.diag.message_primary or exc}")
    else:
        log.exception("database error on %s %s", request.method, request.url.path)
        err = e.DatabaseUnavailable("the database did not answer; retry")
    return _reply(err.http_status, err.error_code, err.message)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app`` (``api/openapi.py`` describes their replies)."""
    app.add_exception_handler(e.DocingestError, docingest_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(psycopg.Error, database_error)
