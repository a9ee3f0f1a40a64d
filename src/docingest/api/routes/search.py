"""``GET /search?q=&k=&mode=&min_score=&context=``: the user's own chunks, ranked, optionally with
their neighbours."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from docingest.api.deps import CurrentUser, SearcherDep
from docingest.api.schemas import ErrorPublic, SearchHitPublic, SearchPublic
from docingest.domain import MAX_CONTEXT
from docingest.services.search import clean_query

router = APIRouter(prefix="/search", tags=["search"])


@router.get("", response_model=SearchPublic, responses={400: {"model": ErrorPublic}})
def search(
    user: CurrentUser,
    searcher: SearcherDep,
    q: Annotated[
        str,
        Query(
            description="the question; empty or blank: 400 bad_request; over "
            "UPLOAD_PIPELINE_SEARCH_MAX_QUERY_CHARS (2000) characters: 422 query_too_long",
        ),
    ],
    k: Annotated[int, Query(ge=1, le=100)] = 5,
    mode: Literal["vector", "hybrid"] = "hybrid",
    min_score: Annotated[
        float | None,
        Query(
            ge=-1, le=1, description="drop hits whose cosine score is below this (fewer than k may come back)"
        ),
    ] = None,
    context: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_CONTEXT,
            description="return this many chunks before and after each hit in its document, merged "
            "into one passage where hits' windows overlap or touch",
        ),
    ] = 0,
) -> SearchPublic:
    """The ``k`` best chunks of your documents for ``q``, with document, page, cosine ``score``,
    ``rank``, (hybrid) the fused ``rrf_score`` and (``context``) the ``passage`` around them."""
    query = clean_query(q)
    # the service checks q
    hits = searcher.search(query, user_id=user, k=k, mode=mode, min_score=min_score, context=context)
    return SearchPublic(
        query=query,
        mode=mode,
        k=k,
        context=context,
        results=[SearchHitPublic(**h.to_dict()) for h in hits],
    )
