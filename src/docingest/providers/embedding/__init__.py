"""Embedders: ``make_embedder(settings)`` builds the provider ``PROVIDERS`` names.

Imports the foundation, observability and the rate limiter; heavy SDKs only inside a provider.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from docingest.providers.embedding.base import Batch, Embedder, check_shape
from docingest.providers.embedding.minilm import tokenizer_path
from docingest.settings import Settings

if TYPE_CHECKING:
    from docingest.providers.ratelimit import RateLimiter

__all__ = [
    "PROVIDERS",
    "Batch",
    "Embedder",
    "check_shape",
    "make_embedder",
    "make_openai_embedder",
    "tokenizer_path",
]


def _openai(
    settings: Settings, *, limiter: RateLimiter | None, client_tag: str | None, purpose: str
) -> Embedder:
    """The OpenAI-compatible API (:func:`make_openai_embedder`)."""
    return make_openai_embedder(settings, limiter=limiter, client_tag=client_tag)


def _hashing(
    settings: Settings, *, limiter: RateLimiter | None, client_tag: str | None, purpose: str
) -> Embedder:
    """Hashed bags of words (tests only: not semantic)."""
    from docingest.providers.embedding.hashing import HashingEmbedder

    return HashingEmbedder(settings.embedding_dimensions)


def _local(
    settings: Settings, *, limiter: RateLimiter | None, client_tag: str | None, purpose: str
) -> Embedder:
    """The packaged all-MiniLM-L6-v2 on the backend ``EMBEDDING_BACKEND`` resolves to for ``purpose``."""
    from docingest.providers.embedding.local import make_local_embedder, resolve_backend

    return make_local_embedder(
        resolve_backend(settings.embedding_backend, purpose),
        batch_size=settings.embedding_batch_size,
        cache_dir=settings.model_cache_dir,
    )


#: ``UPLOAD_PIPELINE_EMBEDDING_PROVIDER`` value -> the function building that embedder.
PROVIDERS: dict[str, Callable[..., Embedder]] = {"openai": _openai, "hashing": _hashing, "local": _local}


def make_embedder(
    settings: Settings,
    *,
    limiter: RateLimiter | None = None,
    client_tag: str | None = None,
    purpose: str = "documents",
) -> Embedder:
    """The embedder named by ``UPLOAD_PIPELINE_EMBEDDING_PROVIDER`` (a key of :data:`PROVIDERS`).

    ``limiter`` (a ``ratelimit.SharedRateLimiter``) and ``client_tag`` serve the API
    providers; without a limiter they back off in this process only. ``purpose``
    (``documents`` or ``queries``) picks the local model's backend when it is ``auto``
    (``embedding.local.resolve_backend``). Fault injection (``UPLOAD_PIPELINE_FAULT_*``) is
    added by the composition root (``Runtime.embedder``), not here.

    Raises:
        DependencyMissing: the local provider without its model package or ONNX Runtime.
    """
    return PROVIDERS[settings.embedding_provider](
        settings, limiter=limiter, client_tag=client_tag, purpose=purpose
    )


def make_openai_embedder(
    settings: Settings, *, limiter: RateLimiter | None = None, client_tag: str | None = None
) -> Embedder:
    """The OpenAI-compatible embedder configured by ``UPLOAD_PIPELINE_OPENAI_*`` and ``EMBEDDING_*``
    (``Settings`` refuses the provider with neither an API key nor ``OPENAI_BASE_URL``).
    """
    from docingest.providers.embedding.batching import BatchLimits
    from docingest.providers.embedding.openai import OpenAIEmbedder
    from docingest.providers.ratelimit import LocalBackoff

    return OpenAIEmbedder(
        model=settings.embedding_model,
        dimensions=settings.embedding_dimensions,
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key,
        limiter=limiter or LocalBackoff(),
        limits=BatchLimits(
            settings.embedding_max_batch_inputs,
            settings.embedding_max_batch_tokens,
            settings.embedding_max_input_tokens,
        ),
        concurrency=settings.embedding_concurrency,
        timeout_seconds=settings.embedding_request_timeout_seconds,
        attempts=settings.embedding_request_attempts,
        send_dimensions=settings.openai_send_dimensions,
        backoff_base_seconds=settings.backoff_base_seconds,
        backoff_max_seconds=min(settings.backoff_max_seconds, 60.0),
        client_tag=client_tag,
    )
