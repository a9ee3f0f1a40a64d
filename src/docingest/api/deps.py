"""FastAPI dependencies as ``Annotated`` aliases: a route's signature says what it needs.

They are ``async def`` because none of them blocks (the JWT check is a few microseconds of
CPU): FastAPI would run a plain ``def`` dependency in the thread pool, one hop per request each.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from docingest.api.auth import verify_user_token
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


async def get_current_user(
    rt: RuntimeDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The user id (``sub``) of the request's bearer token.

    Raises:
        Unauthorized: no token, or one that is not valid now (answered 401).
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing Authorization: Bearer <token>")
    return verify_user_token(
        credentials.credentials, rt.settings.jwt_secret, audience=rt.settings.jwt_audience
    )


CurrentUser = Annotated[str, Depends(get_current_user)]


async def get_documents(rt: RuntimeDep) -> DocumentService:
    """The runtime's documents service."""
    return rt.documents


DocumentsDep = Annotated[DocumentService, Depends(get_documents)]


async def get_searcher(rt: RuntimeDep) -> Searcher:
    """A searcher whose queries run scoped to the request's user (row security)."""
    return rt.searcher(row_security=True)


SearcherDep = Annotated[Searcher, Depends(get_searcher)]
