"""What both mocks share: the fault knobs, their middleware, and serving with uvicorn."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

GRACE_SECONDS = 0.25  # a request already on the wire when a 429 was answered is not a violation


@dataclass
class Knobs:
    """Fault injection, applied to every API request (not to ``/health`` or ``/_mock/*``).

    Attributes:
        latency_ms: time from a request's arrival to its answer (the mock's work included).
        error_rate: fraction answered 500.
        rate_limit_rate: fraction answered 429 with ``Retry-After: retry_after``.
        retry_after: seconds, in ``Retry-After`` and ``x-ratelimit-reset-requests``.
        malformed_rate: fraction answered 200 with a truncated JSON body.
        seed: for the random draws (None: unseeded).
    """

    latency_ms: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: float = 1.0
    malformed_rate: float = 0.0
    seed: int | None = None


@dataclass
class Ledger:
    """Every API request seen: time, client tag, status; and Retry-After violations.

    A violation is a request from a client that arrives after a 429 was answered
    to it (plus ``GRACE_SECONDS``) and before that 429's ``Retry-After`` ran out.
    ``global_violations`` applies the same test across all clients (the shared backoff).
    """

    requests: list[dict[str, Any]] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    global_violations: list[dict[str, Any]] = field(default_factory=list)
    blocked: dict[str, tuple[float, float]] = field(default_factory=dict)  # client -> (issued, until)
    global_block: tuple[float, float] = (0.0, 0.0)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arrive(self, client: str, path: str) -> float:
        now = time.time()
        with self.lock:
            issued, until = self.blocked.get(client, (0.0, 0.0))
            if issued + GRACE_SECONDS < now < until:
                self.violations.append({"client": client, "t": now, "until": until, "path": path})
            g_issued, g_until = self.global_block
            if g_issued + GRACE_SECONDS < now < g_until:
                self.global_violations.append({"client": client, "t": now, "until": g_until})
        return now

    def record(self, client: str, path: str, arrived: float, status: int, **extra: Any) -> None:
        now = time.time()
        with self.lock:
            self.requests.append({"t": arrived, "answered": now, "client": client, "path": path,
                                  "status": status, **extra})

    def rate_limited(self, client: str, retry_after: float) -> None:
        now = time.time()
        with self.lock:
            self.blocked[client] = (now, max(self.blocked.get(client, (0, 0))[1], now + retry_after))
            self.global_block = (now, max(self.global_block[1], now + retry_after))

    def stats(self) -> dict[str, Any]:
        with self.lock:
            by_status: dict[str, int] = {}
            for r in self.requests:
                by_status[str(r["status"])] = by_status.get(str(r["status"]), 0) + 1
            return {"requests": list(self.requests), "by_status": by_status,
                    "violations": list(self.violations),
                    "global_violations": list(self.global_violations)}


def add_fault_middleware(app: Any, knobs: Knobs, ledger: Ledger, *, malformed_body: bytes) -> None:
    """Latency, 500s, 429s and malformed bodies on every API path; ledger of every request."""
    from starlette.responses import JSONResponse, Response

    rng = random.Random(knobs.seed)

    @app.middleware("http")
    async def faults(request: Any, call_next: Any) -> Any:
        path = request.url.path
        if path == "/health" or path.startswith("/_mock"):
            return await call_next(request)
        client = request.headers.get("x-docingest-worker", request.client.host if request.client else "?")
        arrived = ledger.arrive(client, path)
        draw = rng.random()
        if draw < knobs.rate_limit_rate:
            await _until(arrived, knobs.latency_ms)
            ledger.rate_limited(client, knobs.retry_after)
            ledger.record(client, path, arrived, 429)
            ra = f"{knobs.retry_after:g}"
            return JSONResponse(
                {"error": {"message": "Rate limit reached for requests. Please try again in "
                           f"{ra}s.", "type": "requests", "param": None,
                           "code": "rate_limit_exceeded"}},
                status_code=429,
                headers={"retry-after": ra, "x-ratelimit-remaining-requests": "0",
                         "x-ratelimit-reset-requests": f"{ra}s"},
            )
        draw -= knobs.rate_limit_rate
        if draw < knobs.error_rate:
            await _until(arrived, knobs.latency_ms)
            ledger.record(client, path, arrived, 500)
            return JSONResponse({"error": {"message": "The server had an error while processing "
                                           "your request.", "type": "server_error", "param": None,
                                           "code": None}}, status_code=500)
        draw -= knobs.error_rate
        if draw < knobs.malformed_rate:
            await _until(arrived, knobs.latency_ms)
            ledger.record(client, path, arrived, 200, malformed=True)
            return Response(malformed_body, status_code=200, media_type="application/json")
        response = await call_next(request)
        await _until(arrived, knobs.latency_ms)
        ledger.record(client, path, arrived, response.status_code)
        return response


async def _until(arrived: float, latency_ms: float) -> None:
    """Sleep until ``latency_ms`` after ``arrived`` (epoch seconds): the answer's time counts
    from the request's arrival, the mock's own work included, as a real service's latency does."""
    if latency_ms:
        await asyncio.sleep(max(0.0, arrived + latency_ms / 1000.0 - time.time()))


def serve(app: Any, host: str, port: int) -> None:
    """Run ``app`` under uvicorn until interrupted (SIGINT/SIGTERM)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
