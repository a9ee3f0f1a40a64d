"""``GET /search?q=&k=&mode=&min_score=&context=``: the user's own chunks, ranked, optionally with
their neighbours."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator

from docingest.api.deps import CurrentUser, SearcherDep
from docingest.api.openapi import replies
from docingest.api.schemas import SearchHitPublic, SearchPublic
from docingest.domain import MAX_CONTEXT
from docingest.services.search import clean_query

router = APIRouter(prefix="/search", tags=["search"])

#: What ``q`` must hold (ECMA-262, as JSON Schema reads it): a character that is neither NUL
#: nor whitespace (Python's ``str.isspace``, what :func:`clean_query` strips).
QUERY_PATTERN = (
    r"[^\u0000\t\n\u000b\u000c\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a"
    r"\u2028\u2029\u202f\u205f\u3000]"
)


def _asked(q: str) -> str:
    """``q`` cleaned (:func:`clean_query`); a ``ValueError`` (422 ``invalid_request`` naming
    ``q``) when nothing is left: the schema's ``pattern`` says the same."""
    query = clean_query(q)
    if not query:
        raise ValueError("the query is empty or only whitespace: ask a question")
    return query


@router.get("", response_model=SearchPublic, responses=replies("bearer", "search"))
def search(
    user: CurrentUser,
    searcher: SearcherDep,
    q: Annotated[
        str,
        AfterValidator(_asked),
        Query(
            description="the question: at least one character that is not whitespace (else 422 "
            "invalid_request); over UPLOAD_PIPELINE_SEARCH_MAX_QUERY_CHARS (2000) characters once "
            "surrounding whitespace is removed: 422 query_too_long",
            json_schema_extra={"pattern": QUERY_PATTERN},
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
    # q is cleaned by ``_asked``; the service checks its length
    hits = searcher.search(q, user_id=user, k=k, mode=mode, min_score=min_score, context=context)
    return SearchPublic(
        query=q,
        mode=mode,
        k=k,
        context=context,
        results=[SearchHitPublic(**h.to_dict()) for h in hits],
    )
