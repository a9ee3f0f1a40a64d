"""Fault injection for chaos tests: wrappers that fail a fraction of calls transiently.

Enabled only by the ``UPLOAD_PIPELINE_FAULT_*`` settings (all zero by default).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from docingest.errors import EmbeddingUnavailable, StorageUnavailable


class FaultyEmbedder:
    """Delegates to ``inner``; sleeps ``delay_seconds`` and fails ``error_rate`` of calls."""

    def __init__(self, inner: Any, *, error_rate: float, delay_seconds: float = 0.0) -> None:
        self.inner = inner
        self.model = inner.model
        self.dimensions = inner.dimensions
        self.error_rate = error_rate
        self.delay_seconds = delay_seconds

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if random.random() < self.error_rate:
            raise EmbeddingUnavailable("injected fault: embedder unavailable")
        return self.inner.embed(texts)  # type: ignore[no-any-return]


class FaultyStorage:
    """Delegates to ``inner``; fails ``error_rate`` of calls with ``StorageUnavailable``."""

    def __init__(self, inner: Any, *, error_rate: float) -> None:
        self.inner = inner
        self.error_rate = error_rate

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if random.random() < self.error_rate:
                raise StorageUnavailable(f"injected fault: storage.{name} failed")
            return attr(*args, **kwargs)

        return call
