"""Configuration: one ``Settings`` object, built once per entry point.

Every field reads the environment variable ``UPLOAD_PIPELINE_<FIELD>`` (and a
``.env`` file). Nothing in ``production`` silently falls back to a development
default: see :meth:`Settings.check_production`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_JWT_SECRET = "docingest-development-secret-change-me"
#: A browser's ``Origin``: scheme, host and optional port, nothing after.
_ORIGIN = re.compile(r"^https?://[^/\s,]+$")


def default_data_dir() -> Path:
    """The per-user data directory used when ``UPLOAD_PIPELINE_DATA_DIR`` is unset.

    The platform's user data directory from ``platformdirs.user_data_dir("docingest")``:
    ``$XDG_DATA_HOME/docingest`` (``~/.local/share/docingest``) on Linux,
    ``~/Library/Application Support/docingest`` on macOS, ``%LOCALAPPDATA%\\docingest`` on
    Windows. One stable place whichever folder a command runs from.
    """
    import platformdirs

    return Path(platformdirs.user_data_dir("docingest", appauthor=False))


# Tokens the embedding model adds to every input ([CLS] and [SEP]); the chunker's default.
CHUNK_SPECIAL_TOKENS = 2


class Settings(BaseSettings):
    """All of docingest's settings, grouped by concern; units are in the field names
    (``_seconds``, ``_bytes``, ``_mb``). Validators refuse inconsistent values and, in
    ``production``, development defaults (:meth:`check_production`).
    """

    # env_ignore_empty: a variable set to "" counts as unset (compose.yaml passes each optional
    # setting as ${VAR:-}, which is empty when .env leaves it out).
    model_config = SettingsConfigDict(
        env_prefix="UPLOAD_PIPELINE_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,
    )

    # --- Where things are kept: the data directory, the database
    environment: Literal["development", "test", "production"] = "development"
    database_url: str | None = None
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="database, stored files and models; default: the platform's per-user data "
        "directory (~/.local/share/docingest on Linux)",
    )
    models_dir: Path | None = Field(
        default=None,
        description="where the local model's ONNX files are exported (and read from); default: "
        "DATA_DIR/models. Several data dirs, or an image built ahead, can share one",
    )
    db_pool_max_size: int = Field(default=10, ge=1)

    # --- Object storage (storage/): the local folder, Supabase Storage or S3
    storage_backend: Literal["local", "supabase", "s3"] = "local"
    storage_bucket: str = "documents"
    storage_url: str | None = Field(
        default=None, description="supabase: https://PROJECT.supabase.co/storage/v1; s3: the endpoint URL"
    )
    storage_service_key: str | None = Field(
        default=None,
        description="supabase: the service-role key; unset: one signed with JWT_SECRET (a storage "
        "service sharing that secret, as in compose.yaml)",
    )
    storage_public_url: str | None = Field(
        default=None,
        description="supabase: STORAGE_URL as clients reach it, for the signed URLs they are given; "
        "default STORAGE_URL",
    )
    storage_region: str = "us-east-1"
    storage_access_key_id: str | None = None
    storage_secret_access_key: str | None = None

    # --- The HTTP API, its tokens and the two-step upload
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = Field(
        default=None,
        description="base URL clients reach the API (local storage URLs) at; "
        "default: the address `serve` listens on, or on a non-loopback address the host each "
        "client called (its Host header)",
    )
    trust_forwarded: bool = Field(
        default=False,
        description="behind a reverse proxy: signed URLs use X-Forwarded-Host and "
        "X-Forwarded-Proto (ignored otherwise, since any client can send them); without PUBLIC_URL only",
    )
    cors_origins: str = Field(
        default="",
        description="comma-separated origins (e.g. https://app.example.com) whose pages may call "
        "the API and the local storage service from a browser (CORS); empty: none (the default)",
    )
    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_audience: str = "authenticated"
    upload_url_ttl_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    upload_grace_seconds: float = Field(default=300.0, ge=0)
    upload_sweep_seconds: float = Field(default=5.0, gt=0)
    max_active_jobs_per_user: int = Field(default=100, ge=1)
    max_file_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    sse_max_seconds: float = Field(
        default=300.0,
        gt=0,
        description="GET /documents/{id}/events ends after this many seconds even if the job is not "
        "terminal, and GET /events after this many; a client reconnects with Last-Event-ID and "
        "misses no event",
    )

    # --- Parsing: local parsers in a bounded child process (parsing/sandbox.py), or LlamaParse
    parser: Literal["local", "llamaparse"] = "local"
    parse_sandbox: bool = Field(default=True, description="run local parsers in a child process")
    parse_timeout_seconds: float = Field(default=60.0, gt=0, description="wall-time limit, base")
    parse_timeout_seconds_per_mb: float = Field(default=10.0, ge=0, description="added per MB of input")
    parse_timeout_max_seconds: float = Field(default=900.0, gt=0, description="cap of the scaled limit")
    parse_memory_mb: int = Field(default=2048, ge=64, description="resident memory limit of a parse")
    parse_progress_interval_seconds: float = Field(
        default=0.5, ge=0.01, description="pages parsed are saved in the job's progress at most this often"
    )
    max_spreadsheet_cells: int = Field(
        default=5_000_000, ge=1, description="non-empty cells a workbook may hold (spreadsheet_too_large)"
    )
    max_unpacked_mb: int = Field(
        default=1024,
        ge=1,
        description="MiB the members of a ZIP-based document may unpack to (archive_too_large)",
    )
    max_document_chars: int = Field(
        default=30_000_000,
        ge=1,
        description="characters a document's parsed text may hold (text_too_large): 10x a 1,200-page "
        "manual; past it chunking and embedding would take hours",
    )
    max_image_pixels: int = Field(
        default=200_000_000, ge=1, description="pixels an image or rendered page may have (image_too_large)"
    )

    # --- OCR (Tesseract, through tesserocr): images, and PDF pages without a text layer
    ocr: Literal["always", "auto", "off"] = Field(
        default="auto",
        description="auto: OCR images and the PDF pages without a text layer when Tesseract and its "
        "language data are found (else off); always: OCR every PDF page too; off: never",
    )
    ocr_languages: str = Field(
        default="eng",
        pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$",
        description="Tesseract languages joined by '+', e.g. eng+deu (apt-get install tesseract-ocr-deu)",
    )
    ocr_dpi: int = Field(default=300, ge=72, le=600, description="resolution a PDF page is OCRed at")
    ocr_low_confidence: float = Field(
        default=50.0, ge=0, le=100, description="pages OCRed below this mean word confidence are flagged"
    )
    ocr_seconds_per_page: float = Field(
        default=30.0, gt=0, description="added to a parse's wall-time limit per page OCRed may read"
    )
    tessdata_prefix: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "tessdata_prefix", "UPLOAD_PIPELINE_TESSDATA_PREFIX", "TESSDATA_PREFIX"
        ),
        description="directory of the <lang>.traineddata files (default: Debian's, then Tesseract's own)",
    )

    # --- LlamaParse: the REST flow of the LlamaCloud Parse API v2, and its webhook
    llamaparse_url: str = "https://api.cloud.llamaindex.ai"
    llamaparse_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "llamaparse_api_key", "UPLOAD_PIPELINE_LLAMAPARSE_API_KEY", "LLAMA_CLOUD_API_KEY"
        ),
    )
    llamaparse_tier: str = "cost_effective"
    llamaparse_version: str = "latest"
    llamaparse_poll_seconds: float = Field(default=2.0, gt=0, description="first poll delay")
    llamaparse_poll_max_seconds: float = Field(default=30.0, gt=0)
    llamaparse_timeout_base_seconds: float = Field(default=300.0, gt=0)
    llamaparse_timeout_per_page_seconds: float = Field(default=10.0, ge=0)
    llamaparse_request_timeout_seconds: float = Field(default=60.0, gt=0)
    llamaparse_rpm: int | None = Field(default=None, ge=1, description="requests/minute, all workers")
    webhook_base_url: str | None = Field(
        default=None, description="public URL of this API; set to have LlamaParse call the webhook"
    )
    webhook_secret: str | None = None

    # --- Chunking and embedding: the model, its chunks, its vectors
    embedding_provider: Literal["local", "hashing", "openai"] = "local"
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_dimensions: int = Field(default=384, ge=1, le=16000)
    embedding_max_tokens: int = Field(
        default=256, ge=8, description="model's max sequence length, special tokens included"
    )
    chunk_overlap_tokens: int = Field(default=0, ge=0)
    embedding_context_tokens: int = Field(
        default=64,
        ge=0,
        description="the most tokens of context (the document's title and the chunk's heading path) "
        "embedded before each chunk, within the room it leaves under EMBEDDING_MAX_TOKENS; 0: none",
    )
    embedding_cache: bool = True
    embedding_batch_size: int = Field(
        default=32, ge=1, description="texts per forward pass of the local model"
    )
    embedding_backend: Literal[
        "auto", "openvino", "openvino-bf16", "onnx", "onnx-int8", "torch", "torch-bf16"
    ] = Field(
        default="auto",
        description="local model runtime: auto (openvino-bf16 where the CPU has AMX-BF16, else "
        "openvino), openvino, openvino-bf16, onnx, onnx-int8, torch or torch-bf16",
    )

    # --- OpenAI-compatible embedding APIs: requests, batches, shared rate limits
    openai_base_url: str | None = None
    openai_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("openai_api_key", "UPLOAD_PIPELINE_OPENAI_API_KEY", "OPENAI_API_KEY"),
    )
    openai_send_dimensions: bool | None = Field(
        default=None, description="send `dimensions`; None: only for text-embedding-3-* models"
    )
    embedding_max_batch_inputs: int = Field(default=2048, ge=1, description="inputs per request")
    embedding_max_batch_tokens: int = Field(default=300_000, ge=1, description="tokens per request")
    embedding_max_input_tokens: int = Field(default=8192, ge=1, description="tokens per input")
    embedding_concurrency: int = Field(default=4, ge=1, description="requests in flight per process")
    embedding_request_timeout_seconds: float = Field(default=60.0, gt=0)
    embedding_request_attempts: int = Field(default=6, ge=1, description="tries per batch in one run")
    embedding_rpm: int | None = Field(default=None, ge=1, description="requests/minute, all workers")
    embedding_tpm: int | None = Field(default=None, ge=1, description="tokens/minute, all workers")
    rate_limit_burst_fraction: float = Field(default=0.1, gt=0, le=1)

    # --- Search
    search_ef_search: int = Field(default=400, ge=1, le=1000, description="HNSW candidate list size")
    search_exact_max_chunks: int = Field(
        default=20_000,
        ge=0,
        description="a user with at most this many chunks is searched exactly (HNSW filters by "
        "user after ranking everyone's chunks, which misses a small tenant's) and their chunks stay "
        "out of the HNSW index (its inserts are the costliest write of an ingest)",
    )
    search_max_query_chars: int = Field(default=2000, ge=1, description="longer queries: query_too_long")
    search_rrf_k: float = Field(default=30.0, gt=0, description="reciprocal rank fusion constant")
    search_text_weight: float = Field(default=0.2, ge=0, description="full-text weight in hybrid")

    # --- Workers: slots, leases, retries
    worker_concurrency: int = Field(default=2, ge=1)
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    max_lost_leases: int = Field(default=3, ge=1)
    max_retries: int = Field(default=5, ge=0)
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=300.0, gt=0)
    poll_interval_seconds: float = Field(default=2.0, gt=0)
    worker_switch_interval_ms: float = Field(
        default=0.5,
        gt=0,
        description="the worker process's GIL switch interval (sys.setswitchinterval; Python's "
        "default is 5 ms): the longest a thread woken by a reply or a socket waits "
        "behind another thread's CPU work before it runs",
    )

    # --- Fault injection, for chaos tests only (fractions of calls that fail transiently)
    fault_storage_error_rate: float = Field(default=0.0, ge=0, le=1)
    fault_embedding_error_rate: float = Field(default=0.0, ge=0, le=1)
    fault_embedding_delay_seconds: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> Settings:
        """``DATA_DIR`` (and ``MODELS_DIR``) made absolute once, from the folder the command runs
        in: every message then names the real place, and a relative path means one place."""
        self.data_dir = Path(os.path.abspath(self.data_dir.expanduser()))
        if self.models_dir is not None:
            self.models_dir = Path(os.path.abspath(self.models_dir.expanduser()))
        return self

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("UPLOAD_PIPELINE_HEARTBEAT_SECONDS must be shorter than LEASE_SECONDS")
        capacity = self.embedding_max_tokens - CHUNK_SPECIAL_TOKENS
        if self.chunk_overlap_tokens >= capacity:
            raise ValueError(
                f"UPLOAD_PIPELINE_CHUNK_OVERLAP_TOKENS ({self.chunk_overlap_tokens}) must be smaller than a "
                f"chunk's capacity: EMBEDDING_MAX_TOKENS ({self.embedding_max_tokens}) minus "
                f"{CHUNK_SPECIAL_TOKENS} special tokens = {capacity}"
            )
        self.check_production()
        return self

    @model_validator(mode="after")
    def _check_providers(self) -> Settings:
        """The remote providers need their keys; a webhook needs its secret."""
        if self.parser == "llamaparse" and not self.llamaparse_api_key:
            raise ValueError(
                "PARSER=llamaparse needs UPLOAD_PIPELINE_LLAMAPARSE_API_KEY (or LLAMA_CLOUD_API_KEY)"
            )
        if self.embedding_provider == "openai" and not (self.openai_api_key or self.openai_base_url):
            raise ValueError(
                "EMBEDDING_PROVIDER=openai needs UPLOAD_PIPELINE_OPENAI_API_KEY "
                "(or OPENAI_API_KEY), or OPENAI_BASE_URL for a local server"
            )
        if self.webhook_base_url and not self.webhook_secret:
            raise ValueError("UPLOAD_PIPELINE_WEBHOOK_BASE_URL needs UPLOAD_PIPELINE_WEBHOOK_SECRET")
        if self.environment == "production" and self.webhook_secret and len(self.webhook_secret) < 32:
            raise ValueError("UPLOAD_PIPELINE_WEBHOOK_SECRET must have 32+ characters in production")
        return self

    @model_validator(mode="after")
    def _check_storage(self) -> Settings:
        if (
            self.storage_backend in ("supabase", "s3")
            and not self.storage_url
            and (self.storage_backend == "supabase" or self.environment == "production")
        ):
            raise ValueError(
                f"UPLOAD_PIPELINE_STORAGE_URL is required for STORAGE_BACKEND={self.storage_backend}"
            )
        if (
            self.storage_backend == "supabase"
            and not self.storage_service_key
            and self.jwt_secret == DEFAULT_JWT_SECRET
        ):
            raise ValueError(
                "STORAGE_BACKEND=supabase needs UPLOAD_PIPELINE_STORAGE_SERVICE_KEY, or an "
                "UPLOAD_PIPELINE_JWT_SECRET shared with the storage service (a key is then signed with it)"
            )
        return self

    def check_production(self) -> None:
        """Refuse development defaults in production.

        Raises:
            ValueError: in ``production`` with no database URL or the default JWT secret.
        """
        if self.environment != "production":
            return
        if not self.database_url:
            raise ValueError("UPLOAD_PIPELINE_DATABASE_URL is required in production")
        if self.jwt_secret == DEFAULT_JWT_SECRET or len(self.jwt_secret) < 32:
            raise ValueError(
                "UPLOAD_PIPELINE_JWT_SECRET must be set to a secret of 32+ characters in production"
            )

    @property
    def model_cache_dir(self) -> Path:
        """Where the local model's ONNX files live: ``MODELS_DIR``, else ``DATA_DIR/models``."""
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @property
    def storage_dir(self) -> Path:
        """Directory of the local object store (``DATA_DIR/storage/BUCKET``)."""
        return self.data_dir / "storage" / self.storage_bucket

    @property
    def cors_origin_list(self) -> list[str]:
        """``CORS_ORIGINS`` as a list (empty: CORS off)."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @field_validator("cors_origins")
    @classmethod
    def check_cors_origins(cls, value: str) -> str:
        """Each origin is ``*`` or ``scheme://host[:port]`` (a browser's ``Origin``: no path).

        Raises:
            ValueError: naming the first origin that is not one.
        """
        for origin in (o.strip().rstrip("/") for o in value.split(",") if o.strip()):
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(
                    f"CORS_ORIGINS: {origin!r} is not an origin: write scheme://host[:port], "
                    "e.g. https://app.example.com or http://localhost:5173, without a path"
                )
        return value

    def api_base_url(self) -> str:
        """Where clients reach this API: ``PUBLIC_URL``, else ``http://API_HOST:API_PORT``
        (``127.0.0.1`` for a wildcard host; inside an API request on a non-loopback host the
        request's own host is used instead: ``api/public_url.py``)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.api_host if self.api_host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.api_port}"
