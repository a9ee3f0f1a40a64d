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

import itertools
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from docingest.errors import EmbeddingInputTooLong, EmbeddingRejected
from docingest.providers.embedding.base import Batch, Embedder, check_shape

COUNT_BLOCKS = (64, 256)  # texts whose tokens the planner counts first, then at a time


@dataclass(frozen=True)
class BatchLimits:
    """Limits of one request: inputs, total tokens, tokens of one input (the model's context)."""

    max_inputs: int = 2048
    max_tokens: int = 300_000
    max_input_tokens: int = 8192


def iter_batches(token_counts: Iterable[int], limits: BatchLimits) -> Iterator[tuple[int, int, int]]:
    """Contiguous ``(start, end, tokens)`` batches within ``limits``, planned as counts arrive.

    Each input is checked before the batch holding it is yielded, so nothing
    unchecked is ever sent; the batch of good inputs before a refused one is
    yielded before the error is raised.

    Raises:
        EmbeddingRejected: an input has no token (empty text).
        EmbeddingInputTooLong: an input is over ``max_input_tokens``.
    """
    start, tokens, seen = 0, 0, 0
    for i, n in enumerate(token_counts):
        seen = i + 1
        if n <= 0 or n > limits.max_input_tokens:
            if i > start:
                yield start, i, tokens  # the inputs before the refused one are all good
            if n <= 0:
                raise EmbeddingRejected(f"input {i} is empty; refusing to send it")
            raise EmbeddingInputTooLong(
                f"input {i} has {n} tokens, over the model's limit of {limits.max_input_tokens}"
            )
        if i > start and tokens + n > limits.max_tokens:
            yield start, i, tokens
            start, tokens = i, 0
        tokens += n
        if seen - start >= limits.max_inputs:  # full: planned now, not when the next count arrives
            yield start, seen, tokens
            start, tokens = seen, 0
    if start < seen:
        yield start, seen, tokens


class BatchingEmbedder(Embedder):
    """Base of the API embedders. Subclasses set ``model``/``dimensions`` and write the call.

    Attributes:
        limits: the request limits used by :func:`iter_batches`.
        concurrency: batches in flight at once in this process.
        lanes: threads that send batches (default ``concurrency``, one batch in flight each).
            A provider whose HTTP connection pool admits at most ``concurrency`` requests
            at once runs more: a spare lane's request is built and waiting for a
            connection when one frees, so ``concurrency`` stay in flight while the
            lane that freed it checks its reply.
    """

    model: str
    dimensions: int

    def __init__(self, *, limits: BatchLimits, concurrency: int = 4, lanes: int | None = None) -> None:
        self.limits = limits
        self.concurrency = concurrency
        self.lanes = max(lanes or concurrency, concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.requests_sent = 0  # batches that reached the provider (every try counts)

    # --- what a provider writes -----------------------------------------------------
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the provider counts them."""
        raise NotImplementedError

    def _embed_batch(self, texts: list[str], tokens: int, prepared: Any = None) -> Any:
        """One API call (with its own retries) -> ``(len(texts), dimensions)`` array, or a
        checked reply that :meth:`_finish` turns into one. ``prepared``: what
        :meth:`_prepare_batch` made of ``texts`` (None: nothing)."""
        raise NotImplementedError

    def _prepare_batch(self, texts: list[str]) -> Any:
        """Work on a batch before it is sent (the request body), done on the planner thread
        while the lanes wait on the network; handed to ``_embed_batch`` as ``prepared``.
        Default: None, nothing prepared."""
        return None

    def _finish(self, reply: Any) -> np.ndarray:
        """The vectors of what ``_embed_batch`` returned, computed by the thread that consumes
        the batches, not the lane that sends the next one. Default: the array itself.

        Raises:
            DocingestError: the reply cannot be decoded (it then fails the run).
        """
        return np.asarray(reply)

    # --- the shared part -------------------------------------------------------------
    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="docingest-embed")
            return self._pool

    def embed_batches(self, texts: Iterable[str], *, max_texts: int | None = None) -> Iterator[Batch]:
        """Yield ``(start, end, vectors)`` for each batch as it completes (any order).

        Batches hold at most :attr:`limits` (and ``max_texts`` texts when given).

        ``texts`` may be a lazy iterable: the planner thread draws from it as it plans,
        :data:`COUNT_BLOCKS` texts at a time (a small first block, so the first request
        leaves early), and ``start``/``end`` index the texts in the order drawn.
        A planner thread counts tokens and plans batches ahead (each input checked
        before the batch holding it is planned), keeping up to ``2 x concurrency``
        planned batches ready; :attr:`lanes` threads of the embedder's pool each take
        the next planned batch and send it, then take another as soon as its reply is
        in, whatever the caller is doing with earlier results.
        Neither counting nor a thread hand-off sits between a reply and the next
        request: the planner also prepares each batch's request (``_prepare_batch``), and
        the caller's thread decodes each reply (``_finish``) as it takes it. On an error
        no new batch is sent; the batches in flight finish and the successful ones are
        still yielded (so the caller stores them), then the first error is raised.
        """
        limits = (
            self.limits
            if max_texts is None
            else replace(self.limits, max_inputs=min(self.limits.max_inputs, max_texts))
        )
        drawn: list[str] = []  # the texts drawn so far; a planned batch's texts are all in it

        def counts() -> Iterator[int]:
            source = iter(texts)
            size = COUNT_BLOCKS[0]
            while block := list(itertools.islice(source, size)):
                drawn.extend(block)
                yield from self.count_tokens(block)
                size = COUNT_BLOCKS[1]

        planned: queue.Queue[tuple[int, int, int, Any] | BaseException | None] = queue.Queue(
            maxsize=2 * self.concurrency
        )
        results: queue.Queue[tuple[int, int, Any] | BaseException | None] = queue.Queue()
        stop = threading.Event()

        def offer(item: tuple[int, int, int, Any] | BaseException | None) -> bool:
            while not stop.is_set():
                try:
                    planned.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def plan() -> None:
            try:
                for start, end, tokens in iter_batches(counts(), limits):
                    if not offer((start, end, tokens, self._prepare_batch(drawn[start:end]))):
                        return
            except BaseException as exc:  # noqa: BLE001 - an input refused before sending
                offer(exc)
                return
            offer(None)

        def lane() -> None:
            try:
                while not stop.is_set():
                    try:
                        item = planned.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    if stop.is_set():
                        break
                    if item is None or isinstance(item, BaseException):
                        # The plan ended (nothing else is put, so there is room): the other lanes
                        # see the end too. The batches planned before a refused input are sent.
                        planned.put(None)
                        if item is not None:
                            results.put(item)
                        break
                    start, end, tokens, prepared = item
                    results.put((start, end, self._embed_batch(drawn[start:end], tokens, prepared)))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
                stop.set()
                results.put(exc)
            finally:
                results.put(None)

        planner = threading.Thread(target=plan, name="docingest-embed-planner", daemon=True)
        planner.start()
        pool = self._executor()
        running = self.lanes
        for _ in range(running):
            pool.submit(lane)
        errors: list[BaseException] = []
        try:
            while running:
                item = results.get()
                if item is None:
                    running -= 1
                elif isinstance(item, BaseException):
                    errors.append(item)
                else:
                    start, end, reply = item
                    try:
                        vectors = check_shape(np.asarray(self._finish(reply)), end - start, self.dimensions)
                    except BaseException as exc:  # noqa: BLE001 - raised once the lanes stop
                        stop.set()
                        errors.append(exc)
                        continue
                    yield start, end, vectors
        finally:
            stop.set()  # lanes and planner stop within 0.1 s; requests in flight finish
        if errors:
            raise errors[0]

    def _embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dimensions)`` float32, in input order (the batches of :meth:`embed_batches`)."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start, end, vectors in self.embed_batches(texts):
            out[start:end] = vectors
        return out

    def close(self) -> None:
        """Stop the request threads (requests in flight finish; queued ones are dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
