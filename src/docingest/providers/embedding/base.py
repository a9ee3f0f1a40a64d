"""Embedder interface: texts in, one L2-normalised float32 vector per text out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from docingest.errors import EmbeddingDimensionMismatch


class Embedder(Protocol):
    """An embedding model.

    Attributes:
        model: the name stored in ``document_chunks.embed_model``.
        dimensions: the vector length it returns.
    """

    model: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape ``(len(texts), dimensions)``, float32, unit length.

        Raises:
            EmbeddingUnavailable: transient provider failure (retried).
            EmbeddingDimensionMismatch: the reply has the wrong shape (permanent).
        """
        ...


def check_shape(vectors: np.ndarray, count: int, dimensions: int) -> np.ndarray:
    """Verify ``vectors`` is ``(count, dimensions)``; return it as float32.

    Raises:
        EmbeddingDimensionMismatch: on any other shape.
    """
    if vectors.ndim != 2 or vectors.shape[0] != count or vectors.shape[1] != dimensions:
        raise EmbeddingDimensionMismatch(
            f"embedder returned shape {tuple(vectors.shape)}, expected ({count}, {dimensions})"
        )
    return vectors.astype(np.float32, copy=False)
