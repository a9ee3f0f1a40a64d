"""``GET /documents``, ``GET /documents/{id}``, ``GET /documents/{id}/events``, ``DELETE /documents/{id}``."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import StreamingResponse

from docingest.api.deps import CurrentUser, DocumentsDep
from docingest.api.schemas import DocumentList, DocumentPublic, ErrorPublic
from docingest.services.progress import sse_stream

router = APIRouter(prefix="/documents", tags=["documents"])


@router.get("", response_model=DocumentList)
def list_documents(
    user: CurrentUser,
    documents: DocumentsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> DocumentList:
    """Your documents, newest first, each with its latest job's stage and state."""
    rows = documents.list_documents(user, limit=limit, offset=offset)
    return DocumentList(documents=[DocumentPublic.from_row(r) for r in rows], limit=limit, offset=offset)


@router.get("/{document_id}", response_model=DocumentPublic, responses={404: {"model": ErrorPublic}})
def get_document(document_id: UUID, user: CurrentUser, documents: DocumentsDep) -> DocumentPublic:
    """Stage, state, progress, attempts, error and timestamps of one of your documents."""
    return DocumentPublic.from_row(documents.get_document(user, document_id))


@router.get(
    "/{document_id}/events", responses={404: {"model": ErrorPublic}}, response_class=StreamingResponse
)
def document_events(
    document_id: UUID,
    user: CurrentUser,
    documents: DocumentsDep,
    last_event_id: Annotated[int, Header(alias="Last-Event-ID", ge=0)] = 0,
) -> StreamingResponse:
    """Server-Sent Events: one message per event of the document (stage changes, retries,
    warnings) from ``Last-Event-ID`` on; the stream ends when the job is terminal."""
    documents.get_document(user, document_id)  # NotFound unless it is the user's
    return StreamingResponse(
        sse_stream(documents, document_id, last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.delete(
    "/{document_id}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {"model": ErrorPublic}}
)
def delete_document(document_id: UUID, user: CurrentUser, documents: DocumentsDep) -> Response:
    """Delete the document: its object, parsed artifact, chunks, vectors and jobs."""
    documents.delete(user, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
