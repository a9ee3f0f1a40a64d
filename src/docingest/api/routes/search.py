"""``GET /search?q=&k=&mode=&min_score=&context=`` (and filter parameters), ``POST /search`` (the
same as a JSON body with a ``filter`` object): the user's own chunks, ranked, optionally with
their neighbours, optionally of the documents a filter matches only."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import AfterValidator, StringConstraints

from docingest.api.deps import CurrentUser, SearcherDep
from docingest.api.openapi import replies
from docingest.api.schemas import (
    QUERY_PATTERN,
    FilterMime,
    FilterText,
    SearchCreate,
    SearchHitPublic,
    SearchPublic,
    Timestamp,
    asked,
)
from docingest.domain import MAX_CONTEXT, Mode
from docingest.services.filters import (
    MAX_FILTER_CHARS,
    MAX_FILTER_KEYS,
    MAX_FILTER_VALUES,
    SearchFilter,
    parse_where,
)
from docingest.services.search import Searcher

router = APIRouter(prefix="/search", tags=["search"])

#: A ``where`` parameter: ``key=value``, a non-empty key before the first ``=`` (no NUL).
WhereItem = Annotated[
    str, StringConstraints(max_length=MAX_FILTER_CHARS, pattern="^[^=\\u0000]+=[^\\u0000]*$")
]


def _answer(
    searcher: Searcher,
    user: str,
    q: str,
    *,
    k: int,
    mode: Mode,
    min_score: float | None,
    context: int,
    f: SearchFilter,
) -> SearchPublic:
    """One search (either route's), as the API answers it."""
    hits = searcher.search(q, user_id=user, k=k, mode=mode, min_score=min_score, context=context, filter=f)
    return SearchPublic(
        query=q,
        mode=mode,
        k=k,
        context=context,
        results=[SearchHitPublic(**h.to_dict()) for h in hits],
    )


@router.get("", response_model=SearchPublic, responses=replies("bearer", "search"))
def search(
    user: CurrentUser,
    searcher: SearcherDep,
    q: Annotated[
        str,
        AfterValidator(asked),
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
    source_prefix: Annotated[
        FilterText | None, Query(description="only documents whose source starts with this")
    ] = None,
    document_id: Annotated[
        list[UUID] | None,
        Query(max_length=MAX_FILTER_VALUES, description="only these documents (repeatable: any of them)"),
    ] = None,
    where: Annotated[
        list[WhereItem] | None,
        Query(
            max_length=MAX_FILTER_KEYS,
            description="only documents whose metadata KEY equals VALUE, as key=value (repeatable: other keys "
            'AND, the same key twice OR); compared as text, so year=2024 matches 2024 and "2024", and a '
            "list-valued entry matches when it holds the value",
        ),
    ] = None,
    mime: Annotated[
        list[FilterMime] | None,
        Query(max_length=MAX_FILTER_VALUES, description="only documents of this MIME type (repeatable)"),
    ] = None,
    created_after: Annotated[
        Timestamp | None, Query(description="only documents registered at or after this")
    ] = None,
    created_before: Annotated[
        Timestamp | None, Query(description="only documents registered before this")
    ] = None,
    updated_after: Annotated[
        Timestamp | None, Query(description="only documents updated at or after this")
    ] = None,
    updated_before: Annotated[
        Timestamp | None, Query(description="only documents updated before this")
    ] = None,
) -> SearchPublic:
    """The ``k`` best chunks of your documents for ``q``, with document, page, cosine ``score``,
    ``rank``, (hybrid) the fused ``rrf_score`` and (``context``) the ``passage`` around them;
    with filter parameters, of the documents they match only (every one given must hold)."""
    f = SearchFilter.build(
        source_prefix=source_prefix,
        document_ids=document_id,
        meta=parse_where(where or []),
        mime=mime,
        created_after=created_after,
        created_before=created_before,
        updated_after=updated_after,
        updated_before=updated_before,
    )
    # q is cleaned by ``asked``; the service checks its length
    return _answer(searcher, user, q, k=k, mode=mode, min_score=min_score, context=context, f=f)


@router.post("", response_model=SearchPublic, responses=replies("bearer", "search"))
def search_post(user: CurrentUser, searcher: SearcherDep, body: SearchCreate) -> SearchPublic:
    """``GET /search`` with a JSON body: ``q``, ``k``, ``mode``, ``min_score``, ``context`` and a
    ``filter`` (``source_prefix``, ``document_ids``, ``meta`` {key: value or [values]}, ``mime``,
    ``created_after`` ... ``updated_before``): the ``k`` best chunks of the documents it matches."""
    return _answer(
        searcher,
        user,
        body.q,
        k=body.k,
        mode=body.mode,
        min_score=body.min_score,
        context=body.context,
        f=body.filter.to_filter(),
    )
