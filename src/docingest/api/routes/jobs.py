"""``GET /jobs/{id}`` and ``POST /jobs/{id}/retry``."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from docingest.api.deps import CurrentUser, DocumentsDep
from docingest.api.openapi import replies
from docingest.api.schemas import JobPublic, JobRetryPublic

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobPublic, responses=replies("bearer", "resource"))
def get_job(job_id: UUID, user: CurrentUser, documents: DocumentsDep) -> JobPublic:
    """One of your jobs."""
    return JobPublic.from_job(documents.get_job(user, job_id))


@router.post(
    "/{job_id}/retry",
    response_model=JobRetryPublic,
    responses=replies("bearer", "resource", "transition"),
)
def retry_job(job_id: UUID, user: CurrentUser, documents: DocumentsDep) -> JobRetryPublic:
    """A failed job back to its last good stage; if its bytes never verified, it waits for a new
    upload to the returned ``signed_url``."""
    job, upload = documents.retry(job_id, user_id=user, via="api")
    public = JobPublic.from_job(job).model_dump()
    return JobRetryPublic(
        **public, signed_url=upload.url if upload else None, upload_headers=upload.headers if upload else {}
    )
