"""``POST /upload`` (ask for a signed upload URL) and ``POST /upload/{job_id}/complete``."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from docingest.api.deps import CurrentUser, DocumentsDep
from docingest.api.schemas import ErrorPublic, JobPublic, UploadCreate, UploadPublic

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
        413: {"model": ErrorPublic},
        415: {"model": ErrorPublic},
        429: {"model": ErrorPublic},
    },
)
def create_upload(
    body: UploadCreate, user: CurrentUser, documents: DocumentsDep, response: Response
) -> UploadPublic:
    """Register a document and get a signed URL to PUT its bytes to.

    The job waits (``state=waiting``) until the bytes arrive, then is queued for the workers.
    Bytes you already have answer ``200`` with that document and its job; if their upload was
    refused or expired (``size_mismatch``, ``checksum_mismatch``, ``upload_expired`` ...) or has
    not arrived, the job waits again with this request's declaration and a new ``signed_url``
    (``reupload: true``). A document that failed after its bytes were accepted is answered as it
    is: retry it with ``POST /jobs/{job_id}/retry``.
    """
    ticket = documents.request_upload(
        user, filename=body.filename, bytes_len=body.bytes_len, mime=body.mime, sha256=body.sha256
    )
    if not ticket.created:
        response.status_code = status.HTTP_200_OK
    return UploadPublic.build(ticket.document, ticket.job, ticket.upload, ticket.created, ticket.reupload)


@router.post(
    "/{job_id}/complete",
    response_model=JobPublic,
    responses={404: {"model": ErrorPublic}, 409: {"model": ErrorPublic}},
)
def complete_upload(job_id: UUID, user: CurrentUser, documents: DocumentsDep) -> JobPublic:
    """Tell the API the bytes are stored (S3, Supabase): the job is queued if the object exists."""
    return JobPublic.from_job(documents.complete_upload(user, job_id))
