"""Search over a user's chunks: cosine (pgvector HNSW) or hybrid (vector + full text, RRF)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from docingest.db.database import Database
from docingest.db.repository import Repository
from docingest.domain import Mode
from docingest.errors import QueryTooLong, RequestError
from docingest.providers.embedding import Embedder
from docingest.settings import Settings

DEFAULT_MODE: Mode = "hybrid"


@dataclass
class SearchHit:
    """One ranked chunk.

    Attributes:
        score: the chunk's cosine similarity to the query's embedding, in [-1, 1], in both modes
            (what a person can read and threshold).
        rank: the hit's position in the answer, from 1.
        rrf_score: hybrid mode only: the fused reciprocal-rank score that ordered the hits
            (:func:`reciprocal_rank_fusion`); None in vector mode.
    """

    document_id: str
    filename: str
    page: int | None
    score: float
    text: str
    chunk_id: str
    ordinal: int
    heading_path: list[str] = field(default_factory=list)
    rank: int = 0
    rrf_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hit(row: dict[str, Any], rank: int, rrf_score: float | None = None) -> SearchHit:
    meta = row["meta"] or {}
    return SearchHit(
        document_id=str(row["document_id"]),
        filename=row["filename"],
        page=meta.get("page"),
        score=round(float(row["score"]), 6),
        text=row["text"],
        chunk_id=str(row["chunk_id"]),
        ordinal=row["ordinal"],
        heading_path=meta.get("heading_path") or [],
        rank=rank,
        rrf_score=None if rrf_score is None else round(rrf_score, 6),
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


def clean_query(query: str) -> str:
    """``query`` without NUL characters, lone surrogates and surrounding whitespace (what the
    API searches for a ``q`` parameter; :meth:`Searcher.search` then checks it)."""
    return "".join(ch for ch in query if ch != "\x00" and not "\ud800" <= ch <= "\udfff").strip()


@dataclass(frozen=True)
class SearchConfig:
    """How searches run.

    Attributes:
        rrf_k: the ``k`` of reciprocal rank fusion (hybrid mode).
        text_weight: the full-text ranking's weight in the fusion (the vector ranking's is 1.0).
        ef_search: HNSW's candidate list size (raised to the candidates asked for).
        max_query_chars: the longest query accepted, in characters.
        exact_max_chunks: a user with at most this many chunks is searched exactly.
    """

    rrf_k: float
    text_weight: float
    ef_search: int
    max_query_chars: int
    exact_max_chunks: int

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchConfig:
        """The ``UPLOAD_PIPELINE_SEARCH_*`` settings."""
        return cls(
            rrf_k=settings.search_rrf_k,
            text_weight=settings.search_text_weight,
            ef_search=settings.search_ef_search,
            max_query_chars=settings.search_max_query_chars,
            exact_max_chunks=settings.search_exact_max_chunks,
        )


class Searcher:
    """Runs searches; embeds queries with the queries' embedder.

    The fusion settings (``search_rrf_k`` 30, ``search_text_weight`` 0.2 against 1.0 for
    the vector ranking) were tuned on the 56 corpus questions: the full-text leg uses
    ``websearch_to_tsquery`` (every word must match), so it is silent on most
    questions and decisive when a question names exact terms; hybrid then scores at
    least as well as vector on every figure. ``candidates`` ids are fused from each leg.

    Args:
        db: connections (and user-scoped transactions with ``row_security``).
        repo: the queries.
        query_embedder: returns the embedder of queries (called on each search: built on first use).
        config: fusion, index and query-length settings.
        candidates: ids taken from each leg before fusion (hybrid).
        row_security: run the queries scoped to the user (the API; migration 002).
    """

    def __init__(
        self,
        db: Database,
        repo: Repository,
        query_embedder: Callable[[], Embedder],
        config: SearchConfig,
        *,
        candidates: int = 60,
        row_security: bool = False,
    ) -> None:
        self.db = db
        self.repo = repo
        self.query_embedder = query_embedder
        self.config = config
        self.candidates = candidates
        self.row_security = row_security

    def embed_query(self, query: str) -> np.ndarray:
        """The query's vector (float32, the embedder's dimensions)."""
        return self.query_embedder().embed([query])[0]

    def search(
        self,
        query: str,
        *,
        user_id: str,
        k: int = 5,
        mode: Mode = DEFAULT_MODE,
        min_score: float | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best chunks of ``user_id`` for ``query``, best first.

        The one place a query is checked, for the CLI and the API (which passes it through
        :func:`clean_query` first). With ``min_score``, candidates whose cosine ``score`` is
        below it are dropped before the ``k`` best are taken, so fewer than ``k`` (or none)
        may come back.

        Raises:
            RequestError: an empty (blank) query.
            QueryTooLong: (a ``ValueError``) over ``search_max_query_chars`` characters.
            ValueError: ``k`` < 1, an unknown mode, or ``min_score`` outside [-1, 1].
        """
        if not query.strip():
            raise RequestError("the query is empty")
        if len(query) > self.config.max_query_chars:
            raise QueryTooLong(
                f"the query has {len(query)} characters; at most {self.config.max_query_chars} are accepted "
                "(UPLOAD_PIPELINE_SEARCH_MAX_QUERY_CHARS): ask a shorter question"
            )
        if k < 1:
            raise ValueError("k must be at least 1")
        if mode not in ("vector", "hybrid"):
            raise ValueError(f"unknown mode {mode!r}: use vector or hybrid")
        if min_score is not None and not -1.0 <= min_score <= 1.0:
            raise ValueError("min_score is a cosine similarity: between -1 and 1")
        vector = self.embed_query(query)
        n = max(k, self.candidates) if mode == "hybrid" else k
        transaction = self.db.user_transaction(user_id) if self.row_security else self.db.transaction()
        with transaction as conn:
            vec_rows = self.repo.search_vector(
                conn,
                user_id=user_id,
                embedding=vector,
                limit=n,
                ef_search=max(self.config.ef_search, n),
                exact_max_chunks=self.config.exact_max_chunks,
            )
            text_rows = (
                self.repo.search_fulltext(conn, user_id=user_id, query=query, embedding=vector, limit=n)
                if mode == "hybrid"
                else []
            )
        ranked: list[tuple[str, float | None]]  # (chunk id, fused score), best first
        if mode == "vector":
            rows = {str(r["chunk_id"]): r for r in vec_rows}
            ranked = [(cid, None) for cid in rows]
        else:
            rows = {str(r["chunk_id"]): r for r in text_rows + vec_rows}
            fused = reciprocal_rank_fusion(
                [[str(r["chunk_id"]) for r in vec_rows], [str(r["chunk_id"]) for r in text_rows]],
                k=self.config.rrf_k,
                weights=[1.0, self.config.text_weight],
            )
            ranked = [(cid, s) for cid, s in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))]
        kept = [(cid, s) for cid, s in ranked if min_score is None or rows[cid]["score"] >= min_score]
        return [_hit(rows[cid], rank, s) for rank, (cid, s) in enumerate(kept[:k], start=1)]
