"""``GET /health`` (liveness), ``GET /ready`` (database and storage), ``GET /metrics``."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response

from docingest.api.deps import RuntimeDep
from docingest.api.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic)
def health() -> HealthPublic:
    """The process answers."""
    return HealthPublic(status="ok")


@router.get("/ready", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
def ready(rt: RuntimeDep, response: Response) -> HealthPublic:
    """The database and the object storage answer (503 naming the one that does not)."""
    checks: dict[str, str] = {}
    try:
        with rt.pool().connection(timeout=5) as conn:
            conn.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        storage = rt.storage
        if hasattr(storage, "ping"):
            storage.ping()
        else:
            storage.head(".docingest-ready")
        checks["storage"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["storage"] = f"error: {type(exc).__name__}: {exc}"[:200]
    ok = all(v == "ok" for v in checks.values())
    response.status_code = 200 if ok else 503
    return HealthPublic(status="ok" if ok else "unavailable", checks=checks)


@router.get("/metrics", response_class=Response)
def metrics(rt: RuntimeDep) -> Response:
    """Prometheus text format: jobs by state."""
    lines = ["# HELP docingest_jobs Jobs by state.", "# TYPE docingest_jobs gauge"]
    with rt.pool().connection() as conn:
        counts = rt.repo.count_jobs_by_state(conn)
    for state in ("waiting", "queued", "working", "retryable", "done", "failed"):
        lines.append(f'docingest_jobs{{state="{state}"}} {counts.get(state, 0)}')
    lines.append(f"docingest_scrape_timestamp_seconds {time.time():.3f}")
    return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
