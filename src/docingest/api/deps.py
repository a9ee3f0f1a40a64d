"""FastAPI dependencies as ``Annotated`` aliases: a route's signature says what it needs.

They are ``async def`` because none of them blocks (the JWT check is a few microseconds of
CPU): FastAPI would run a plain ``def`` dependency in the thread pool, one hop per request each.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from docingest.api.auth import verify_user_token_expiry
from docingest.errors import Unauthorized
from docingest.runtime import Runtime
from docingest.services.documents import DocumentService
from docingest.services.search import Searcher
from docingest.settings import Settings

# auto_error=False: a missing header is our 401 (not FastAPI's 403); declared for OpenAPI.
_bearer = HTTPBearer(auto_error=False, description="HS256 JWT; `sub` is the user id")


async def get_runtime(request: Request) -> Runtime:
    """The runtime ``create_app`` was given."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(rt: RuntimeDep) -> Settings:
    """The runtime's settings."""
    return rt.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_stopping(request: Request) -> threading.Event:
    """Set once the server begins to shut down (``create_app``'s ``app.state.stopping``): long
    responses (the event streams) end when it is."""
    stopping: threading.Event = request.app.state.stopping
    return stopping


StoppingDep = Annotated[threading.Event, Depends(get_stopping)]


@dataclass(frozen=True)
class BearerUser:
    """The request's valid bearer token: its user id (``sub``) and expiry (``exp``, Unix
    seconds; a long response such as an event stream ends by then)."""

    user_id: str
    expires_at: float


async def get_bearer_user(
    rt: RuntimeDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> BearerUser:
    """The user id and expiry of the request's bearer token (verified once per request:
    FastAPI caches a dependency within a request).

    Raises:
        Unauthorized: no token, or one that is not valid now (answered 401).
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing Authorization: Bearer <token>")
    user_id, expires_at = verify_user_token_expiry(
        credentials.credentials, rt.settings.jwt_secret, audience=rt.settings.jwt_audience
    )
    return BearerUser(user_id, expires_at)


BearerUserDep = Annotated[BearerUser, Depends(get_bearer_user)]


async def get_current_user(bearer: BearerUserDep) -> str:
    """The user id (``sub``) of the request's bearer token.

    Raises:
        Unauthorized: no token, or one that is not valid now (answered 401).
    """
    return bearer.user_id


CurrentUser = Annotated[str, Depends(get_current_user)]


def stream_seconds(settings: Settings, bearer: BearerUser) -> float:
    """How long an event stream of this request may last (seconds): ``SSE_MAX_SECONDS``, or
    less so that it ends when the token expires (the client's reconnect then gets the 401
    that tells it to sign in again); at least 0.1."""
    return max(0.1, min(float(settings.sse_max_seconds), bearer.expires_at - time.time()))


async def get_documents(rt: RuntimeDep) -> DocumentService:
    """The runtime's documents service."""
    return rt.documents


DocumentsDep = Annotated[DocumentService, Depends(get_documents)]


async def get_searcher(rt: RuntimeDep) -> Searcher:
    """A searcher whose queries run scoped to the request's user (row security)."""
    return rt.searcher(row_security=True)


SearcherDep = Annotated[Searcher, Depends(get_searcher)]
