"""``GET /documents``, ``GET /documents/{id}``, ``DELETE /documents/{id}``."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import StreamingResponse

from docingest.api.deps import CurrentUser, RuntimeDep, UploadsDep
from docingest.api.schemas import DocumentList, DocumentPublic, ErrorPublic
from docingest.errors import NotFound

router = APIRouter(prefix="/documents", tags=["documents"])


@router.get("", response_model=DocumentList)
def list_documents(
    user: CurrentUser, rt: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> DocumentList:
    """Your documents, newest first, each with its latest job's stage and state."""
    with rt.user_transaction(user) as conn:
        rows = rt.repo.list_document_views(conn, user_id=user, limit=limit, offset=offset)
    return DocumentList(documents=[DocumentPublic.from_row(r) for r in rows], limit=limit, offset=offset)


@router.get("/{document_id}", response_model=DocumentPublic, responses={404: {"model": ErrorPublic}})
def get_document(document_id: UUID, user: CurrentUser, rt: RuntimeDep) -> DocumentPublic:
    """Stage, state, progress, attempts, error and timestamps of one of your documents."""
    with rt.user_transaction(user) as conn:
        row = rt.repo.get_document_view(conn, user_id=user, document_id=document_id)
    if row is None:
        raise NotFound(f"no document {document_id}")
    return DocumentPublic.from_row(row)


@router.get("/{document_id}/events", responses={404: {"model": ErrorPublic}},
            response_class=StreamingResponse)
def document_events(
    document_id: UUID, user: CurrentUser, rt: RuntimeDep,
    last_event_id: Annotated[int, Header(alias="Last-Event-ID", ge=0)] = 0,
) -> StreamingResponse:
    """Server-Sent Events: one message per event of the document (stage changes, retries,
    warnings) from ``Last-Event-ID`` on; the stream ends when the job is terminal."""
    from docingest.services.progress import sse_stream

    with rt.user_transaction(user) as conn:
        if rt.repo.get_document_view(conn, user_id=user, document_id=document_id) is None:
            raise NotFound(f"no document {document_id}")
    return StreamingResponse(sse_stream(rt, document_id, last_event_id),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.delete("/{document_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses={404: {"model": ErrorPublic}})
def delete_document(document_id: UUID, user: CurrentUser, uploads: UploadsDep) -> Response:
    """Delete the document: its object, parsed artifact, chunks, vectors and jobs."""
    uploads.delete(user, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
