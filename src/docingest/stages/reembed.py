"""A re-embedding job (``upload_jobs.kind = 'reembed'``): a stored document's chunks embedded
again by another generation, without parsing, then the user's switch once every chunk is.

``embedding_in_progress`` -> ``embeddings_stored``: :class:`ReembedDocument`;
``embeddings_stored`` -> ``complete``: :class:`SwitchGeneration`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from docingest.db.repository import Repository
from docingest.domain import EMBEDDED_CONTEXT, Generation, JobProgress, Stage, embedding_input
from docingest.errors import InternalInvariantError
from docingest.providers.embedding.base import Embedder
from docingest.stages.base import StageContext, StageResult


def _target(ctx: StageContext, repo: Repository) -> Generation:
    """The generation the job embeds into (``control.reembed_generation``).

    Raises:
        InternalInvariantError: the job names none, or one that does not exist.
    """
    generation_id = ctx.job.control.reembed_generation
    generation = None
    if generation_id is not None:
        with ctx.reading() as conn:
            generation = repo.get_generation(conn, generation_id)
    if generation is None:
        raise InternalInvariantError(
            f"bug: re-embedding job names generation {generation_id!r}, which does not exist"
        )
    return generation


class ReembedDocument:
    """Embed the document's stored chunks by the job's generation into ``chunk_embeddings_next``.

    The chunks' texts and contexts are read from ``document_chunks`` (nothing is parsed or
    chunked again); vectors the embedding cache holds for the generation are taken from it;
    the rest are sent in batches of the embedder's ``batch_texts``, each batch stored with the
    job's progress in one fenced transaction (a checkpoint: a new attempt after a crash sends
    only the chunks without a vector of the generation). The provider's rate limits apply as
    for ingestion (the embedder is the generation's, with this process's limiter).

    Args:
        embedder_for: the documents' embedder of a generation (``Runtime.embedder_for``).
        cache: read and fill the embedding cache (``UPLOAD_PIPELINE_EMBEDDING_CACHE``).

    Raises:
        what the embedder raises (``embedding_unavailable`` is retried), InternalInvariantError.
    """

    stage = Stage.EMBEDDING_IN_PROGRESS

    def __init__(self, embedder_for: Callable[[Generation], Embedder], *, cache: bool = True) -> None:
        self.embedder_for = embedder_for
        self.cache = cache
        self.repo = Repository()

    def run(self, ctx: StageContext) -> StageResult:
        doc = ctx.document
        generation = _target(ctx, self.repo)
        with ctx.reading() as conn:
            total = self.repo.document_chunk_count(conn, doc.document_id)
            plan = self.repo.reembed_plan(conn, doc.document_id, generation, use_cache=self.cache)
        done = total - len(plan)
        hits = [r for r in plan if r["cached"] is not None]
        if hits:
            done += len(hits)
            self._store(
                ctx, generation, hits, np.stack([r["cached"] for r in hits]), done, total, cache=False
            )
        todo = [r for r in plan if r["cached"] is None]
        embedder = self.embedder_for(generation) if todo else None
        for start in range(0, len(todo), embedder.batch_texts if embedder else 1):
            assert embedder is not None
            batch = todo[start : start + embedder.batch_texts]
            vectors = embedder.embed(
                [embedding_input(r["text"], {EMBEDDED_CONTEXT: r["context"]}) for r in batch]
            )
            ctx.check()
            done += len(batch)
            self._store(ctx, generation, batch, vectors, done, total, cache=self.cache)
        return StageResult(
            progress=JobProgress(chunks_total=total, chunks_embedded=total, embedding_cache_hits=len(hits)),
            events=[("reembedded", {"generation_id": generation.generation_id, "chunks": len(plan)})],
        )

    def _store(
        self,
        ctx: StageContext,
        generation: Generation,
        rows: list[dict[str, Any]],
        vectors: np.ndarray,
        done: int,
        total: int,
        *,
        cache: bool,
    ) -> None:
        ids = [r["chunk_id"] for r in rows]

        def persist(conn: Any) -> None:
            self.repo.insert_next_vectors(
                conn,
                user_id=ctx.document.user_id,
                generation_id=generation.generation_id,
                chunk_ids=ids,
                vectors=vectors,
            )
            if cache:
                self.repo.embedding_cache_put_next(
                    conn, generation=generation, hashes=[bytes(r["text_sha256"]) for r in rows], chunk_ids=ids
                )

        ctx.save_progress(JobProgress(chunks_total=total, chunks_embedded=done), persist)


class SwitchGeneration:
    """Switch the document's user to the job's generation once every chunk of theirs has a
    vector of it (``Repository.switch_generation_if_covered``: one transaction, serialised per
    user); until then their searches keep using the previous generation. The job that finds
    the last chunk covered makes the switch, records ``generation_switched`` and the others
    record nothing; all complete."""

    stage = Stage.EMBEDDINGS_STORED

    def __init__(self) -> None:
        self.repo = Repository()

    def run(self, ctx: StageContext) -> StageResult:
        generation = _target(ctx, self.repo)
        result = StageResult()

        def persist(conn: Any) -> None:
            switched = self.repo.switch_generation_if_covered(
                conn, user_id=ctx.document.user_id, generation_id=generation.generation_id
            )
            if switched is not None:  # read by the transition, which writes the events after this
                result.events.append(
                    (
                        "generation_switched",
                        {
                            "generation_id": generation.generation_id,
                            "label": generation.label,
                            "chunks": switched,
                        },
                    )
                )

        result.persist = persist
        return result
