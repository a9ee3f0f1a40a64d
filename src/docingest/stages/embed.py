"""``embedding_in_progress`` -> ``embeddings_stored`` and ``embeddings_stored`` -> ``complete``."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from docingest import metrics
from docingest.db.repository import Repository
from docingest.domain import Stage
from docingest.embedding.base import Embedder, check_shape
from docingest.errors import NoText
from docingest.stages.base import StageContext, StageResult


class EmbedChunks:
    """Embed the buffered chunks that have no vector yet, a batch at a time.

    Each stored batch is a checkpoint (vectors and progress in one fenced
    transaction), so a crashed or taken-over job resumes where it stopped.
    A reply of the wrong shape fails the job and writes nothing of that batch.
    With ``cache``, texts already embedded by this model (any document, any
    user) are taken from ``embedding_cache`` and not sent; each distinct text is
    sent once; ``progress.embedding_cache_hits`` counts the chunks served so.

    The stage starts sending at once: one query plans the stage without any text
    (each chunk's SHA-256, written with the chunk, and its cached vector:
    ``embedding_plan``), and the texts to send are read a block at a time
    (:data:`TEXT_BLOCKS`) as the embedder's planner asks for them, while the first
    requests are in flight. Reading every text before the first request was a
    tenth of the stage against an API at 100 ms per request.
    """

    stage = Stage.EMBEDDING_IN_PROGRESS
    TEXT_BLOCKS = (64, 512)  # texts read for the first request, then per read

    def __init__(
        self, embedder_factory: Callable[[], Embedder], *, dimensions: int, batch_chunks: int = 256,
        cache: bool = False,
    ) -> None:
        self._factory = embedder_factory
        self._embedder: Embedder | None = None
        self.dimensions = dimensions
        self.batch_chunks = batch_chunks
        self.cache = cache  # the embedding cache (issue 4): (model, dimensions, sha256(text))
        self.repo = Repository()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._factory()
        return self._embedder

    def run(self, ctx: StageContext) -> StageResult:
        doc = ctx.document
        model = self.embedder.model
        with ctx.fenced() as conn:
            plan = self.repo.embedding_plan(conn, doc.document_id, model=model,
                                            dimensions=self.dimensions, use_cache=self.cache)
        total = len(plan)
        done = sum(r["has_vector"] for r in plan)
        hits = int(ctx.job.progress.get("embedding_cache_hits") or 0)
        # One entry per distinct text: a text is sent once, whatever the number of chunks.
        by_hash: dict[bytes, list[dict[str, Any]]] = {}
        cached: dict[bytes, np.ndarray] = {}
        for row in plan:
            if not row["has_vector"]:
                by_hash.setdefault(row["text_sha256"], []).append(row)
                if row["cached"] is not None:
                    cached[row["text_sha256"]] = row["cached"]
        if cached:
            rows = [r for h in cached for r in by_hash[h]]
            vectors = check_shape(np.stack([cached[h] for h in cached for _ in by_hash[h]]),
                                  len(rows), self.dimensions)
            done += len(rows)
            hits += len(rows)
            ids = [r["chunk_id"] for r in rows]

            def persist_cached(conn: Any, ids: list[Any] = ids, vectors: Any = vectors) -> None:
                self.repo.insert_vectors(conn, doc.document_id, ids, vectors, model)

            ctx.save_progress({"chunks_embedded": done, "chunks_total": total,
                               "embedding_cache_hits": hits}, persist_cached)
            metrics.EMBED_CACHE_HITS.labels(model=model).inc(len(rows))
        hashes = [h for h in by_hash if h not in cached]
        if self.cache and hashes:
            metrics.EMBED_CACHE_MISSES.labels(model=model).inc(len(hashes))
        first_ids = [by_hash[h][0]["chunk_id"] for h in hashes]  # the chunk whose text is sent
        texts = self._texts(ctx, first_ids)
        started = time.monotonic()
        embedded_now = 0
        call_started = time.monotonic()
        batches = self._embed(texts)
        while True:
            try:
                start, end, batch_vectors = next(batches)
            except StopIteration:
                break
            except Exception:
                metrics.embedding_call(model, time.monotonic() - call_started, chunks=0, tokens=0,
                                       ok=False)
                raise
            batch_hashes = hashes[start:end]
            vectors = check_shape(batch_vectors, end - start, self.dimensions)
            metrics.embedding_call(model, time.monotonic() - call_started, chunks=end - start,
                                   tokens=sum(by_hash[h][0]["token_count"] or 0 for h in batch_hashes))
            rows = [r for h in batch_hashes for r in by_hash[h]]
            per_row = np.repeat(vectors, [len(by_hash[h]) for h in batch_hashes], axis=0)
            done += len(rows)
            embedded_now += len(rows)
            rate = embedded_now / max(time.monotonic() - started, 1e-6)
            progress = {"chunks_embedded": done, "chunks_total": total, "embedding_cache_hits": hits,
                        "eta_s": round((total - done) / rate, 1) if rate > 0 else None}
            ids = [r["chunk_id"] for r in rows]

            def persist(conn: Any, ids: list[Any] = ids, vectors: Any = per_row,
                        fresh_hashes: list[bytes] = batch_hashes,
                        firsts: list[Any] = first_ids[start:end]) -> None:
                self.repo.insert_vectors(conn, doc.document_id, ids, vectors, model)
                if self.cache:
                    self.repo.embedding_cache_put(conn, model=model, dimensions=self.dimensions,
                                                  hashes=fresh_hashes, chunk_ids=firsts)

            ctx.save_progress(progress, persist)  # a stored batch is kept even if we stop now
            ctx.check()
            call_started = time.monotonic()
        return StageResult(progress={"chunks_embedded": total, "chunks_total": total, "eta_s": 0,
                                     "embedding_cache_hits": hits})

    def _texts(self, ctx: StageContext, chunk_ids: list[Any]) -> Iterator[str]:
        """The texts of ``chunk_ids`` in order, read :data:`TEXT_BLOCKS` at a time when asked for.

        It runs where the texts are drawn: an API embedder's planner thread, else this stage's
        thread. Each read is its own short transaction,
        closed before a text is handed on, so it never holds the job row while waiting.
        """
        first, size = self.TEXT_BLOCKS
        i = 0
        while i < len(chunk_ids):
            block = chunk_ids[i : i + (first if i == 0 else size)]
            with ctx.fenced() as conn:
                texts = self.repo.chunk_texts(conn, ctx.document.document_id, block)
            yield from texts
            i += len(block)

    def _embed(self, texts: Iterator[str]) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, end, vectors)`` per batch: the embedder's own batching (several in flight)
        when it has one (``BatchingEmbedder.embed_batches``), else slices of ``batch_chunks``."""
        batches = getattr(self.embedder, "embed_batches", None)
        if batches is not None:
            yield from batches(texts)
            return
        start = 0
        while batch := list(itertools.islice(texts, self.batch_chunks)):
            yield start, start + len(batch), self.embedder.embed(batch)
            start += len(batch)


class FinalizeDocument:
    """Move the buffered chunks and vectors into ``document_chunks`` in one transaction.

    Raises:
        NoText: if the document would end with zero chunks.
    """

    stage = Stage.EMBEDDINGS_STORED

    def __init__(self) -> None:
        self.repo = Repository()

    def run(self, ctx: StageContext) -> StageResult:
        doc = ctx.document
        with ctx.fenced() as conn:
            counts = self.repo.buffer_counts(conn, doc.document_id)
        if counts["chunks"] == 0 and counts["final"] == 0:
            raise NoText("the document has no chunks to store")

        def persist(conn: Any) -> None:
            self.repo.finalize_document(conn, doc.document_id)

        return StageResult(persist=persist, progress={"chunks_stored": counts["chunks"] or counts["final"]})
