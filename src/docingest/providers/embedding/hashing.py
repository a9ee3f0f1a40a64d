"""A deterministic hashing embedder for unit tests: fast, no model, NOT semantic.

It is never the default. Each lower-cased word is hashed (SHA-256) to a signed
bucket of a ``dimensions``-long vector (the "hashing trick", Weinberger et al.
2009); the sum is L2-normalised. Equal texts give equal vectors.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from docingest.providers.embedding.base import Embedder

_WORD = re.compile(r"\w+")


class HashingEmbedder(Embedder):
    """Bag-of-words hashing vectors of length ``dimensions``."""

    def __init__(self, dimensions: int = 384, model: str = "hashing-bow-v1") -> None:
        self.dimensions = dimensions
        self.model = model

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dimensions, dtype=np.float32)
        for word in _WORD.findall(text.lower()) or [text]:
            h = int.from_bytes(hashlib.sha256(word.encode("utf-8", "replace")).digest()[:8], "little")
            vec[h % self.dimensions] += 1.0 if (h >> 63) & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0
            norm = 1.0
        return vec / norm

    def _embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dimensions)`` float32 unit vectors."""
        return np.stack([self._vector(t) for t in texts])
