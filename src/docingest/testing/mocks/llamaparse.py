"""Mock of the LlamaParse REST API (LlamaCloud Parse API v2), for tests and development.

Endpoints (LlamaCloud "REST API Guide" and "Parse response format"):

- ``POST /api/v2/parse/upload`` (multipart: ``file``, ``configuration`` JSON string) ->
  ``{"id", "project_id", "status": "PENDING", "tier", ...}``;
- ``GET /api/v2/parse/{job_id}?expand=markdown_full,markdown`` -> ``{"job": {"id", "status",
  "error_message", ...}, "markdown_full": str, "markdown": {"pages": [{"page_number",
  "markdown", "success"}]}}``; statuses ``PENDING``, ``RUNNING``, ``COMPLETED``, ``FAILED``,
  ``CANCELLED``; content only once ``COMPLETED``.

A job succeeds ``job_seconds`` after upload; ``never_finish_rate`` of jobs stay
``RUNNING``, ``fail_rate`` end ``FAILED``, ``cancel_rate`` end ``CANCELLED``. The
markdown comes from the uploaded file's real text (docingest's local parsers).
When the configuration has ``webhook_configurations``, the mock POSTs
``{"event_type": "parse.success"|..., "data": {"job_id", "status"}}`` to each
``webhook_url`` with its ``webhook_headers`` when the job ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from docingest.testing.mocks.common import Knobs, Ledger, add_fault_middleware

log = logging.getLogger("docingest.testing.mocks.llamaparse")


@dataclass
class LlamaParseMockConfig:
    knobs: Knobs = field(default_factory=Knobs)
    job_seconds: float = 1.0
    never_finish_rate: float = 0.0
    fail_rate: float = 0.0
    cancel_rate: float = 0.0


@dataclass
class _Job:
    id: str
    path: Path
    filename: str
    created: float
    fate: str  # COMPLETED | FAILED | CANCELLED | NEVER
    tier: str
    webhooks: list[dict[str, Any]]
    pages: list[dict[str, Any]] | None = None


def _markdown_pages(path: Path, filename: str) -> list[dict[str, Any]]:
    from docingest.providers.parsing import detect, parse_file

    parsed = parse_file(path, detect(path, filename=filename).kind)
    if not parsed.pages:
        return [{"page_number": 1, "markdown": parsed.markdown, "success": True}]
    return [
        {"page_number": p.number, "markdown": parsed.markdown[p.start : p.end], "success": True}
        for p in parsed.pages
    ]


def create_app(config: LlamaParseMockConfig) -> Any:
    workdir = Path(tempfile.mkdtemp(prefix="mock-llamaparse-"))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:  # the uploaded files go with the server
            shutil.rmtree(workdir, ignore_errors=True)

    app = FastAPI(title="docingest mock LlamaParse", lifespan=lifespan)
    ledger = Ledger()
    jobs: dict[str, _Job] = {}
    rng = random.Random(config.knobs.seed)
    add_fault_middleware(app, config.knobs, ledger, malformed_body=b'{"job": {"id": "pjb-')
    tasks: set[asyncio.Task[None]] = set()

    def status_of(job: _Job) -> str:
        elapsed = time.time() - job.created
        if job.fate == "NEVER" or elapsed < config.job_seconds:
            return "PENDING" if elapsed < min(0.2, config.job_seconds / 2) else "RUNNING"
        return job.fate

    def job_object(job: _Job) -> dict[str, Any]:
        status = status_of(job)
        return {
            "id": job.id,
            "project_id": "mock-project",
            "status": status,
            "tier": job.tier,
            "error_message": {
                "FAILED": "mock: the document could not be parsed",
                "CANCELLED": "mock: the job was cancelled",
            }.get(status),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job.created)),
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def unauthorized(request: Request) -> Any:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return JSONResponse({"detail": "Invalid authentication credentials"}, status_code=401)
        return None

    async def deliver_webhooks(job: _Job) -> None:
        import httpx

        await asyncio.sleep(config.job_seconds)
        status = status_of(job)
        if status not in ("COMPLETED", "FAILED", "CANCELLED"):
            return
        event = {"COMPLETED": "parse.success", "FAILED": "parse.error", "CANCELLED": "parse.cancelled"}[
            status
        ]
        async with httpx.AsyncClient(timeout=10) as client:
            for hook in job.webhooks:
                if hook.get("webhook_events") and event not in hook["webhook_events"]:
                    continue
                try:
                    await client.post(
                        hook["webhook_url"],
                        headers=hook.get("webhook_headers") or {},
                        json={"event_type": event, "data": {"job_id": job.id, "status": status}},
                    )
                except httpx.HTTPError as exc:
                    log.warning("webhook %s failed: %s", hook["webhook_url"], exc)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_mock/stats")
    async def stats() -> dict[str, Any]:
        return {
            **ledger.stats(),
            "jobs": {
                j.id: {"fate": j.fate, "status": status_of(j), "filename": j.filename} for j in jobs.values()
            },
        }

    @app.post("/api/v2/parse/upload")
    async def upload(request: Request) -> Any:
        if (denied := unauthorized(request)) is not None:
            return denied
        form = await request.form()
        upload_file = form.get("file")
        if upload_file is None or isinstance(upload_file, str):
            return JSONResponse({"detail": "file is required"}, status_code=422)
        try:
            configuration = json.loads(str(form.get("configuration") or "{}"))
        except ValueError:
            return JSONResponse({"detail": "configuration must be a JSON string"}, status_code=422)
        job_id = f"pjb-{uuid.uuid4().hex}"
        path = workdir / job_id
        path.write_bytes(await upload_file.read())
        draw = rng.random()
        fate = "COMPLETED"
        for name, rate in (
            ("NEVER", config.never_finish_rate),
            ("FAILED", config.fail_rate),
            ("CANCELLED", config.cancel_rate),
        ):
            if draw < rate:
                fate = name
                break
            draw -= rate
        job = _Job(
            job_id,
            path,
            upload_file.filename or "upload",
            time.time(),
            fate,
            configuration.get("tier", "cost_effective"),
            list(configuration.get("webhook_configurations") or []),
        )
        jobs[job_id] = job
        if job.webhooks:
            task = asyncio.create_task(deliver_webhooks(job))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return {"id": job_id, "project_id": "mock-project", "status": "PENDING", "tier": job.tier}

    @app.get("/api/v2/parse/{job_id}")
    async def get_job(job_id: str, request: Request) -> Any:
        if (denied := unauthorized(request)) is not None:
            return denied
        job = jobs.get(job_id)
        if job is None:
            return JSONResponse({"detail": "Job not found"}, status_code=404)
        out: dict[str, Any] = {"job": job_object(job)}
        expand = {e.strip() for v in request.query_params.getlist("expand") for e in v.split(",")}
        if out["job"]["status"] == "COMPLETED" and expand & {"markdown", "markdown_full"}:
            if job.pages is None:
                job.pages = await asyncio.to_thread(_markdown_pages, job.path, job.filename)
            if "markdown" in expand:
                out["markdown"] = {"pages": job.pages}
            if "markdown_full" in expand:
                out["markdown_full"] = "\n\n".join(p["markdown"] for p in job.pages)
        return out

    return app
