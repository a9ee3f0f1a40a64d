"""``GET /health`` (liveness), ``GET /ready`` (database and storage), ``GET /metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from docingest.api.deps import RuntimeDep
from docingest.api.schemas import HealthPublic
from docingest.services.info import readiness

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic)
def health() -> HealthPublic:
    """The process answers."""
    return HealthPublic(status="ok")


@router.get("/ready", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
def ready(rt: RuntimeDep, response: Response) -> HealthPublic:
    """The database and the object storage answer (503 naming the one that does not)."""
    checks = readiness(rt.database, lambda: rt.storage)
    ok = all(v == "ok" for v in checks.values())
    response.status_code = 200 if ok else 503
    return HealthPublic(status="ok" if ok else "unavailable", checks=checks)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def metrics(rt: RuntimeDep) -> Response:
    """Prometheus text format: this process's counters and histograms, and queue depth
    (``docingest_jobs{stage,state}``) read from the database at scrape time."""
    from docingest.observability.metrics import metrics_text, register_jobs_collector

    register_jobs_collector(rt.documents.job_counts)
    body, content_type = metrics_text()
    return Response(body, media_type=content_type)
