"""Configuration: one ``Settings`` object, built once per entry point.

Every field reads the environment variable ``UPLOAD_PIPELINE_<FIELD>`` (and a
``.env`` file). Nothing in ``production`` silently falls back to a development
default: see :meth:`Settings.check_production`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_JWT_SECRET = "docingest-development-secret-change-me"


class Settings(BaseSettings):
    """All of docingest's settings; units are in the field names (``_seconds``, ``_bytes``)."""

    model_config = SettingsConfigDict(
        env_prefix="UPLOAD_PIPELINE_", env_file=".env", extra="ignore", populate_by_name=True
    )

    environment: Literal["development", "test", "production"] = "development"
    database_url: str | None = None
    data_dir: Path = Path(".docingest")
    db_pool_max_size: int = Field(default=10, ge=1)

    storage_backend: Literal["local"] = "local"
    storage_bucket: str = "documents"

    jwt_secret: str = DEFAULT_JWT_SECRET

    parser: Literal["local"] = "local"
    max_file_bytes: int = Field(default=200 * 1024 * 1024, ge=1)

    embedding_provider: Literal["local", "hashing"] = "local"
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_dimensions: int = Field(default=384, ge=1, le=16000)
    embedding_batch_size: int = Field(default=64, ge=1)
    embedding_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="torch", description="how the local model runs (embedding.local.BACKENDS)")
    embedding_max_tokens: int = Field(
        default=256, ge=8, description="model's max sequence length, special tokens included"
    )

    chunk_overlap_tokens: int = Field(default=0, ge=0)

    worker_concurrency: int = Field(default=2, ge=1)
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    max_lost_leases: int = Field(default=3, ge=1)
    max_retries: int = Field(default=5, ge=0)
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=300.0, gt=0)
    poll_interval_seconds: float = Field(default=2.0, gt=0)

    # Fault injection, for chaos tests only (fractions of calls that fail transiently).
    fault_storage_error_rate: float = Field(default=0.0, ge=0, le=1)
    fault_embedding_error_rate: float = Field(default=0.0, ge=0, le=1)
    fault_embedding_delay_seconds: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("UPLOAD_PIPELINE_HEARTBEAT_SECONDS must be shorter than LEASE_SECONDS")
        self.check_production()
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
    def storage_dir(self) -> Path:
        """Directory of the local object store (``DATA_DIR/storage/BUCKET``)."""
        return self.data_dir / "storage" / self.storage_bucket
