"""``embedding_in_progress`` -> ``embeddings_stored`` and ``embeddings_stored`` -> ``complete``."""

from __future__ import annotations

import time
from typing import Any, Callable

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
    """

    stage = Stage.EMBEDDING_IN_PROGRESS

    def __init__(
        self, embedder_factory: Callable[[], Embedder], *, dimensions: int, batch_chunks: int = 256
    ) -> None:
        self._factory = embedder_factory
        self._embedder: Embedder | None = None
        self.dimensions = dimensions
        self.batch_chunks = batch_chunks
        self.repo = Repository()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._factory()
        return self._embedder

    def run(self, ctx: StageContext) -> StageResult:
        doc = ctx.document
        with ctx.fenced() as conn:
            counts = self.repo.buffer_counts(conn, doc.document_id)
            pending = self.repo.pending_chunks(conn, doc.document_id)
        total = counts["chunks"]
        done = total - len(pending)
        started = time.monotonic()
        for i in range(0, len(pending), self.batch_chunks):
            batch = pending[i : i + self.batch_chunks]
            ctx.check()
            call_started = time.monotonic()
            try:
                vectors = check_shape(
                    self.embedder.embed([r["text"] for r in batch]), len(batch), self.dimensions
                )
            except Exception:
                metrics.embedding_call(self.embedder.model, time.monotonic() - call_started,
                                       chunks=len(batch), tokens=0, ok=False)
                raise
            metrics.embedding_call(self.embedder.model, time.monotonic() - call_started,
                                   chunks=len(batch), tokens=sum(r["token_count"] or 0 for r in batch))
            done += len(batch)
            rate = (done - (total - len(pending))) / max(time.monotonic() - started, 1e-6)
            progress = {"chunks_embedded": done, "chunks_total": total,
                        "eta_s": round((total - done) / rate, 1) if rate > 0 else None}
            ids = [r["chunk_id"] for r in batch]
            model = self.embedder.model

            def persist(conn: Any, ids: list[Any] = ids, vectors: Any = vectors) -> None:
                self.repo.insert_vectors(conn, doc.document_id, ids, vectors, model)

            ctx.save_progress(progress, persist)
        return StageResult(progress={"chunks_embedded": total, "chunks_total": total, "eta_s": 0})


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
