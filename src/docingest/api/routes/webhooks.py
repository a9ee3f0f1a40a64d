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
from typing import Any
from uuid import UUID

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from docingest.api.deps import DocumentsDep, SettingsDep
from docingest.errors import BadWebhookSignature, InvalidRequest, NotFound, RequestError
from docingest.providers.parsing.llamaparse import llamaparse_signature, remote_job_id
from docingest.services.documents import DocumentService

router = APIRouter()


def _refusal(err: RequestError) -> tuple[int, dict[str, Any]]:
    """``(http_status, {"error_code", "message"})`` of a refusal of the README's table."""
    return err.http_status, {"error_code": err.error_code, "message": err.message}


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
        return _refusal(InvalidRequest("invalid request: no LlamaParse job id in the body"))
    woken = documents.wake_parse_job(job_id, remote)
    if not woken:
        return _refusal(NotFound("no job is waiting on that parse"))
    return 202, {"job_id": str(job_id), "woken": True}


@router.post("/api/v2/webhooks/llamaparse/{job_id}", tags=["webhooks"])
async def llamaparse_webhook(
    job_id: UUID, request: Request, documents: DocumentsDep, settings: SettingsDep
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
        request.headers.get("x-docingest-signature"),
        body,
    )
    return JSONResponse(payload, status_code=status)
