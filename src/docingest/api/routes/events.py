"""``GET /events``: one Server-Sent Events stream of every document of the user."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import WithJsonSchema

from docingest.api.deps import BearerUserDep, DocumentsDep, SettingsDep, StoppingDep, stream_seconds
from docingest.api.openapi import replies
from docingest.api.schemas import MAX_EVENT_ID, DocumentPublic
from docingest.services.progress import UserStream, user_sse_stream

router = APIRouter(tags=["documents"])

#: ``Last-Event-ID`` as the schema states it: an event id, or absent (never a JSON null).
EVENT_ID_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID}

#: One message of the user's stream as a client parses it: an event (``id`` set, ``data`` a
#: DocumentEventPublic), a ``document`` (``data`` a DocumentPublic), a ``document_deleted`` or a
#: ``documents_changed``.
USER_SSE_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "id": {
            "type": "string",
            "description": "an event's event_id (document messages have none): send the last one "
            "back as Last-Event-ID",
        },
        "event": {
            "type": "string",
            "description": "an event's type (job_created, stage_completed, retry_scheduled, failed "
            "...), `document` (a document's view changed), `document_deleted` or `documents_changed` "
            "(the number of your documents or their newest version changed: reload the list)",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "anyOf": [
                    {"$ref": "#/components/schemas/DocumentEventPublic"},
                    {"$ref": "#/components/schemas/DocumentPublic"},
                    {"$ref": "#/components/schemas/DocumentDeletedPublic"},
                    {"$ref": "#/components/schemas/DocumentsChangedPublic"},
                ]
            },
        },
        "retry": {"type": "integer", "description": "milliseconds to wait before reconnecting"},
    },
}


def _document_json(row: dict[str, Any]) -> dict[str, Any]:
    return DocumentPublic.from_row(row).model_dump(mode="json")


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the event stream (Server-Sent Events): first a `retry` field, then one "
            "message per event of any of your documents and per change of a document's view, "
            "`: keepalive` comments in between",
            "content": {"text/event-stream": {"schema": USER_SSE_SCHEMA}},
        },
        **replies("bearer"),
    },
)
def user_events(
    bearer: BearerUserDep,
    documents: DocumentsDep,
    settings: SettingsDep,
    stopping: StoppingDep,
    last_event_id_header: Annotated[
        int | None, Header(alias="Last-Event-ID", ge=0, le=MAX_EVENT_ID), WithJsonSchema(EVENT_ID_SCHEMA)
    ] = None,
    last_event_id: Annotated[
        int | None,
        Query(
            ge=0, le=MAX_EVENT_ID, description="as the Last-Event-ID header (which wins when both are sent)"
        ),
        WithJsonSchema(EVENT_ID_SCHEMA),
    ] = None,
) -> StreamingResponse:
    """Server-Sent Events of every one of your documents, on one connection: each new event
    (``id`` set, as ``GET /documents/{id}/events`` sends it), a ``document`` message with the
    document's JSON whenever its view changes (claimed, a stage, progress, retry, the end) and
    ``document_deleted`` when a document the stream saw in flight is deleted or replaced, and
    ``documents_changed`` (``{"total"}``) when your number of documents or their newest version
    changed (anywhere: another tab, the CLI): reload the list.
    Without ``Last-Event-ID`` it starts with what happens from now on. It ends after
    ``UPLOAD_PIPELINE_SSE_MAX_SECONDS``, or when the bearer token expires if that comes first
    (the reconnect is then answered 401); reconnect with the last ``id`` seen."""
    after = last_event_id_header if last_event_id_header is not None else last_event_id
    limit = stream_seconds(settings, bearer)
    return StreamingResponse(
        user_sse_stream(
            UserStream(documents, bearer.user_id, after, view=_document_json),
            max_seconds=limit,
            keepalive_seconds=min(15.0, limit),
            stop=stopping,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
