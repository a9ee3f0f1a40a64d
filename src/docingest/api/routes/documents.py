"""``GET /documents``, ``GET /documents/{id}``, ``GET /documents/{id}/events``, ``DELETE /documents/{id}``."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import StreamingResponse

from docingest.api.deps import CurrentUser, DocumentsDep, SettingsDep
from docingest.api.openapi import replies
from docingest.api.schemas import DocumentList, DocumentPublic
from docingest.domain import State
from docingest.services.progress import sse_stream

router = APIRouter(prefix="/documents", tags=["documents"])

#: The longest ``q`` of ``GET /documents`` (a source is at most 1,024 characters).
MAX_NAME_FILTER_CHARS = 1024

#: One message of the event stream as a client parses it (OpenAPI 3.1: the ``schema`` of a
#: ``text/event-stream`` describes each event); ``data`` is the event's JSON.
SSE_EVENT_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "the event_id: send the last one back as Last-Event-ID"},
        "event": {"type": "string", "description": "the event's type, e.g. job_created, retry_scheduled"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/DocumentEventPublic"},
        },
        "retry": {"type": "integer", "description": "milliseconds to wait before reconnecting"},
    },
}


@router.get("", response_model=DocumentList, responses=replies("bearer"))
def list_documents(
    user: CurrentUser,
    documents: DocumentsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    state: Annotated[
        list[State] | None,
        Query(description="only documents whose latest job is in this state (repeat for several)"),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=MAX_NAME_FILTER_CHARS,
            pattern=r"^[^\x00]*$",
            description="only documents whose filename or source contains this text, ignoring "
            "case (taken literally: % and _ are not wildcards)",
        ),
    ] = None,
) -> DocumentList:
    """Your documents, newest first, each with its latest job's stage and state; ``total``
    counts every document the filters match (``limit`` and ``offset`` page through them)."""
    rows, total = documents.list_documents(user, limit=limit, offset=offset, states=state, name_contains=q)
    return DocumentList(
        documents=[DocumentPublic.from_row(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get("/{document_id}", response_model=DocumentPublic, responses=replies("bearer", "resource"))
def get_document(document_id: UUID, user: CurrentUser, documents: DocumentsDep) -> DocumentPublic:
    """Stage, state, progress, attempts, error and timestamps of one of your documents."""
    return DocumentPublic.from_row(documents.get_document(user, document_id))


@router.get(
    "/{document_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the event stream (Server-Sent Events): first a `retry` field, then "
            "one message per event, `: keepalive` comments in between",
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
        },
        **replies("bearer", "resource"),
    },
)
def document_events(
    document_id: UUID,
    user: CurrentUser,
    documents: DocumentsDep,
    settings: SettingsDep,
    last_event_id: Annotated[int, Header(alias="Last-Event-ID", ge=0)] = 0,
) -> StreamingResponse:
    """Server-Sent Events: one message per event of the document (stage changes, retries,
    warnings) from ``Last-Event-ID`` on; the stream ends when the job is terminal, or after
    ``UPLOAD_PIPELINE_SSE_MAX_SECONDS`` (an EventSource then reconnects with ``Last-Event-ID``)."""
    documents.get_document(user, document_id)  # NotFound unless it is the user's
    limit = settings.sse_max_seconds
    return StreamingResponse(
        sse_stream(
            documents, document_id, last_event_id, max_seconds=limit, keepalive_seconds=min(15.0, limit)
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.delete(
    "/{document_id}", status_code=status.HTTP_204_NO_CONTENT, responses=replies("bearer", "resource")
)
def delete_document(document_id: UUID, user: CurrentUser, documents: DocumentsDep) -> Response:
    """Delete the document: its object, parsed artifact, chunks, vectors and jobs."""
    documents.delete(user, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
