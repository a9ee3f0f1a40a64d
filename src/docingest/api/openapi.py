"""What ``/openapi.json`` says beyond FastAPI's defaults, so the document is the API's truth.

- :data:`REFUSALS`: the one table of the refusals each kind of route can answer, as error
  classes; a route declares its kinds (``responses=replies("bearer", "resource")``) and
  :func:`replies` turns them into OpenAPI responses, one per status, whose description lists
  each ``error_code`` with its meaning and whose schema is the API's error body
  (``ErrorPublic``; a 422 that can be ``invalid_request`` also ``ValidationErrorPublic``). The
  status and code come from the classes (``http_status``, ``error_code``), never from a copy.
- :data:`LINKS`: OpenAPI links from the operations that return an id to the operations
  that take it (``POST /upload`` -> ``GET /documents/{document_id}``, ``GET /jobs/{job_id}``
  ...), so a client or a stateful tester can follow them (OpenAPI 3.1, "Link Object").
- :func:`install`: the schema's values that depend on the settings (``bytes_len`` at most
  ``MAX_FILE_BYTES``, ``q`` at most ``SEARCH_MAX_QUERY_CHARS`` characters, in ``GET /search`` and ``POST /search``) and the links.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import FastAPI

from docingest import errors as e
from docingest.settings import Settings

#: The refusals of each kind of route. A route's ``responses`` are the union of its kinds'.
REFUSALS: dict[str, tuple[type[e.DocingestError], ...]] = {
    # every route under a bearer token: the token, its parameters, the database behind it
    "bearer": (
        e.Unauthorized,
        e.InvalidRequest,
        e.InvalidValue,
        e.DatabaseUnavailable,
        e.DatabaseNotMigrated,
    ),
    # a route naming one of the user's documents or jobs by id (another user's: not found too)
    "resource": (e.NotFound,),
    # POST /upload
    "upload": (
        e.FileTooLarge,
        e.UnsupportedType,
        e.EmptyFile,
        e.Conflict,
        e.TooManyActiveJobs,
        e.StorageUnavailable,
    ),
    # a route that moves a job on (complete an upload, retry): refused in the wrong state
    "transition": (e.Conflict, e.StorageUnavailable),
    # GET and POST /search: the query's own limit, the filter's values, the query embedder's package
    "search": (e.QueryTooLong, e.InvalidFilter, e.DependencyMissing),
    # the LlamaParse webhook: its signature instead of a token
    "webhook": (e.BadWebhookSignature, e.InvalidRequest, e.NotFound, e.DatabaseUnavailable),
}

#: Response headers a refusal carries, by class (``api/errors.py`` sets them).
_HEADERS: dict[type[e.DocingestError], dict[str, Any]] = {
    e.Unauthorized: {
        "WWW-Authenticate": {
            "description": "the scheme to authenticate with: `Bearer`",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    e.TooManyActiveJobs: {
        "Retry-After": {
            "description": "seconds to wait before asking again",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}

ERROR_REF = "#/components/schemas/ErrorPublic"
VALIDATION_ERROR_REF = "#/components/schemas/ValidationErrorPublic"


def replies(*kinds: str) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses`` for routes of ``kinds`` (keys of :data:`REFUSALS`): per status,
    a description listing each ``error_code`` (and its meaning) and the error body's schema.

    Raises:
        KeyError: an unknown kind.
    """
    by_status: dict[int, list[type[e.DocingestError]]] = {}
    for kind in kinds:
        for cls in REFUSALS[kind]:
            classes = by_status.setdefault(cls.http_status, [])
            if cls not in classes:
                classes.append(cls)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, classes in sorted(by_status.items()):
        if classes == [e.InvalidRequest]:
            schema: dict[str, Any] = {"$ref": VALIDATION_ERROR_REF}
        elif e.InvalidRequest in classes:  # invalid_request has ``errors``; the others do not
            schema = {"anyOf": [{"$ref": VALIDATION_ERROR_REF}, {"$ref": ERROR_REF}]}
        else:
            schema = {"$ref": ERROR_REF}
        headers: dict[str, Any] = {}
        for cls in classes:
            headers.update(_HEADERS.get(cls, {}))
        reply: dict[str, Any] = {
            "description": "; ".join(f"`{cls.error_code}`: {cls.meaning}" for cls in classes),
            "content": {"application/json": {"schema": schema}},
        }
        if headers:
            reply["headers"] = headers
        responses[status] = reply
    return responses


#: ``(from, to, parameters)``: a link on the success replies of operation ``from`` (``"METHOD
#: /path"`` under ``/api/v2``) to operation ``to``, whose parameters take the values of the
#: runtime expressions (OpenAPI 3.1, "Link Object" and "Runtime Expressions"). Each link is named
#: after the ``operationId`` it leads to.
_DOCUMENT = {"document_id": "$response.body#/document_id"}
_JOB = {"job_id": "$response.body#/job_id"}
LINKS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("POST /upload", "GET /documents/{document_id}", _DOCUMENT),
    ("POST /upload", "GET /jobs/{job_id}", _JOB),
    ("POST /upload", "POST /jobs/{job_id}/retry", _JOB),
    ("POST /upload", "POST /upload/{job_id}/complete", _JOB),
    ("POST /upload", "DELETE /documents/{document_id}", _DOCUMENT),
    ("GET /documents/{document_id}", "GET /jobs/{job_id}", _JOB),
    ("GET /documents/{document_id}", "DELETE /documents/{document_id}", _DOCUMENT),
    ("GET /jobs/{job_id}", "GET /documents/{document_id}", _DOCUMENT),
    ("GET /jobs/{job_id}", "POST /jobs/{job_id}/retry", _JOB),
    ("POST /jobs/{job_id}/retry", "GET /jobs/{job_id}", _JOB),
    ("POST /upload/{job_id}/complete", "GET /jobs/{job_id}", _JOB),
    ("POST /upload/{job_id}/complete", "GET /documents/{document_id}", _DOCUMENT),
)


def _operation(schema: dict[str, Any], prefix: str, label: str) -> dict[str, Any]:
    method, path = label.split(" ", 1)
    operation: dict[str, Any] = schema["paths"][prefix + path][method.lower()]
    return operation


def _add_links(schema: dict[str, Any], prefix: str) -> None:
    for source, target, parameters in LINKS:
        operation_id = _operation(schema, prefix, target)["operationId"]
        for status, reply in _operation(schema, prefix, source)["responses"].items():
            if status.startswith("2"):
                reply.setdefault("links", {})[operation_id] = {
                    "operationId": operation_id,
                    "parameters": dict(parameters),
                    "description": f"{target} with the {', '.join(parameters)} of this reply",
                }


def _add_models(schema: dict[str, Any]) -> None:
    """Put the models referred to by hand in the components: ``ErrorPublic`` and
    ``ValidationErrorPublic`` (:func:`replies`), ``DocumentEventPublic`` and
    ``DocumentDeletedPublic``, ``DocumentsChangedPublic`` (the event streams' data), in place of FastAPI's ``HTTPValidationError`` (which no reply has)."""
    from docingest.api.schemas import (
        DocumentDeletedPublic,
        DocumentEventPublic,
        DocumentsChangedPublic,
        ErrorPublic,
        ValidationErrorPublic,
    )

    components = schema.setdefault("components", {}).setdefault("schemas", {})
    models = (
        ErrorPublic,
        ValidationErrorPublic,
        DocumentEventPublic,
        DocumentDeletedPublic,
        DocumentsChangedPublic,
    )
    for model in models:
        definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(definition.pop("$defs", {}))
        components[model.__name__] = definition
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)


def _escape(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


@functools.cache
def filename_pattern() -> str:
    """What ``filename`` must hold (a regular expression, searched): a displayable character
    (printable, not a space; Python's ``str.isprintable``) other than ``.`` in the name's last
    path segment, which is what :func:`~docingest.stages.metadata.display_filename` keeps.
    (A last segment of dots and spaces alone, e.g. ``...``, is also kept; the pattern refuses it.)"""
    ranges: list[list[int]] = []
    for code in range(0x110000):
        ch = chr(code)
        if ch.isprintable() and ch not in " ./\\":
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    members = "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in ranges)
    return f"[{members}][^/\\\\]*$"


def _add_limits(schema: dict[str, Any], settings: Settings, prefix: str) -> None:
    """The limits the service applies beyond the models: ``bytes_len`` from 1 (0: 422
    ``empty_file``) to ``MAX_FILE_BYTES`` (above: 413 ``file_too_large``), ``q`` up to
    ``SEARCH_MAX_QUERY_CHARS`` characters (above: 422 ``query_too_long``)."""
    upload = schema["components"]["schemas"]["UploadCreate"]["properties"]["bytes_len"]
    upload["minimum"] = 1  # the model lets 0 through for the service to answer 422 empty_file
    upload["maximum"] = settings.max_file_bytes
    schema["components"]["schemas"]["UploadCreate"]["properties"]["filename"]["pattern"] = filename_pattern()
    for parameter in _operation(schema, prefix, "GET /search")["parameters"]:
        if parameter["name"] == "q":
            parameter["schema"]["maxLength"] = settings.search_max_query_chars
    schema["components"]["schemas"]["SearchCreate"]["properties"]["q"]["maxLength"] = (
        settings.search_max_query_chars
    )


def install(app: FastAPI, settings: Settings, *, prefix: str) -> None:
    """Make ``app.openapi()`` return the document with the error models, the limits of
    ``settings`` and :data:`LINKS` (routes under ``prefix``); built once, on first request."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _add_models(schema)
            _add_limits(schema, settings, prefix)
            _add_links(schema, prefix)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
