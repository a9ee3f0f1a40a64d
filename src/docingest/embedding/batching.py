"""Count- and token-bounded batching, once, for every API embedder (the pgai habit).

A provider subclasses :class:`BatchingEmbedder` and writes only
``count_tokens`` and ``_embed_batch`` (one API call for one batch). The base
checks every input (non-empty, within the per-input token limit) before anything
is sent, splits the inputs into contiguous batches of at most ``max_inputs``
inputs and ``max_tokens`` tokens, keeps up to ``concurrency`` batches in flight
(one thread pool per embedder, shared by the worker's slots), checks each
reply's shape, and yields batches as they complete so the caller can checkpoint
each one.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from docingest.embedding.base import check_shape
from docingest.errors import EmbeddingInputTooLong, EmbeddingRejected


@dataclass(frozen=True)
class BatchLimits:
    """Limits of one request: inputs, total tokens, tokens of one input (the model's context)."""

    max_inputs: int = 2048
    max_tokens: int = 300_000
    max_input_tokens: int = 8192


def plan_batches(token_counts: Sequence[int], limits: BatchLimits) -> list[tuple[int, int]]:
    """Split inputs ``0..n`` into contiguous ``[start, end)`` ranges within ``limits``.

    Raises:
        EmbeddingRejected: an input has no token (empty text).
        EmbeddingInputTooLong: an input is over ``max_input_tokens``.
    """
    batches: list[tuple[int, int]] = []
    start, tokens = 0, 0
    for i, n in enumerate(token_counts):
        if n <= 0:
            raise EmbeddingRejected(f"input {i} is empty; refusing to send it")
        if n > limits.max_input_tokens:
            raise EmbeddingInputTooLong(
                f"input {i} has {n} tokens, over the model's limit of {limits.max_input_tokens}"
            )
        if i > start and (i - start >= limits.max_inputs or tokens + n > limits.max_tokens):
            batches.append((start, i))
            start, tokens = i, 0
        tokens += n
    if start < len(token_counts):
        batches.append((start, len(token_counts)))
    return batches


class BatchingEmbedder:
    """Base of the API embedders. Subclasses set ``model``/``dimensions`` and write the call.

    Attributes:
        limits: the request limits used by :func:`plan_batches`.
        concurrency: batches in flight at once in this process.
    """

    model: str
    dimensions: int

    def __init__(self, *, limits: BatchLimits, concurrency: int = 4) -> None:
        self.limits = limits
        self.concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.requests_sent = 0  # batches that reached the provider (every try counts)

    # --- what a provider writes -----------------------------------------------------
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the provider counts them."""
        raise NotImplementedError

    def _embed_batch(self, texts: list[str], tokens: int) -> np.ndarray:
        """One API call (with its own retries) -> ``(len(texts), dimensions)`` array."""
        raise NotImplementedError

    # --- the shared part -------------------------------------------------------------
    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="docingest-embed")
            return self._pool

    def _checked(self, texts: list[str], tokens: int) -> np.ndarray:
        return check_shape(np.asarray(self._embed_batch(texts, tokens)), len(texts), self.dimensions)

    def embed_batches(self, texts: Sequence[str]) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, end, vectors)`` for each batch as it completes (any order).

        Every input is checked before the first request. On an error, the batches
        already in flight are awaited and the successful ones still yielded (so the
        caller stores them), then the first error is raised.
        """
        counts = self.count_tokens(texts)
        plan = plan_batches(counts, self.limits)
        pool = self._executor()
        pending: dict[Future[np.ndarray], tuple[int, int]] = {}
        queue = list(reversed(plan))
        error: BaseException | None = None
        while queue or pending:
            while queue and error is None and len(pending) < self.concurrency:
                start, end = queue.pop()
                fut = pool.submit(self._checked, list(texts[start:end]), sum(counts[start:end]))
                pending[fut] = (start, end)
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                start, end = pending.pop(fut)
                exc = fut.exception()
                if exc is not None:
                    error = error or exc
                    continue
                yield start, end, fut.result()
        if error is not None:
            raise error

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dimensions)`` float32, in input order."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start, end, vectors in self.embed_batches(texts):
            out[start:end] = vectors
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
