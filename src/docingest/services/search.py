"""Search over a user's chunks: cosine (pgvector HNSW) or hybrid (vector + full text, RRF), each
hit optionally with its neighbouring chunks merged into a passage (``context``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

import numpy as np

from docingest.db.database import Database
from docingest.db.repository import Repository
from docingest.domain import MAX_CONTEXT, Generation, Mode
from docingest.errors import DocingestError, EmbeddingGenerationMismatch, InvalidRequest, QueryTooLong
from docingest.providers.embedding import Embedder
from docingest.services.documents import shown_name
from docingest.services.filters import SearchFilter
from docingest.settings import Settings

DEFAULT_MODE: Mode = "hybrid"


@dataclass
class PassageChunk:
    """One chunk of a :class:`Passage`: where it is in the passage's text and whether it is a hit.

    Attributes:
        chunk_id: the chunk's id.
        ordinal: its position in the document, from 0.
        start, end: ``passage.text[start:end]`` is the chunk's text (offsets in characters, i.e.
            Unicode code points). With ``UPLOAD_PIPELINE_CHUNK_OVERLAP_TOKENS`` above 0,
            consecutive chunks share text and their spans overlap.
        page, page_end: the chunk's first and last page (None for formats without pages).
        heading_path: the headings the chunk sits under, outermost first.
        hit_rank: the ``rank`` of the hit this chunk is, or None for a neighbour.
    """

    chunk_id: str
    ordinal: int
    start: int
    end: int
    page: int | None
    page_end: int | None
    heading_path: list[str]
    hit_rank: int | None


@dataclass
class Passage:
    """Consecutive chunks of one document around one or more hits (``context`` on each side),
    merged where the hits' windows overlap or touch, so no chunk appears in two passages.

    Attributes:
        ordinals: the chunk ordinals covered, ascending (consecutive: the window
            ``ordinal - context .. ordinal + context`` of each hit, clipped to the document's
            first and last chunk, and merged).
        hit_ranks: the ranks of the hits in it, best first; the first carries the passage.
        page, page_end: the first and last page covered (None for formats without pages).
        text: the chunks' text in document order, ready to paste: text shared by overlapping
            chunks appears once; chunks that do not touch in the parsed document are joined by a
            newline when one character separated them there, else by a blank line.
        chunks: each chunk's span of ``text``, ordinal, pages, heading path and hit rank.
    """

    ordinals: list[int]
    hit_ranks: list[int]
    page: int | None
    page_end: int | None
    text: str
    chunks: list[PassageChunk]


@dataclass
class SearchHit:
    """One ranked chunk.

    Attributes:
        source: what the chunk's document is a version of (its path for ``ingest``/``sync``).
        score: the chunk's cosine similarity to the query's embedding, in [-1, 1], in both modes
            (what a person can read and threshold).
        rank: the hit's position in the answer, from 1.
        page_end: the chunk's last page (``page`` is its first; equal for a chunk on one page);
            None for formats without pages.
        rrf_score: hybrid mode only: the fused reciprocal-rank score that ordered the hits
            (:func:`reciprocal_rank_fusion`); None in vector mode.
        passage: with ``context`` above 0, on the best-ranked hit of each passage: the hit with
            its neighbouring chunks (:class:`Passage`); None on the other hits of that passage
            (already in it) and without ``context``.
        passage_rank: with ``context`` above 0, the rank of the hit carrying the passage this hit
            is in (its own rank when it carries it); None without ``context``.
    """

    document_id: str
    filename: str
    page: int | None
    score: float
    text: str
    chunk_id: str
    ordinal: int
    heading_path: list[str] = field(default_factory=list)
    source: str = ""
    page_end: int | None = None
    rank: int = 0
    rrf_score: float | None = None
    passage: Passage | None = None
    passage_rank: int | None = None

    @property
    def name(self) -> str:
        """The hit's document as a person knows it (its source, or its file name)."""
        return shown_name(self.source, self.document_id, self.filename)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shown_score(score: float) -> float:
    """A cosine similarity as hits carry it (and ``min_score`` is compared with it): 6 decimals."""
    return round(float(score), 6)


def _hit(row: dict[str, Any], rank: int, rrf_score: float | None = None) -> SearchHit:
    meta = row["meta"] or {}
    return SearchHit(
        document_id=str(row["document_id"]),
        filename=row["filename"],
        page=meta.get("page"),
        page_end=meta.get("page_end") or meta.get("page"),
        score=shown_score(row["score"]),
        text=row["text"],
        chunk_id=str(row["chunk_id"]),
        ordinal=row["ordinal"],
        heading_path=meta.get("heading_path") or [],
        source=row["source"],
        rank=rank,
        rrf_score=None if rrf_score is None else round(rrf_score, 6),
    )


@dataclass(frozen=True)
class Window:
    """A run of ordinals ``first .. last`` (inclusive) of one document, around ``hits``."""

    document_id: str
    first: int
    last: int
    hits: tuple[SearchHit, ...]


def context_windows(hits: Sequence[SearchHit], context: int) -> list[Window]:
    """The windows of ``context`` chunks before and after each hit, merged per document where
    they overlap or touch (``next.first <= last + 1``), so none shares a chunk with another.

    A window starts at ordinal 0 at the earliest; its end is left past the document's last
    chunk, where the neighbours' query finds nothing. Ordered by document id, then ordinal;
    none for ``context`` 0.
    """
    if context <= 0:
        return []
    by_document: dict[str, list[SearchHit]] = {}
    for h in hits:
        by_document.setdefault(h.document_id, []).append(h)
    windows: list[Window] = []
    for document_id in sorted(by_document):
        run: list[SearchHit] = []
        first = last = 0
        for h in sorted(by_document[document_id], key=lambda h: h.ordinal):
            lo, hi = max(0, h.ordinal - context), h.ordinal + context
            if run and lo <= last + 1:
                run.append(h)
                last = max(last, hi)
                continue
            if run:
                windows.append(Window(document_id, first, last, tuple(run)))
            run, first, last = [h], lo, hi
        windows.append(Window(document_id, first, last, tuple(run)))
    return windows


def join_chunks(pieces: Sequence[tuple[str, int | None, int | None]]) -> tuple[str, list[tuple[int, int]]]:
    """Chunks ``(text, start, end)`` of one document in ordinal order (``start``/``end``: their
    offsets in the parsed document, or None if unknown) joined into one text, and each chunk's
    ``(start, end)`` in it.

    Where a chunk begins at or before the end of the text so far (overlap) and its first
    characters match that text, only its new part is appended; otherwise it is appended after a
    separator: ``"\n"`` when exactly one character separated it from the previous chunk in the
    document, else ``"\n\n"`` (the chunker cuts only at whitespace, which it drops).
    """
    text = ""
    spans: list[tuple[int, int]] = []
    covered_to: int | None = None  # the document offset the text so far reaches
    for piece, start, end in pieces:
        shared = None if covered_to is None or start is None else covered_to - start
        if text and shared is not None and 0 <= shared <= len(piece) and text.endswith(piece[:shared]):
            at = len(text) - shared
            text += piece[shared:]
        else:
            if text:
                gap = None if covered_to is None or start is None else start - covered_to
                text += "\n" if gap == 1 else "\n\n"
            at = len(text)
            text += piece
        spans.append((at, at + len(piece)))
        covered_to = None if end is None else max(end, covered_to or 0)
    return text, spans


def _offset(meta: dict[str, Any], key: str) -> int | None:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _passage(window: Window, rows: list[dict[str, Any]]) -> Passage:
    """The passage of ``window`` from its chunk rows (ordinal order)."""
    ranks = {h.ordinal: h.rank for h in window.hits}
    metas = [r["meta"] or {} for r in rows]
    pieces = []
    for row, meta in zip(rows, metas, strict=True):
        start, end = _offset(meta, "start"), _offset(meta, "end")
        consistent = start is not None and end is not None and end - start == len(row["text"])
        pieces.append((row["text"], start if consistent else None, end if consistent else None))
    text, spans = join_chunks(pieces)
    chunks = [
        PassageChunk(
            chunk_id=str(row["chunk_id"]),
            ordinal=row["ordinal"],
            start=at,
            end=to,
            page=meta.get("page"),
            page_end=meta.get("page_end") or meta.get("page"),
            heading_path=meta.get("heading_path") or [],
            hit_rank=ranks.get(row["ordinal"]),
        )
        for row, meta, (at, to) in zip(rows, metas, spans, strict=True)
    ]
    pages = [p for c in chunks for p in (c.page, c.page_end) if p is not None]
    return Passage(
        ordinals=[c.ordinal for c in chunks],
        hit_ranks=sorted(ranks.values()),
        page=min(pages, default=None),
        page_end=max(pages, default=None),
        text=text,
        chunks=chunks,
    )


def attach_passages(windows: Sequence[Window], rows: Sequence[dict[str, Any]]) -> None:
    """Set ``passage`` and ``passage_rank`` on the hits of ``windows`` from the chunk rows of
    :meth:`Repository.chunk_windows <docingest.db.repository.Repository.chunk_windows>`.

    The best-ranked hit of each window carries its passage; every hit of it gets that hit's
    rank as ``passage_rank``. A window none of whose chunks came back (its document was deleted
    meanwhile) leaves its hits without a passage.
    """
    by_window: dict[int, list[dict[str, Any]]] = {}
    starts: dict[str, list[tuple[int, int, int]]] = {}  # document -> (first, last, window index)
    for i, w in enumerate(windows):
        starts.setdefault(w.document_id, []).append((w.first, w.last, i))
    for row in rows:
        for first, last, i in starts.get(str(row["document_id"]), []):
            if first <= row["ordinal"] <= last:
                by_window.setdefault(i, []).append(row)
                break
    for i, w in enumerate(windows):
        chunk_rows = sorted(by_window.get(i, []), key=lambda r: r["ordinal"])
        if not chunk_rows:
            continue
        owner = min(w.hits, key=lambda h: h.rank)
        owner.passage = _passage(w, chunk_rows)
        for h in w.hits:
            h.passage_rank = owner.rank


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

    The full-text leg matches chunks holding any of the query's words (English lexemes, stop
    words dropped) and ranks them by cover density, the words of a chunk's context (title and
    heading path, weight A) counting most (``search_fulltext`` in ``queries.sql``). The fusion
    settings (``search_rrf_k`` 30, ``search_text_weight`` 0.2 against 1.0 for the vector
    ranking) were chosen on half of the 56 corpus questions (even lines); the full-text leg
    then decides close calls between documents. ``candidates`` ids are fused from each leg.

    Args:
        db: connections (and user-scoped transactions with ``row_security``).
        repo: the queries.
        query_embedder: returns the embedder of queries (called on each search: built on first use).
        config: fusion, index and query-length settings.
        candidates: ids taken from each leg before fusion (hybrid).
        row_security: run the queries scoped to the user (the API; migration 002).
        embedder_for: builds the query embedder of a generation other than ``query_embedder``'s
            (a user still served by the previous model while ``docingest reembed`` runs); None:
            such a search is refused.
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
        embedder_for: Callable[[Generation], Embedder] | None = None,
    ) -> None:
        self.db = db
        self.repo = repo
        self.query_embedder = query_embedder
        self.config = config
        self.candidates = candidates
        self.row_security = row_security
        self.embedder_for = embedder_for

    def embed_query(self, query: str) -> np.ndarray:
        """The query's vector by the configured query embedder (float32, its dimensions)."""
        return self.query_embedder().embed([query])[0]

    def generation_embedder(self, generation: Generation) -> Embedder:
        """The embedder of queries against ``generation``: the configured one when it is that
        model and dimension, else the one ``embedder_for`` builds.

        Raises:
            EmbeddingGenerationMismatch: neither can embed for ``generation`` (never a query
                vector of another model compared with the index's).
        """
        configured = self.query_embedder()
        if (configured.model, configured.dimensions) == (generation.model, generation.dimensions):
            return configured
        reason = "this process builds no other embedder"
        if self.embedder_for is not None:
            try:
                built = self.embedder_for(generation)
            except (DocingestError, ValueError) as exc:
                reason = str(exc)
            else:
                if (built.model, built.dimensions) == (generation.model, generation.dimensions):
                    return built
                reason = f"it built {built.model}/{built.dimensions}"
        raise EmbeddingGenerationMismatch(
            f"this index is served by generation {generation.generation_id} ({generation.label}); "
            f"queries here are embedded by {configured.model}/{configured.dimensions} and {reason}: "
            f"search with EMBEDDING_PROVIDER={generation.provider} EMBEDDING_MODEL={generation.model} "
            f"EMBEDDING_DIMENSIONS={generation.dimensions}, or finish `docingest reembed`"
        )

    def search(
        self,
        query: str,
        *,
        user_id: str,
        k: int = 5,
        mode: Mode = DEFAULT_MODE,
        min_score: float | None = None,
        context: int = 0,
        filter: SearchFilter | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best chunks of ``user_id`` for ``query``, best first.

        The one place a query is checked, for the CLI and the API (which passes it through
        :func:`clean_query` first): a query that :func:`clean_query` leaves empty is the same
        refusal as the API's for a blank ``q``. With ``min_score``, candidates whose cosine ``score`` is
        below it are dropped before the ``k`` best are taken, so fewer than ``k`` (or none)
        may come back. With ``context`` N above 0, each hit also gets the N chunks before and
        after it in its document (by ordinal, clipped at its first and last chunk), merged with
        other hits' where they overlap or touch (:func:`context_windows`), as ``passage`` on the
        best-ranked hit of each passage and ``passage_rank`` on all of them
        (:func:`attach_passages`): one more query for all the hits, in the search's transaction
        (under row security when the searcher has it).

        The query is embedded by the model of the generation serving the user's index
        (:meth:`generation_embedder`); a user with nothing stored gets no hits.

        With ``filter`` (:class:`~docingest.services.filters.SearchFilter`), only the chunks of
        the user's documents it matches are ranked, in both legs, and the ``k`` best of those
        come back: the same answer as ranking the matching chunks alone (see
        :meth:`Repository.search_vector <docingest.db.repository.Repository.search_vector>`).
        An empty filter is no filter.

        Raises:
            InvalidRequest: an empty (blank) query (``invalid_request``, as the API answers it).
            EmbeddingGenerationMismatch: no embedder here for the generation serving the index.
            QueryTooLong: (a ``ValueError``) over ``search_max_query_chars`` characters.
            ValueError: ``k`` < 1, an unknown mode, ``min_score`` outside [-1, 1], or
                ``context`` outside 0 .. :data:`MAX_CONTEXT`.
        """
        if not clean_query(query):
            raise InvalidRequest("the query is empty or only whitespace: ask a question")
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
        if not 0 <= context <= MAX_CONTEXT:
            raise ValueError(f"context must be between 0 and {MAX_CONTEXT} chunks")
        where = None if filter is None or filter.empty else filter.sql_params()
        # One snapshot for the generation and every leg: a version or a generation switched in
        # meanwhile is seen wholly or not at all, never half (no empty or mixed answer).
        with self._transaction(user_id) as conn:
            generation = self.repo.serving_generation(conn, user_id)
            if generation is None:  # nothing stored for this user yet
                return []
            vector = self.generation_embedder(generation).embed([query])[0]
            n = max(k, self.candidates) if mode == "hybrid" else k
            vec_rows = self.repo.search_vector(
                conn,
                user_id=user_id,
                generation=generation,
                embedding=vector,
                limit=n,
                ef_search=max(self.config.ef_search, n),
                exact_max_chunks=self.config.exact_max_chunks,
                filter=where,
            )
            text_rows = (
                self.repo.search_fulltext(
                    conn,
                    user_id=user_id,
                    generation=generation,
                    query=query,
                    embedding=vector,
                    limit=n,
                    filter=where,
                )
                if mode == "hybrid"
                else []
            )
            hits = self._rank(vec_rows, text_rows, k=k, mode=mode, min_score=min_score)
            windows = context_windows(hits, context)
            if windows:
                neighbours = self.repo.chunk_windows(
                    conn, user_id=user_id, windows=[(UUID(w.document_id), w.first, w.last) for w in windows]
                )
                attach_passages(windows, neighbours)
        return hits

    def _transaction(self, user_id: str) -> AbstractContextManager[Any]:
        """A read-only snapshot transaction, scoped to ``user_id`` under row security when the
        searcher has it."""
        if self.row_security:
            return self.db.user_transaction(user_id, snapshot=True)
        return self.db.transaction(snapshot=True)

    def _rank(
        self,
        vec_rows: list[dict[str, Any]],
        text_rows: list[dict[str, Any]],
        *,
        k: int,
        mode: Mode,
        min_score: float | None,
    ) -> list[SearchHit]:
        """The ``k`` best of the legs' rows: vector order, or fused by RRF (hybrid)."""
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
        # Compared as shown: a hit whose printed score is given back as min_score is kept.
        kept = [
            (cid, s) for cid, s in ranked if min_score is None or shown_score(rows[cid]["score"]) >= min_score
        ]
        return [_hit(rows[cid], rank, s) for rank, (cid, s) in enumerate(kept[:k], start=1)]
