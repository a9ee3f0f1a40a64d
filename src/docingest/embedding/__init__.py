"""Embedders: ``make_embedder(settings)`` picks the configured provider."""

from __future__ import annotations

from docingest.embedding.base import Embedder, check_shape
from docingest.settings import Settings

__all__ = ["Embedder", "check_shape", "make_embedder", "tokenizer_path"]


def make_embedder(settings: Settings) -> Embedder:
    """The embedder named by ``UPLOAD_PIPELINE_EMBEDDING_PROVIDER``, fault-wrapped if asked."""
    from docingest.faults import FaultyEmbedder

    embedder: Embedder
    if settings.embedding_provider == "hashing":
        from docingest.embedding.hashing import HashingEmbedder

        embedder = HashingEmbedder(settings.embedding_dimensions)
    else:
        from docingest.embedding.local import make_local_embedder

        embedder = make_local_embedder(settings.embedding_backend,
                                       batch_size=settings.embedding_batch_size,
                                       cache_dir=settings.data_dir / "models")
    if settings.fault_embedding_error_rate or settings.fault_embedding_delay_seconds:
        embedder = FaultyEmbedder(
            embedder,
            error_rate=settings.fault_embedding_error_rate,
            delay_seconds=settings.fault_embedding_delay_seconds,
        )
    return embedder


def tokenizer_path(settings: Settings) -> str:
    """The ``tokenizer.json`` that sizes chunks: the embedding model's own."""
    from docingest.embedding.local import model_dir

    return str(model_dir() / "tokenizer.json")
