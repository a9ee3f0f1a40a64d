"""Fault injection for chaos tests: wrappers that fail a fraction of calls transiently.

Enabled only by the ``UPLOAD_PIPELINE_FAULT_*`` settings (all zero by default); the
composition root wraps its providers with :func:`with_storage_faults` and
:func:`with_embedder_faults`. Each wrapper implements the whole interface it wraps.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from docingest.errors import EmbeddingUnavailable, StorageUnavailable
from docingest.providers.embedding.base import Batch, Embedder
from docingest.providers.storage.base import ObjectInfo, SignedDownload, SignedUpload, Storage
from docingest.settings import Settings


class FaultyEmbedder(Embedder):
    """Delegates to ``inner``; before each call's result, sleeps ``delay_seconds`` and fails
    ``error_rate`` of them with ``EmbeddingUnavailable``.

    :meth:`embed_batches` goes through ``inner.embed_batches`` (an API embedder keeps its
    concurrent, token-planned batches), the fault applied to each batch it yields.
    """

    def __init__(self, inner: Embedder, *, error_rate: float, delay_seconds: float = 0.0) -> None:
        self.inner = inner
        self.model = inner.model
        self.dimensions = inner.dimensions
        self.batch_texts = inner.batch_texts
        self.error_rate = error_rate
        self.delay_seconds = delay_seconds

    def _fault(self) -> None:
        """Sleep the delay, then raise ``EmbeddingUnavailable`` with probability ``error_rate``."""
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if random.random() < self.error_rate:
            raise EmbeddingUnavailable("injected fault: embedder unavailable")

    def _embed(self, texts: list[str]) -> np.ndarray:
        self._fault()
        return self.inner.embed(texts)

    def embed_batches(self, texts: Iterable[str], *, max_texts: int | None = None) -> Iterator[Batch]:
        """``inner.embed_batches``, each batch delayed and failed as :meth:`embed` is."""
        for batch in self.inner.embed_batches(texts, max_texts=max_texts):
            self._fault()
            yield batch

    def close(self) -> None:
        """Close ``inner``."""
        self.inner.close()


class FaultyStorage:
    """A ``Storage`` that delegates to ``inner`` and fails ``error_rate`` of calls with
    ``StorageUnavailable`` before making them."""

    def __init__(self, inner: Storage, *, error_rate: float) -> None:
        self.inner = inner
        self.error_rate = error_rate

    def _fault(self, name: str) -> None:
        if random.random() < self.error_rate:
            raise StorageUnavailable(f"injected fault: storage.{name} failed")

    def put_stream(self, key: str, stream: BinaryIO) -> ObjectInfo:
        self._fault("put_stream")
        return self.inner.put_stream(key, stream)

    def copy_from(self, key: str, src: Path) -> ObjectInfo:
        self._fault("copy_from")
        return self.inner.copy_from(key, src)

    def head(self, key: str) -> ObjectInfo | None:
        self._fault("head")
        return self.inner.head(key)

    def open_stream(self, key: str) -> AbstractContextManager[BinaryIO]:
        self._fault("open_stream")
        return self.inner.open_stream(key)

    def local_path(self, key: str) -> AbstractContextManager[Path]:
        self._fault("local_path")
        return self.inner.local_path(key)

    def delete(self, key: str) -> None:
        self._fault("delete")
        self.inner.delete(key)

    def presign_upload(
        self,
        key: str,
        *,
        content_length: int | None,
        content_type: str,
        sha256: str | None,
        expires_in: float,
    ) -> SignedUpload:
        self._fault("presign_upload")
        return self.inner.presign_upload(
            key,
            content_length=content_length,
            content_type=content_type,
            sha256=sha256,
            expires_in=expires_in,
        )

    def presign_download(self, key: str, *, filename: str, expires_in: float) -> SignedDownload:
        self._fault("presign_download")
        return self.inner.presign_download(key, filename=filename, expires_in=expires_in)

    def ping(self) -> None:
        self._fault("ping")
        self.inner.ping()

    def close(self) -> None:
        """Close ``inner`` (never fails)."""
        self.inner.close()


def with_storage_faults(storage: Storage, settings: Settings) -> Storage:
    """``storage`` wrapped in a :class:`FaultyStorage` when ``FAULT_STORAGE_ERROR_RATE`` is set,
    else ``storage`` itself."""
    if not settings.fault_storage_error_rate:
        return storage
    return FaultyStorage(storage, error_rate=settings.fault_storage_error_rate)


def with_embedder_faults(embedder: Embedder, settings: Settings) -> Embedder:
    """``embedder`` wrapped in a :class:`FaultyEmbedder` when ``FAULT_EMBEDDING_ERROR_RATE`` or
    ``FAULT_EMBEDDING_DELAY_SECONDS`` is set, else ``embedder`` itself."""
    if not (settings.fault_embedding_error_rate or settings.fault_embedding_delay_seconds):
        return embedder
    return FaultyEmbedder(
        embedder,
        error_rate=settings.fault_embedding_error_rate,
        delay_seconds=settings.fault_embedding_delay_seconds,
    )
