"""``POST /upload`` (ask for a signed upload URL) and ``POST /upload/{job_id}/complete``."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from docingest.api.deps import CurrentUser, DocumentsDep
from docingest.api.openapi import replies
from docingest.api.schemas import JobPublic, UploadCreate, UploadPublic
from docingest.errors import UnsupportedType
from docingest.providers.parsing.sniff import normalise_mime
from docingest.services.documents import MIME_EXTENSIONS

router = APIRouter(prefix="/upload", tags=["upload"])


@router.post(
    "",
    response_model=UploadPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {
            "model": UploadPublic,
            "description": "a duplicate of your own bytes: no new job "
            "(a refused or expired upload is re-armed)",
        },
        **replies("bearer", "upload"),
    },
)
def create_upload(
    body: UploadCreate, user: CurrentUser, documents: DocumentsDep, response: Response
) -> UploadPublic:
    """Register a document and get a signed URL to PUT its bytes to.

    The job waits (``state=waiting``) until the bytes arrive, then is queued for the workers.
    Without ``source`` each request is a new document (identical bytes are not parsed or
    embedded again: their chunks are reused). With ``source``, new bytes are a new version of
    it, replacing the one serving searches once complete; bytes that source already has
    answer ``200`` with that document and its job; if their upload was
    refused or expired (``size_mismatch``, ``checksum_mismatch``, ``upload_expired`` ...) or has
    not arrived, the job waits again with this request's declaration and a new ``signed_url``
    (``reupload: true``). A document that failed after its bytes were accepted is answered as it
    is: retry it with ``POST /jobs/{job_id}/retry``.

    ``mime`` is one of the schema's enum exactly (lower case, no parameters): anything else is
    ``415 unsupported_type``.
    """
    if body.mime not in MIME_EXTENSIONS:
        raise UnsupportedType(
            f"type {body.mime!r} is not supported; declare one of {', '.join(MIME_EXTENSIONS)} "
            "(as written, without parameters such as charset)"
        )
    ticket = documents.request_upload(
        user,
        filename=body.filename,
        bytes_len=body.bytes_len,
        mime=normalise_mime(body.mime),  # stored in lower case, as filters compare it
        sha256=body.sha256,
        source=body.source,
        meta=body.meta,
    )
    if not ticket.created:
        response.status_code = status.HTTP_200_OK
    return UploadPublic.build(ticket.document, ticket.job, ticket.upload, ticket.created, ticket.reupload)


@router.post(
    "/{job_id}/complete",
    response_model=JobPublic,
    responses=replies("bearer", "resource", "transition"),
)
def complete_upload(job_id: UUID, user: CurrentUser, documents: DocumentsDep) -> JobPublic:
    """Tell the API the bytes are stored (S3, Supabase): the job is queued if the object exists."""
    return JobPublic.from_job(documents.complete_upload(user, job_id))
