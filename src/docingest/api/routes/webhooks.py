"""The LlamaParse webhook: ``POST /api/v2/webhooks/llamaparse/{job_id}``.

LlamaCloud delivers webhook events (``parse.success``, ``parse.error``,
``parse.cancelled``) to the ``webhook_url`` given with the job, carrying the
``webhook_headers`` given with it (LlamaCloud docs, "Webhook Configurations").
We register, per job, the header ``X-Docingest-Signature: hex(HMAC-SHA256(
UPLOAD_PIPELINE_WEBHOOK_SECRET, "llamaparse:" + job_id))``: a token that only
the secret's holder can make and that is good for that one job.

A verified call only makes the waiting job claimable now (the poll then reads
the result through the API), so a replayed or early call cannot change a
document's content; the remote job id in the body must match the one stored.
The route is mounted by the API (``app.include_router(webhooks.router)``);
it needs no JWT: the signature is its authentication.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any
from uuid import UUID

import anyio
from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel

from docingest.api.deps import DocumentsDep, SettingsDep
from docingest.api.openapi import replies
from docingest.errors import BadWebhookSignature, InvalidRequest, NotFound, RequestError
from docingest.providers.parsing.llamaparse import llamaparse_signature, remote_job_id
from docingest.services.documents import DocumentService

router = APIRouter()

# auto_error=False: a missing header is our 401 ``unauthorized``; declared for OpenAPI.
_signature = APIKeyHeader(
    name="X-Docingest-Signature",
    scheme_name="LlamaParseWebhookSignature",
    auto_error=False,
    description='hex(HMAC-SHA256(UPLOAD_PIPELINE_WEBHOOK_SECRET, "llamaparse:" + job_id)), '
    "registered with the LlamaParse job",
)


class WebhookAccepted(BaseModel):
    """The webhook's answer: the waiting job is claimable now."""

    job_id: UUID
    woken: bool


def _refusal(err: RequestError) -> tuple[int, dict[str, Any]]:
    """``(http_status, {"error_code", "message"})`` of a refusal of the README's table (and
    ``errors`` for ``invalid_request``, as every route answers it)."""
    body: dict[str, Any] = {"error_code": err.error_code, "message": err.message}
    if isinstance(err, InvalidRequest):
        body["errors"] = err.errors
    return err.http_status, body


def handle_llamaparse_webhook(
    secret: str | None, documents: DocumentService, job_id: UUID, signature: str | None, body: object
) -> tuple[int, dict[str, Any]]:
    """Verify and apply one call: ``(http_status, json_body)``.

    401 bad or missing signature (or no ``secret`` configured), 422 no remote job id,
    404 no job waiting on that remote job, 202 the job was woken.
    """
    if (
        not secret
        or not signature
        or not hmac.compare_digest(llamaparse_signature(secret, job_id), signature.strip())
    ):
        return _refusal(BadWebhookSignature("bad or missing webhook signature"))
    remote = remote_job_id(body)
    if remote is None:
        problem = "no LlamaParse job id (data.job_id, data.id, job_id or id)"
        return _refusal(
            InvalidRequest(
                f"invalid request: body (body): {problem}",
                errors=[{"field": "body", "in": "body", "problem": problem, "type": "missing"}],
            )
        )
    woken = documents.wake_parse_job(job_id, remote)
    if not woken:
        return _refusal(NotFound("no job is waiting on that parse"))
    return 202, {"job_id": str(job_id), "woken": True}


@router.post(
    "/api/v2/webhooks/llamaparse/{job_id}",
    tags=["webhooks"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookAccepted,
    responses=replies("webhook"),
)
async def llamaparse_webhook(
    job_id: UUID,
    request: Request,
    documents: DocumentsDep,
    settings: SettingsDep,
    signature: Annotated[str | None, Depends(_signature)],
) -> JSONResponse:
    """LlamaCloud's webhook call for one job: makes the waiting job claimable now."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    status, payload = await anyio.to_thread.run_sync(
        handle_llamaparse_webhook,
        settings.webhook_secret,
        documents,
        job_id,
        signature,
        body,
    )
    return JSONResponse(payload, status_code=status)
