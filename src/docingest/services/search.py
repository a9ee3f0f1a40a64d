"""Search over a user's chunks: cosine (pgvector HNSW) or hybrid (vector + full text, RRF)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from docingest.errors import QueryTooLong
from docingest.runtime import Runtime

Mode = Literal["vector", "hybrid"]
DEFAULT_MODE: Mode = "hybrid"


@dataclass
class SearchHit:
    """One ranked chunk; ``score`` is cosine similarity (vector) or the fused RRF score (hybrid)."""

    document_id: str
    filename: str
    page: int | None
    score: float
    text: str
    chunk_id: str
    ordinal: int
    heading_path: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hit(row: dict[str, Any], score: float) -> SearchHit:
    meta = row["meta"] or {}
    return SearchHit(
        document_id=str(row["document_id"]), filename=row["filename"], page=meta.get("page"),
        score=round(float(score), 6), text=row["text"], chunk_id=str(row["chunk_id"]),
        ordinal=row["ordinal"], heading_path=meta.get("heading_path") or [],
    )


def reciprocal_rank_fusion(
    rankings: list[list[str]], *, k: float = 60.0, weights: list[float] | None = None
) -> dict[str, float]:
    """Fuse ranked id lists: ``score(id) = sum_i w_i / (k + rank_i(id))``, ranks from 1.

    Source: Cormack, Clarke and Buettcher, "Reciprocal Rank Fusion outperforms
    Condorcet and individual Rank Learning Methods" (SIGIR 2009), k = 60.
    """
    weights = weights or [1.0] * len(rankings)
    scores: dict[str, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + w / (k + rank)
    return scores


class Searcher:
    """Runs searches for one runtime; embeds queries with the configured embedder.

    The fusion settings (``search_rrf_k`` 30, ``search_text_weight`` 0.2 against 1.0 for
    the vector ranking) were tuned on the 56 corpus questions: the full-text leg uses
    ``websearch_to_tsquery`` (every word must match), so it is silent on most
    questions and decisive when a question names exact terms; hybrid then scores at
    least as well as vector on every figure. ``candidates`` ids are fused from each leg.
    """

    def __init__(self, rt: Runtime, *, candidates: int = 60, row_security: bool = False) -> None:
        self.rt = rt
        self.rrf_k = rt.settings.search_rrf_k
        self.text_weight = rt.settings.search_text_weight
        self.ef_search = rt.settings.search_ef_search
        self.max_query_chars = rt.settings.search_max_query_chars
        self.candidates = candidates
        self.row_security = row_security  # the API: queries run scoped to the user (migration 002)

    def embed_query(self, query: str) -> np.ndarray:
        return self.rt.query_embedder().embed([query])[0]

    def search(self, query: str, *, user_id: str, k: int = 5, mode: Mode = DEFAULT_MODE) -> list[SearchHit]:
        """The ``k`` best chunks of ``user_id`` for ``query``, best first.

        Raises:
            QueryTooLong: (a ``ValueError``) over ``search_max_query_chars`` characters.
            ValueError: for an empty query, ``k`` < 1 or an unknown mode.
        """
        if not query.strip():
            raise ValueError("the query is empty")
        if len(query) > self.max_query_chars:
            raise QueryTooLong(
                f"the query has {len(query)} characters; at most {self.max_query_chars} are accepted "
                "(UPLOAD_PIPELINE_SEARCH_MAX_QUERY_CHARS): ask a shorter question")
        if k < 1:
            raise ValueError("k must be at least 1")
        if mode not in ("vector", "hybrid"):
            raise ValueError(f"unknown mode {mode!r}: use vector or hybrid")
        vector = self.embed_query(query)
        n = max(k, self.candidates) if mode == "hybrid" else k
        with self.rt.pool().connection() as conn, conn.transaction():
            if self.row_security:
                self.rt.repo.scope_to_user(conn, user_id)
            vec_rows = self.rt.repo.search_vector(
                conn, user_id=user_id, embedding=vector, limit=n, ef_search=max(self.ef_search, n),
                exact_max_chunks=self.rt.settings.search_exact_max_chunks)
            text_rows = (self.rt.repo.search_fulltext(conn, user_id=user_id, query=query, limit=n)
                         if mode == "hybrid" else [])
        if mode == "vector":
            return [_hit(r, r["score"]) for r in vec_rows]
        rows = {str(r["chunk_id"]): r for r in text_rows + vec_rows}
        fused = reciprocal_rank_fusion(
            [[str(r["chunk_id"]) for r in vec_rows], [str(r["chunk_id"]) for r in text_rows]],
            k=self.rrf_k, weights=[1.0, self.text_weight],
        )
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [_hit(rows[cid], score) for cid, score in best]
