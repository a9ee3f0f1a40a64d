"""The composition root: settings -> pool, repository, storage, providers, stage handlers,
worker and services. One path for the CLI, the API and the tests; it builds, it does not serve."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from docingest.db.database import Database
from docingest.db.migrate import apply_migrations, embedding_column_dimensions
from docingest.db.pool import database_url, make_pool
from docingest.db.repository import Repository
from docingest.domain import Generation, Stage
from docingest.errors import EmbeddingDimensionMismatch, InternalInvariantError, register_private_root
from docingest.observability import logs
from docingest.providers.chunking.chunker import Chunker, load_tokenizer
from docingest.providers.embedding import Embedder, make_embedder, tokenizer_path
from docingest.providers.parsing.base import Parser
from docingest.providers.storage import Storage, make_storage
from docingest.providers.storage.local import LocalStorage
from docingest.services.documents import DocumentService, UploadPolicy
from docingest.services.search import SearchConfig, Searcher
from docingest.settings import CHUNK_SPECIAL_TOKENS, Settings
from docingest.stages import Collaborators, StageHandler, build_handlers, build_reembed_handlers

if TYPE_CHECKING:
    from docingest.providers.parsing.llamaparse import LlamaParseClient
    from docingest.providers.ratelimit import SharedRateLimiter
    from docingest.worker.loop import BaseWorker

#: How long :meth:`Runtime.generation` retries a lost database connection, in seconds.
GENERATION_RETRY_SECONDS = 60.0


class Runtime:
    """Lazily built collaborators of one process; ``close()`` releases them.

    Args:
        settings: the process's settings.
        migrate: apply migrations on first database use (always for the embedded database).
    """

    def __init__(self, settings: Settings, *, migrate: bool | None = None) -> None:
        self.settings = settings
        register_private_root(settings.data_dir)  # error messages never show server paths
        register_private_root(settings.storage_dir)
        logs.register_secrets(  # no log line shows them (logs.redact_text)
            settings.openai_api_key,
            settings.llamaparse_api_key,
            settings.storage_service_key,
            settings.storage_secret_access_key,
            settings.webhook_secret,
            settings.jwt_secret,
        )
        self.migrate = migrate if migrate is not None else not settings.database_url
        self.repo = Repository()
        #: connections of :meth:`pool` (built on first use) and user-scoped transactions
        self.database = Database(self.pool, self.repo)
        self._lock = threading.Lock()
        self._embedder: Embedder | None = None
        self._query_embedder: Embedder | None = None
        self._generation: Generation | None = None
        self._generation_embedders: dict[tuple[str, int], Embedder] = {}
        self._pool: ConnectionPool | None = None
        self._parsers: list[Any] = []  # sandboxes whose idle children close() stops
        self._limiters: list[Any] = []  # rate limiters whose backoff listeners close() stops

    @cached_property
    def url(self) -> str:
        url = database_url(self.settings)
        if self.migrate:
            self.apply_migrations()
        return url

    def apply_migrations(self) -> list[str]:
        """Apply pending migrations; returns the versions applied."""
        with psycopg.connect(database_url(self.settings), row_factory=dict_row) as conn:
            applied = apply_migrations(conn, embedding_dimensions=self.settings.embedding_dimensions)
            conn.commit()
        return applied

    def pool(self, max_size: int | None = None) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                self._pool = make_pool(self.url, max_size=max_size or self.settings.db_pool_max_size)
            return self._pool

    @cached_property
    def storage(self) -> Storage:
        """The configured object store (``providers.storage.BACKENDS``), fault-wrapped if asked."""
        from docingest.testing.faults import with_storage_faults

        return with_storage_faults(make_storage(self.settings), self.settings)

    @cached_property
    def local_storage(self) -> LocalStorage:
        """The local backend itself, without fault injection: what the local storage service
        (``/storage/v1``) serves.

        Raises:
            InternalInvariantError: ``STORAGE_BACKEND`` is not ``local`` (a caller's bug).
        """
        from docingest.testing.faults import FaultyStorage

        storage = self.storage
        inner = storage.inner if isinstance(storage, FaultyStorage) else storage
        if not isinstance(inner, LocalStorage):
            raise InternalInvariantError(
                f"bug: the local storage service asked for with STORAGE_BACKEND={self.settings.storage_backend}"
            )
        return inner

    def embedder(self) -> Embedder:
        """The documents' embedder (``providers.embedding.PROVIDERS``), fault-wrapped if asked;
        built once. The OpenAI provider shares this process's PostgreSQL rate limiter."""
        from docingest.testing.faults import with_embedder_faults

        limiter = None  # built outside the lock: it needs the pool, which takes the lock too
        if self._embedder is None and self.settings.embedding_provider == "openai":
            limiter = self.rate_limiter("openai")
        with self._lock:
            if self._embedder is None:
                self._embedder = with_embedder_faults(
                    make_embedder(self.settings, limiter=limiter, client_tag=self.client_tag), self.settings
                )
            return self._embedder

    def query_embedder(self) -> Embedder:
        """The embedder of search queries: :meth:`embedder` itself, except that the local
        model's ``auto`` backend may run queries on another backend than documents
        (``embedding.local.resolve_backend``: one short text loads faster on ONNX Runtime)."""
        from docingest.testing.faults import with_embedder_faults

        if self._query_embedder is not None:  # decided once: every search asks
            return self._query_embedder
        s = self.settings
        same = s.embedding_provider != "local"
        if not same:
            from docingest.providers.embedding.local import resolve_backend

            same = resolve_backend(s.embedding_backend, "queries") == resolve_backend(
                s.embedding_backend, "documents"
            )
        embedder = self.embedder() if same else None
        with self._lock:
            if self._query_embedder is None:
                self._query_embedder = embedder or with_embedder_faults(
                    make_embedder(s, purpose="queries"), s
                )
            return self._query_embedder

    def generation(self) -> Generation:
        """This process's embedding generation (its documents' embedder's model and dimensions,
        with ``EMBEDDING_PROVIDER``), recorded in ``embedding_generations`` with its HNSW index
        on first use (``Repository.ensure_generation``); read once per process.

        A connection lost on the way (``psycopg.OperationalError``: the server restarted or
        dropped it, as when a worker starts during a failover) is retried on a new connection
        with exponential backoff for up to :data:`GENERATION_RETRY_SECONDS`; recording the
        generation is idempotent, so a retry after a partial run finishes it.

        Raises:
            psycopg.Error: the database refused it, or stayed unreachable that long.
        """
        if self._generation is None:
            from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

            embedder = self.embedder()
            for attempt in Retrying(
                retry=retry_if_exception_type(psycopg.OperationalError),
                stop=stop_after_delay(GENERATION_RETRY_SECONDS),
                wait=wait_exponential(multiplier=0.25, max=5),
                reraise=True,
            ):
                with attempt, psycopg.connect(self.url, row_factory=dict_row, autocommit=True) as conn:
                    self._generation = self.repo.ensure_generation(
                        conn,
                        provider=self.settings.embedding_provider,
                        model=embedder.model,
                        dimensions=embedder.dimensions,
                    )
        assert self._generation is not None
        return self._generation

    def _generation_settings(self, generation: Generation) -> Settings:
        return self.settings.model_copy(
            update={
                "embedding_provider": generation.provider,
                "embedding_model": generation.model,
                "embedding_dimensions": generation.dimensions,
            }
        )

    def embedder_for(self, generation: Generation) -> Embedder:
        """The documents' embedder of ``generation``: :meth:`embedder` when it is that model and
        dimension, else one built from this process's settings with the generation's provider,
        model and dimensions (its credentials, backends and limits), once per generation.

        Raises:
            DependencyMissing, InvalidConfiguration, ValueError: it cannot be built here.
        """
        embedder = self.embedder()
        if (embedder.model, embedder.dimensions) == (generation.model, generation.dimensions):
            return embedder
        with self._lock:
            built = self._generation_embedders.get(("documents", generation.generation_id))
        if built is None:
            from docingest.testing.faults import with_embedder_faults

            s = self._generation_settings(generation)
            limiter = self.rate_limiter("openai") if generation.provider == "openai" else None
            built = with_embedder_faults(make_embedder(s, limiter=limiter, client_tag=self.client_tag), s)
            with self._lock:
                built = self._generation_embedders.setdefault(("documents", generation.generation_id), built)
        return built

    def query_embedder_for(self, generation: Generation) -> Embedder:
        """The queries' embedder of ``generation`` (see :meth:`embedder_for`).

        Raises:
            DependencyMissing, InvalidConfiguration, ValueError: it cannot be built here.
        """
        embedder = self.query_embedder()
        if (embedder.model, embedder.dimensions) == (generation.model, generation.dimensions):
            return embedder
        with self._lock:
            built = self._generation_embedders.get(("queries", generation.generation_id))
        if built is None:
            s = self._generation_settings(generation)
            built = make_embedder(s, purpose="queries")
            with self._lock:
                built = self._generation_embedders.setdefault(("queries", generation.generation_id), built)
        return built

    def chunker(self) -> Chunker:
        """A chunker counting tokens with the embedding model's own tokenizer."""
        return Chunker(
            load_tokenizer(tokenizer_path()),
            max_tokens=self.settings.embedding_max_tokens,
            overlap_tokens=self.settings.chunk_overlap_tokens,
            special_tokens=CHUNK_SPECIAL_TOKENS,
            context_tokens=self.settings.embedding_context_tokens,
        )

    def parse_fn(self) -> Parser:
        """The local parser: bounded in a child process unless ``parse_sandbox`` is off."""
        from docingest.providers.parsing import parse_file

        if self.settings.parse_sandbox:
            from docingest.providers.parsing.sandbox import ParseLimits, SandboxedParser

            # The child reports twice per interval; the parse stage saves at most once per interval.
            parser = SandboxedParser(
                ParseLimits.from_settings(self.settings),
                progress_seconds=self.settings.parse_progress_interval_seconds / 2,
            )
            self._parsers.append(parser)
            return parser
        return parse_file

    def handlers(self) -> dict[Stage, StageHandler]:
        """The stage handlers (``stages.build_handlers``), the parse handler the one
        ``UPLOAD_PIPELINE_PARSER`` names."""
        return build_handlers(
            Collaborators(
                settings=self.settings,
                storage=self.storage,
                parser=self.parse_fn,
                chunker=self.chunker,
                embedder=self.embedder,
                llamaparse_client=self.llamaparse_client,
            )
        )

    def check_embedder_dimensions(self) -> None:
        """Embed one probe string with the documents' embedder and, when it is another one, the
        queries' (which also makes it ready: the first search then does not wait for an ONNX
        export); refuse to start when a length differs from the column.

        Raises:
            EmbeddingDimensionMismatch: with both numbers in the message.
        """
        embedders = [self.embedder()]
        if self.query_embedder() is not embedders[0]:
            embedders.append(self.query_embedder())
        with self.database.connection() as conn:
            column = embedding_column_dimensions(conn)
        for embedder in embedders:
            vec = embedder.embed(["docingest dimension probe"])
            if vec.shape[1] != self.settings.embedding_dimensions or (column and vec.shape[1] != column):
                raise EmbeddingDimensionMismatch(
                    f"embedder returns {vec.shape[1]} dimensions; the database column has {column} "
                    f"and UPLOAD_PIPELINE_EMBEDDING_DIMENSIONS is {self.settings.embedding_dimensions}"
                )

    def worker(self, *, concurrency: int | None = None) -> BaseWorker:
        from docingest.worker.loop import BaseWorker

        n = concurrency or self.settings.worker_concurrency
        self.generation()  # recorded, with its HNSW index, before a document of it is stored
        return BaseWorker(
            self.settings,
            self.pool(max_size=max(n + 4, self.settings.db_pool_max_size)),
            self.handlers(),
            url=self.url,
            concurrency=n,
            reembed_handlers=build_reembed_handlers(self.embedder_for, self.settings),
        )

    def close(self) -> None:
        for parser in self._parsers:
            parser.close()
        self._parsers.clear()
        for embedder in [self._embedder, *self._generation_embedders.values()]:
            closer = getattr(embedder, "close", None)
            if callable(closer):
                closer()  # the API embedders' request threads
        self._generation_embedders.clear()
        for limiter in self._limiters:
            limiter.close()
        self._limiters.clear()
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # --- services ---------------------------------------------------------------------
    @cached_property
    def documents(self) -> DocumentService:
        """The documents service of every entry point (built with the storage on first use)."""
        return DocumentService(
            self.database, self.repo, self.storage, UploadPolicy.from_settings(self.settings)
        )

    def searcher(self, *, row_security: bool = False) -> Searcher:
        """A searcher over this database with the queries' embedder; ``row_security``: each
        search runs scoped to its user (the API)."""
        return Searcher(
            self.database,
            self.repo,
            self.query_embedder,
            SearchConfig.from_settings(self.settings),
            row_security=row_security,
            embedder_for=self.query_embedder_for,
        )

    # --- remote providers ---------------------------------------------------------------
    @cached_property
    def client_tag(self) -> str:
        """Names this process to providers (``X-Docingest-Worker``); no secret in it."""
        import os
        import socket

        return f"{socket.gethostname()}:{os.getpid()}"

    def rate_limiter(self, provider: str) -> SharedRateLimiter:
        """The PostgreSQL token buckets of ``provider`` (``openai`` or ``llamaparse``)."""
        from docingest.providers.ratelimit import SharedRateLimiter

        s = self.settings
        rpm, tpm = (s.embedding_rpm, s.embedding_tpm) if provider == "openai" else (s.llamaparse_rpm, None)
        limiter = SharedRateLimiter(
            self.pool(),
            name=provider,
            rpm=rpm,
            tpm=tpm,
            burst_fraction=s.rate_limit_burst_fraction,
            url=self.url,
        )
        self._limiters.append(limiter)
        return limiter

    def llamaparse_client(self) -> LlamaParseClient:
        """The LlamaParse client of ``UPLOAD_PIPELINE_LLAMAPARSE_*`` (``Settings`` refuses
        ``PARSER=llamaparse`` without its API key)."""
        from docingest.providers.parsing.llamaparse import LlamaParseClient

        s = self.settings
        return LlamaParseClient(
            base_url=s.llamaparse_url,
            api_key=s.llamaparse_api_key,
            tier=s.llamaparse_tier,
            version=s.llamaparse_version,
            timeout_seconds=s.llamaparse_request_timeout_seconds,
            limiter=self.rate_limiter("llamaparse"),
        )
