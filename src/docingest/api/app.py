"""``create_app(runtime)``: the FastAPI application, and ``create_storage_app`` for the storage
service alone. Nothing is built at import time: settings, pool and storage come from the runtime."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from docingest.api import errors, openapi, web
from docingest.api.public_url import RequestHostBaseUrl, follows_loopback_host, uses_request_host
from docingest.api.routes import auth, documents, events, health, jobs, search, summary, upload, webhooks
from docingest.api.routes.storage import storage_error_body, storage_error_handler, storage_router
from docingest.api.storage_service import OnStored, StorageService
from docingest.errors import StorageError, StorageMethodNotAllowed, StorageRouteNotFound
from docingest.providers.storage.local import LocalStorage
from docingest.providers.storage.signing import UrlSigner
from docingest.runtime import Runtime
from docingest.services.documents import UploadSweeper
from docingest.settings import Settings

API_PREFIX = "/api/v2"


def operation_id(route: APIRoute) -> str:
    """A route's ``operationId`` in ``/openapi.json``: its function's name (``get_document``),
    which the document's links name too."""
    return route.name


def _storage_service(
    settings: Settings, storage: LocalStorage, on_stored: OnStored | None = None
) -> StorageService:
    return StorageService(
        storage,
        signer=UrlSigner(settings.jwt_secret),
        jwt_secret=settings.jwt_secret,
        max_bytes=settings.max_file_bytes,
        upload_ttl_seconds=settings.upload_url_ttl_seconds,
        on_stored=on_stored,
    )


#: What a browser page of another origin may send (CORS): the API's and the storage service's
#: methods, and the headers the dashboard and Supabase's clients set.
CORS_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]
CORS_HEADERS = ["Authorization", "Content-Type", "x-upsert", "Last-Event-ID", "apikey", "cache-control"]
#: Reply headers such a page may read.
CORS_EXPOSE = ["Retry-After", "Content-Disposition", "Location", "WWW-Authenticate"]


def install_cors(app: FastAPI, settings: Settings) -> None:
    """``CORSMiddleware`` for ``UPLOAD_PIPELINE_CORS_ORIGINS`` (nothing when it is empty): the
    outermost layer, so refusals carry the CORS headers too. No credentials (cookies) are
    allowed: the API authenticates by the ``Authorization`` header."""
    origins = settings.cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSE,
            allow_credentials=False,
            max_age=600,
        )


def create_app(rt: Runtime, *, sweep: bool = True) -> FastAPI:
    """The API over ``rt``: routes under ``/api/v2``; with local storage, the storage service
    under ``/storage/v1`` (signed URLs for the host each client called when the API listens
    on a non-loopback address without PUBLIC_URL, for a loopback ``Host`` of its port when it
    listens on a loopback one: ``api/public_url.py``); a background sweep
    of uploads that never arrived (``sweep``); CORS for ``CORS_ORIGINS`` (:func:`install_cors`).

    The runtime is not closed by the app: its owner (``docingest serve``, a test) closes it.
    """
    settings = rt.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt.pool()  # connect (and migrate the embedded database) before the first request
        sweeper = None
        if sweep:
            sweeper = UploadSweeper(rt.documents, settings.upload_sweep_seconds)
            sweeper.start()
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.stop()

    app = FastAPI(
        title="docingest",
        version="2.0.0",
        lifespan=lifespan,
        description="Document ingestion for retrieval-augmented generation: upload, track, search.",
        generate_unique_id_function=operation_id,
    )
    app.state.runtime = rt
    # Set when the server begins to shut down (cli/servers.py's server sets it on SIGTERM/SIGINT):
    # the event streams end at once instead of holding the graceful shutdown open.
    app.state.stopping = threading.Event()
    errors.install(app)
    openapi.install(app, settings, prefix=API_PREFIX)
    for module in (upload, documents, events, jobs, search, summary):  # responses: replies("bearer", ...)
        app.include_router(module.router, prefix=API_PREFIX)
    if settings.environment == "development":  # elsewhere the route does not exist, for any method
        app.include_router(auth.router, prefix=API_PREFIX)  # no bearer token: the local user
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(health.router, include_in_schema=False)  # also at the root, for probes
    app.include_router(webhooks.router)  # its own HMAC header, no bearer token
    if settings.storage_backend == "local":
        app.include_router(
            storage_router(_storage_service(settings, rt.local_storage, rt.documents.on_stored))
        )
        app.add_exception_handler(StorageError, storage_error_handler)
        if uses_request_host(settings):  # no PUBLIC_URL, not loopback: the host the client called
            app.add_middleware(RequestHostBaseUrl, trust_forwarded=settings.trust_forwarded)
        elif follows_loopback_host(settings):  # localhost or 127.0.0.1: the name the page used
            app.add_middleware(RequestHostBaseUrl, trust_forwarded=False, loopback_only=True)
    web.install(app, settings)  # the dashboard: / and /static/ (api/web.py)
    install_cors(app, settings)
    return app


def create_storage_app(settings: Settings) -> FastAPI:
    """The local storage service alone (``docingest storage``): Supabase Storage's contract,
    with CORS for ``CORS_ORIGINS`` (a page of another origin PUTs to its signed URLs)."""
    storage = LocalStorage(settings.storage_dir, bucket=settings.storage_bucket)
    app = FastAPI(title="docingest storage", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(storage_router(_storage_service(settings, storage)))
    app.add_exception_handler(StorageError, storage_error_handler)

    async def not_storage(request: Request, exc: Exception) -> Response:
        """Outside ``/storage/v1`` too, Supabase's error body (``/health`` aside)."""
        assert isinstance(exc, StarletteHTTPException)
        err: StorageError = StorageRouteNotFound(f"Route {request.method}:{request.url.path} not found")
        if exc.status_code == 405:
            err = StorageMethodNotAllowed(f"Route {request.method}:{request.url.path} not allowed")
        return storage_error_body(err)

    app.add_exception_handler(StarletteHTTPException, not_storage)

    @app.get("/health")
    def storage_health() -> dict[str, str]:
        return {"status": "ok"}

    install_cors(app, settings)
    return app
