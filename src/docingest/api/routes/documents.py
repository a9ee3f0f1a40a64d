"""``GET /documents``, ``GET /documents/{id}``, ``GET /documents/{id}/events``,
``GET /documents/{id}/chunks``, ``GET /documents/{id}/timeline``,
``POST /documents/{id}/download``, ``DELETE /documents/{id}``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import StreamingResponse

from docingest.api.deps import (
    BearerUserDep,
    CurrentUser,
    DocumentsDep,
    SettingsDep,
    StoppingDep,
    stream_seconds,
)
from docingest.api.openapi import replies
from docingest.api.schemas import (
    MAX_EVENT_ID,
    TIMELINE_EVENTS,
    ChunkList,
    ChunkPublic,
    DocumentEventPublic,
    DocumentList,
    DocumentPublic,
    DownloadPublic,
    StagePublic,
    TimelinePublic,
)
from docingest.domain import State
from docingest.services.dashboard import stage_spans
from docingest.services.progress import event_dict, sse_stream

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
    bearer: BearerUserDep,
    documents: DocumentsDep,
    settings: SettingsDep,
    stopping: StoppingDep,
    last_event_id: Annotated[int, Header(alias="Last-Event-ID", ge=0, le=MAX_EVENT_ID)] = 0,
) -> StreamingResponse:
    """Server-Sent Events: one message per event of the document (stage changes, retries,
    warnings) from ``Last-Event-ID`` on; the stream ends when the job is terminal, or after
    ``UPLOAD_PIPELINE_SSE_MAX_SECONDS`` or when the bearer token expires, whichever comes first
    (an EventSource then reconnects with ``Last-Event-ID``; after the expiry, to a 401)."""
    documents.get_document(bearer.user_id, document_id)  # NotFound unless it is the user's
    limit = stream_seconds(settings, bearer)
    return StreamingResponse(
        sse_stream(
            documents,
            document_id,
            last_event_id,
            max_seconds=limit,
            keepalive_seconds=min(15.0, limit),
            stop=stopping,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/{document_id}/chunks", response_model=ChunkList, responses=replies("bearer", "resource"))
def document_chunks(
    document_id: UUID,
    user: CurrentUser,
    documents: DocumentsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> ChunkList:
    """The document's stored chunks in ordinal order, a page at a time: text, pages, heading
    path, tokens. Empty while the document is in flight (chunks are stored when it completes)."""
    rows, total = documents.document_chunks(user, document_id, limit=limit, offset=offset)
    return ChunkList(chunks=[ChunkPublic.from_row(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{document_id}/timeline", response_model=TimelinePublic, responses=replies("bearer", "resource"))
def document_timeline(document_id: UUID, user: CurrentUser, documents: DocumentsDep) -> TimelinePublic:
    """The document's events of every job, oldest first (stage changes, retries, lease
    takeovers, warnings, failures), and per stage the time its work took, its tries, retries and
    lease takeovers (``stages``, computed from those events)."""
    rows = documents.document_history(user, document_id, limit=TIMELINE_EVENTS + 1)
    truncated = len(rows) > TIMELINE_EVENTS
    rows = rows[:TIMELINE_EVENTS]
    return TimelinePublic(
        document_id=document_id,
        events=[DocumentEventPublic.model_validate(event_dict(r)) for r in rows],
        stages=[StagePublic.model_validate(asdict(span)) for span in stage_spans(rows)],
        truncated=truncated,
    )


@router.post(
    "/{document_id}/download",
    response_model=DownloadPublic,
    responses=replies("bearer", "resource", "transition"),
)
def download_document(document_id: UUID, user: CurrentUser, documents: DocumentsDep) -> DownloadPublic:
    """A signed URL of the document's original bytes, valid for 60 s: a ``GET`` of it (no
    ``Authorization``) answers them with ``Content-Disposition: attachment`` and the file name.
    POST, because it mints a credential. 409 ``conflict`` when the bytes are not stored (an
    upload that has not arrived, or was refused)."""
    signed, filename = documents.download(user, document_id)
    return DownloadPublic(
        signed_url=signed.url,
        expires_at=datetime.fromtimestamp(signed.expires_at, tz=UTC),
        filename=filename,
    )


@router.delete(
    "/{document_id}", status_code=status.HTTP_204_NO_CONTENT, responses=replies("bearer", "resource")
)
def delete_document(document_id: UUID, user: CurrentUser, documents: DocumentsDep) -> Response:
    """Delete the document: its object, parsed artifact, chunks, vectors and jobs."""
    documents.delete(user, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
