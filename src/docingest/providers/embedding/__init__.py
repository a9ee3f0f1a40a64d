"""Embedders: ``make_embedder(settings)`` picks the configured provider."""

from __future__ import annotations

from typing import Any

from docingest.providers.embedding.base import Embedder, check_shape
from docingest.settings import Settings

__all__ = ["Embedder", "check_shape", "make_embedder", "tokenizer_path"]


def make_embedder(settings: Settings, *, limiter: Any = None, client_tag: str | None = None,
                  purpose: str = "documents") -> Embedder:
    """The embedder named by ``UPLOAD_PIPELINE_EMBEDDING_PROVIDER``, fault-wrapped if asked.

    ``limiter`` (a ``ratelimit.SharedRateLimiter``) and ``client_tag`` serve the API
    providers; without a limiter they back off in this process only. ``purpose``
    (``documents`` or ``queries``) picks the local model's backend when it is ``auto``
    (``embedding.local.resolve_backend``).
    """
    from docingest.testing.faults import FaultyEmbedder

    embedder: Embedder
    if settings.embedding_provider == "openai":
        embedder = make_openai_embedder(settings, limiter=limiter, client_tag=client_tag)
    elif settings.embedding_provider == "hashing":
        from docingest.providers.embedding.hashing import HashingEmbedder

        embedder = HashingEmbedder(settings.embedding_dimensions)
    else:
        from docingest.providers.embedding.local import make_local_embedder, resolve_backend

        embedder = make_local_embedder(resolve_backend(settings.embedding_backend, purpose),
                                       batch_size=settings.embedding_batch_size,
                                       cache_dir=settings.model_cache_dir)
    if settings.fault_embedding_error_rate or settings.fault_embedding_delay_seconds:
        embedder = FaultyEmbedder(
            embedder,
            error_rate=settings.fault_embedding_error_rate,
            delay_seconds=settings.fault_embedding_delay_seconds,
        )
    return embedder


def tokenizer_path(settings: Settings) -> str:
    """The ``tokenizer.json`` that sizes chunks: the embedding model's own."""
    from docingest.providers.embedding.local import model_dir

    return str(model_dir() / "tokenizer.json")


def make_openai_embedder(settings: Settings, *, limiter: Any = None, client_tag: str | None = None) -> Any:
    """The OpenAI-compatible embedder configured by ``UPLOAD_PIPELINE_OPENAI_*`` and ``EMBEDDING_*``.

    Raises:
        ValueError: no API key while talking to OpenAI itself (no ``OPENAI_BASE_URL``).
    """
    from docingest.providers.embedding.batching import BatchLimits
    from docingest.providers.embedding.openai import OpenAIEmbedder
    from docingest.providers.ratelimit import LocalBackoff

    if not settings.openai_api_key and not settings.openai_base_url:
        raise ValueError("UPLOAD_PIPELINE_OPENAI_API_KEY (or OPENAI_API_KEY) is required for "
                         "EMBEDDING_PROVIDER=openai without OPENAI_BASE_URL")
    return OpenAIEmbedder(
        model=settings.embedding_model, dimensions=settings.embedding_dimensions,
        base_url=settings.openai_base_url, api_key=settings.openai_api_key,
        limiter=limiter or LocalBackoff(),
        limits=BatchLimits(settings.embedding_max_batch_inputs, settings.embedding_max_batch_tokens,
                           settings.embedding_max_input_tokens),
        concurrency=settings.embedding_concurrency,
        timeout_seconds=settings.embedding_request_timeout_seconds,
        attempts=settings.embedding_request_attempts, send_dimensions=settings.openai_send_dimensions,
        backoff_base_seconds=settings.backoff_base_seconds,
        backoff_max_seconds=min(settings.backoff_max_seconds, 60.0), client_tag=client_tag,
    )
