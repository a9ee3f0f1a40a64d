"""``embedding_in_progress`` -> ``embeddings_stored`` and ``embeddings_stored`` -> ``complete``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from docingest.db.repository import Repository
from docingest.domain import JobProgress, Stage
from docingest.errors import NoText
from docingest.observability import metrics
from docingest.providers.embedding.base import Embedder, check_shape
from docingest.providers.storage.base import Storage, delete_objects, document_keys
from docingest.stages.base import StageContext, StageResult


class _Plan:
    """The embedding stage's plan of one document, read in two pages (``embedding_plan``).

    The first ``head`` chunks are read at once; the rest on a thread of its own meanwhile, so
    the head's texts are being sent while it runs. :meth:`complete` joins that read and adds
    its rows; the stage calls it before it stores anything, and the texts iterator before it
    goes past the head, so every chunk sharing a text is known before that text's vector is
    stored. Attributes once complete: ``total`` chunks, ``done`` (those with a vector),
    ``by_hash`` (text SHA-256 -> its chunks, first sent), ``cached`` (SHA-256 -> the cache's
    vector), ``hashes`` and ``first_ids`` (the texts to send, in order, and their chunks).

    Raises (from :meth:`complete`): what the rest's read raised (e.g. ``LeaseLost``).
    """

    def __init__(
        self, repo: Repository, ctx: StageContext, *, model: str, dimensions: int, use_cache: bool, head: int
    ) -> None:
        self.total = self.done = 0
        self.by_hash: dict[bytes, list[dict[str, Any]]] = {}
        self.cached: dict[bytes, np.ndarray] = {}
        self.hashes: list[bytes] = []
        self.first_ids: list[Any] = []
        self._lock = threading.Lock()
        self._rest: list[dict[str, Any]] | None = None
        self._error: BaseException | None = None

        def page(after: int | None, limit: int | None) -> list[dict[str, Any]]:
            # Not fenced: the rest is read while the head's texts are (a fenced read would hold
            # the job row's lock, and they would wait for it). The stage's writes are fenced.
            with ctx.reading() as conn:
                return repo.embedding_plan(
                    conn,
                    ctx.document.document_id,
                    model=model,
                    dimensions=dimensions,
                    use_cache=use_cache,
                    after_ordinal=after,
                    limit=limit,
                )

        rows = page(None, head)
        self._add(rows)
        self.head_texts = len(self.first_ids)
        self._reader: threading.Thread | None = None
        if len(rows) == head:

            def read_rest(after: int = rows[-1]["ordinal"]) -> None:
                try:
                    self._rest = page(after, None)
                except BaseException as exc:  # noqa: BLE001 - raised by complete()
                    self._error = exc

            self._reader = threading.Thread(target=read_rest, name="docingest-embed-plan", daemon=True)
            self._reader.start()

    def _add(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.total += 1
            if row["has_vector"]:
                self.done += 1
                continue
            h = row["text_sha256"]
            if h in self.by_hash:  # a text is sent (or taken from the cache) once
                self.by_hash[h].append(row)
                continue
            self.by_hash[h] = [row]
            if row["cached"] is not None:
                self.cached[h] = row["cached"]
            else:
                self.hashes.append(h)
                self.first_ids.append(row["chunk_id"])

    def complete(self) -> None:
        """Wait for the rest's read and add it (once; safe from any thread)."""
        with self._lock:
            if self._reader is None:
                return
            self._reader.join()
            if self._error is not None:
                raise self._error
            self._add(self._rest or [])
            self._reader, self._rest = None, None


class EmbedChunks:
    """Embed the buffered chunks that have no vector yet, a batch at a time.

    Each stored batch is a checkpoint (vectors and progress in one fenced
    transaction), so a crashed or taken-over job resumes where it stopped.
    A reply of the wrong shape fails the job and writes nothing of that batch.
    With ``cache``, texts already embedded by this model (any document, any
    user) are taken from ``embedding_cache`` and not sent; each distinct text is
    sent once; ``progress.embedding_cache_hits`` counts the chunks served so.
    The batches are the embedder's (``Embedder.embed_batches``), of at most
    ``batch_chunks`` texts when it is set.

    The stage starts sending at once: the plan is read without any text (each chunk's
    SHA-256, written with the chunk, and its cached vector: :class:`_Plan`), its first
    :data:`PLAN_HEAD` chunks before anything is sent and the rest while the first
    requests are in flight, and the texts to send are read a block at a time as the
    embedder's planner asks for them, so no request waits for reads it does not need.
    """

    stage = Stage.EMBEDDING_IN_PROGRESS
    TEXT_BLOCKS = (64, 512)  # texts read for the first request, then per read
    PLAN_HEAD = 512  # chunks planned before the first request: its texts fill the first lanes

    def __init__(
        self,
        embedder_factory: Callable[[], Embedder],
        *,
        dimensions: int,
        batch_chunks: int | None = None,
        cache: bool = False,
    ) -> None:
        self._factory = embedder_factory
        self._embedder: Embedder | None = None
        self.dimensions = dimensions
        self.batch_chunks = batch_chunks
        self.cache = cache  # the embedding cache: (model, dimensions, sha256(text))
        self.repo = Repository()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._factory()
        return self._embedder

    def run(self, ctx: StageContext) -> StageResult:
        doc = ctx.document
        model = self.embedder.model
        plan = _Plan(
            self.repo, ctx, model=model, dimensions=self.dimensions, use_cache=self.cache, head=self.PLAN_HEAD
        )
        hits = ctx.job.progress.embedding_cache_hits or 0
        done = 0
        planned = False

        def complete_plan() -> None:
            """Before the first write: the whole plan, and the cache's vectors stored."""
            nonlocal planned, done, hits
            if planned:
                return
            plan.complete()
            planned = True
            done = plan.done
            if plan.cached:
                by_hash, cached = plan.by_hash, plan.cached
                rows = [r for h in cached for r in by_hash[h]]
                vectors = check_shape(
                    np.stack([cached[h] for h in cached for _ in by_hash[h]]), len(rows), self.dimensions
                )
                done += len(rows)
                hits += len(rows)
                ids = [r["chunk_id"] for r in rows]

                def persist_cached(conn: Any, ids: list[Any] = ids, vectors: Any = vectors) -> None:
                    self.repo.insert_vectors(conn, doc.document_id, ids, vectors, model)

                ctx.save_progress(
                    JobProgress(chunks_embedded=done, chunks_total=plan.total, embedding_cache_hits=hits),
                    persist_cached,
                )
                metrics.EMBED_CACHE_HITS.labels(model=model).inc(len(rows))
            if self.cache and plan.hashes:
                metrics.EMBED_CACHE_MISSES.labels(model=model).inc(len(plan.hashes))

        texts = self._texts(ctx, plan)
        started = time.monotonic()
        embedded_now = 0
        call_started = time.monotonic()
        batches = self.embedder.embed_batches(texts, max_texts=self.batch_chunks)
        while True:
            try:
                start, end, batch_vectors = next(batches)
            except StopIteration:
                break
            except Exception:
                metrics.embedding_call(model, time.monotonic() - call_started, chunks=0, tokens=0, ok=False)
                raise
            complete_plan()
            by_hash, total = plan.by_hash, plan.total
            batch_hashes = plan.hashes[start:end]
            vectors = check_shape(batch_vectors, end - start, self.dimensions)
            metrics.embedding_call(
                model,
                time.monotonic() - call_started,
                chunks=end - start,
                tokens=sum(by_hash[h][0]["token_count"] or 0 for h in batch_hashes),
            )
            rows = [r for h in batch_hashes for r in by_hash[h]]
            per_row = np.repeat(vectors, [len(by_hash[h]) for h in batch_hashes], axis=0)
            done += len(rows)
            embedded_now += len(rows)
            rate = embedded_now / max(time.monotonic() - started, 1e-6)
            progress = JobProgress(
                chunks_embedded=done,
                chunks_total=total,
                embedding_cache_hits=hits,
                eta_s=round((total - done) / rate, 1) if rate > 0 else None,
            )
            ids = [r["chunk_id"] for r in rows]

            def persist(
                conn: Any,
                ids: list[Any] = ids,
                vectors: Any = per_row,
                fresh_hashes: list[bytes] = batch_hashes,
                firsts: list[Any] = plan.first_ids[start:end],
            ) -> None:
                self.repo.insert_vectors(conn, doc.document_id, ids, vectors, model)
                if self.cache:
                    self.repo.embedding_cache_put(
                        conn, model=model, dimensions=self.dimensions, hashes=fresh_hashes, chunk_ids=firsts
                    )

            ctx.save_progress(progress, persist)  # a stored batch is kept even if we stop now
            ctx.check()
            call_started = time.monotonic()
        complete_plan()  # nothing was sent: the plan is still read, and its cached vectors stored
        return StageResult(
            progress=JobProgress(
                chunks_embedded=plan.total, chunks_total=plan.total, eta_s=0, embedding_cache_hits=hits
            )
        )

    def _texts(self, ctx: StageContext, plan: _Plan) -> Iterator[str]:
        """The texts of ``plan.first_ids`` in order, read :data:`TEXT_BLOCKS` at a time when
        asked for: the head's, then (the plan completed) the rest's.

        It runs where the texts are drawn: an API embedder's planner thread, else this stage's
        thread. Each read is its own short transaction,
        closed before a text is handed on, so it never holds the job row while waiting.
        """
        first, size = self.TEXT_BLOCKS
        i = 0
        while True:
            if i >= plan.head_texts:
                plan.complete()  # past the head: the rest of the plan is needed
            if i >= len(plan.first_ids):
                return
            end = min(i + (first if i == 0 else size), len(plan.first_ids))
            if i < plan.head_texts:
                end = min(end, plan.head_texts)  # the head's texts, before the plan completes
            block = plan.first_ids[i:end]
            with ctx.fenced() as conn:
                texts = self.repo.chunk_texts(conn, ctx.document.document_id, block)
            yield from texts
            i = end


class FinalizeDocument:
    """Move the buffered chunks and vectors into ``document_chunks`` and replace the source's
    older versions, in one transaction; then delete those versions' objects.

    ``hnsw_min_chunks``: the chunks join the HNSW index only when their user then has more
    (``SEARCH_EXACT_MAX_CHUNKS``; :meth:`Repository.finalize_document`). The older versions of
    the document's source are deleted in the same transaction
    (:meth:`Repository.replace_older_versions`), so a search sees one version's chunks, never
    both and never none; their object keys are queued in the object outbox there and deleted
    after the commit (a key left by a crash is deleted by the sweep).

    Raises:
        NoText: if the document would end with zero chunks.
    """

    stage = Stage.EMBEDDINGS_STORED

    def __init__(self, storage: Storage | None = None, *, hnsw_min_chunks: int = 20_000) -> None:
        self.repo = Repository()
        self.storage = storage
        self.hnsw_min_chunks = hnsw_min_chunks

    def run(self, ctx: StageContext) -> StageResult:
        doc = ctx.document
        with ctx.fenced() as conn:
            counts = self.repo.buffer_counts(conn, doc.document_id)
        if counts["chunks"] == 0 and counts["final"] == 0:
            raise NoText("the document has no chunks to store")
        replaced: list[Any] = []
        keys: list[str] = []

        def persist(conn: Any) -> None:
            self.repo.finalize_document(conn, doc.document_id, hnsw_min_chunks=self.hnsw_min_chunks)
            replaced[:] = self.repo.replace_older_versions(conn, doc.document_id)
            attached = self.repo.delete_attachments(
                conn, user_id=doc.user_id, document_ids=[old.document_id for old in replaced]
            )
            keys[:] = [
                k
                for old in [*replaced, *attached]
                for k in document_keys(old.user_id, old.document_id, old.raw_path)
            ]
            self.repo.queue_object_deletions(conn, keys)
            if replaced:
                self.repo.insert_event(
                    conn,
                    job_id=ctx.job.job_id,
                    document_id=doc.document_id,
                    stage=self.stage.value,
                    type="version_replaced",
                    payload={"source": doc.source, "replaced": [str(old.document_id) for old in replaced]},
                )

        def after_commit(conn: Any) -> None:
            if self.storage is not None and keys:
                self.repo.forget_object_deletions(conn, delete_objects(self.storage, keys))

        return StageResult(
            persist=persist,
            after_commit=after_commit,
            progress=JobProgress(chunks_stored=counts["chunks"] or counts["final"]),
        )
