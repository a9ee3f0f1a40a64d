"""``GET /jobs/{id}`` and ``POST /jobs/{id}/retry``."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from docingest.api.deps import CurrentUser, RuntimeDep, UploadsDep
from docingest.api.schemas import ErrorPublic, JobPublic, JobRetryPublic
from docingest.errors import NotFound

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobPublic, responses={404: {"model": ErrorPublic}})
def get_job(job_id: UUID, user: CurrentUser, rt: RuntimeDep) -> JobPublic:
    """One of your jobs."""
    with rt.user_transaction(user) as conn:
        job = rt.repo.get_user_job(conn, user_id=user, job_id=job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return JobPublic.from_job(job)


@router.post("/{job_id}/retry", response_model=JobRetryPublic,
             responses={404: {"model": ErrorPublic}, 409: {"model": ErrorPublic}})
def retry_job(job_id: UUID, user: CurrentUser, uploads: UploadsDep) -> JobRetryPublic:
    """A failed job back to its last good stage; if its bytes never verified, it waits for a new
    upload to the returned ``signed_url``."""
    job, upload = uploads.retry(user, job_id)
    public = JobPublic.from_job(job).model_dump()
    return JobRetryPublic(**public, signed_url=upload.url if upload else None,
                          upload_headers=upload.headers if upload else {})
