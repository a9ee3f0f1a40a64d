"""Embedder interface: texts in, one L2-normalised float32 vector per text out.

:class:`Embedder` is the base of every provider: it checks shapes, handles the empty input
and cuts a stream of texts into batches (:meth:`Embedder.embed_batches`); a provider writes
only its model call (``_embed``). API embedders derive from
``embedding.batching.BatchingEmbedder``, which plans token-bounded batches and keeps several
in flight.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from docingest.errors import EmbeddingDimensionMismatch

#: ``(start, end, vectors)``: texts ``[start, end)`` of the input, in the order drawn, and their
#: vectors, shape ``(end - start, dimensions)`` float32.
Batch = tuple[int, int, np.ndarray]


class Embedder(ABC):
    """An embedding model.

    Attributes:
        model: the name stored in ``document_chunks.embed_model``.
        dimensions: the vector length it returns.
        batch_texts: texts per batch of :meth:`embed_batches` when the caller sets no
            ``max_texts`` (each batch is one checkpoint of the embedding stage).
    """

    model: str
    dimensions: int
    batch_texts: int = 256

    @abstractmethod
    def _embed(self, texts: list[str]) -> np.ndarray:
        """The provider's call for a non-empty list: ``(len(texts), dimensions)`` vectors.

        Raises:
            EmbeddingUnavailable: transient provider failure (retried).
            EmbeddingDimensionMismatch: the reply has the wrong shape (permanent).
        """

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape ``(len(texts), dimensions)``, float32, unit length, in input order.

        Raises:
            EmbeddingUnavailable: transient provider failure (retried).
            EmbeddingDimensionMismatch: the reply has the wrong shape (permanent).
        """
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return check_shape(np.asarray(self._embed(list(texts))), len(texts), self.dimensions)

    def embed_batches(self, texts: Iterable[str], *, max_texts: int | None = None) -> Iterator[Batch]:
        """Yield ``(start, end, vectors)`` for consecutive batches of ``texts``.

        ``texts`` may be lazy: it is drawn a batch at a time. This base embeds the batches one
        after another on the caller's thread, ``max_texts`` (default :attr:`batch_texts`)
        texts each; ``BatchingEmbedder`` plans them by tokens and yields them as they
        complete, in any order.

        Raises:
            what :meth:`embed` raises; the batches yielded before the error are kept by the caller.
        """
        size = max_texts or self.batch_texts
        source = iter(texts)
        start = 0
        while batch := list(itertools.islice(source, size)):
            yield start, start + len(batch), self.embed(batch)
            start += len(batch)

    def close(self) -> None:
        """Release what the embedder holds (request threads, sessions); default: nothing."""


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
