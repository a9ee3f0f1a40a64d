"""``GET /summary``: the dashboard's Health page."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from docingest.api.deps import CurrentUser, RuntimeDep
from docingest.api.openapi import replies
from docingest.api.schemas import SummaryPublic
from docingest.services.dashboard import summary

router = APIRouter(tags=["health"])


@router.get("/summary", response_model=SummaryPublic, responses=replies("bearer"))
def get_summary(user: CurrentUser, rt: RuntimeDep) -> SummaryPublic:
    """Your jobs by stage and state, your failures by ``error_code`` (with the last message),
    the workers seen (holding jobs, or that completed a stage in the last hour), the embedder and
    its shared rate limits, and the embedding generations of your chunks. Workers and the
    embedder are the installation's, the same for every user; the counts are yours only."""
    return SummaryPublic.model_validate(asdict(summary(rt.database, rt.repo, rt.settings, user)))
