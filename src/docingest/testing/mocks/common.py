"""What both mocks share: the fault knobs, their middleware, and serving with uvicorn."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
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
            self.requests.append(
                {"t": arrived, "answered": now, "client": client, "path": path, "status": status, **extra}
            )

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
            return {
                "requests": list(self.requests),
                "by_status": by_status,
                "violations": list(self.violations),
                "global_violations": list(self.global_violations),
            }


def openai_fault_body(status: int, retry_after: str) -> dict[str, Any]:
    """OpenAI's error body of a fault: 429 ``rate_limit_exceeded``, 500 ``server_error``."""
    if status == 429:
        return {
            "error": {
                "message": f"Rate limit reached for requests. Please try again in {retry_after}s.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
    return {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }


def add_fault_middleware(
    app: Any,
    knobs: Knobs,
    ledger: Ledger,
    *,
    malformed_body: bytes,
    fault_body: Callable[[int, str], dict[str, Any]] = openai_fault_body,
) -> None:
    """Latency, 500s, 429s and malformed bodies on every API path; ledger of every request.

    ``fault_body(status, retry_after)`` is the JSON body of a 429 or 500 (default: OpenAI's).

    A plain ASGI middleware (:class:`FaultMiddleware`), not Starlette's ``BaseHTTPMiddleware``,
    which passes every reply's body through a stream and task of its own: a few
    milliseconds a request, the mock's own cost, counted as the provider's.
    """
    app.add_middleware(
        FaultMiddleware, knobs=knobs, ledger=ledger, malformed_body=malformed_body, fault_body=fault_body
    )


class FaultMiddleware:
    """The ASGI middleware of :func:`add_fault_middleware`.

    A request is timed from its arrival here. Faults are answered after ``latency_ms``;
    a request that reaches the app has its reply's start held until ``latency_ms`` after
    arrival, and is recorded in the ledger with the reply's status then.
    """

    def __init__(
        self,
        app: Any,
        *,
        knobs: Knobs,
        ledger: Ledger,
        malformed_body: bytes,
        fault_body: Callable[[int, str], dict[str, Any]] = openai_fault_body,
    ) -> None:
        self.app = app
        self.fault_body = fault_body
        self.knobs = knobs
        self.ledger = ledger
        self.malformed_body = malformed_body
        self.rng = random.Random(knobs.seed)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == "/health" or path.startswith("/_mock"):
            await self.app(scope, receive, send)
            return
        from starlette.responses import JSONResponse, Response

        knobs, ledger = self.knobs, self.ledger
        tag = dict(scope.get("headers") or []).get(b"x-docingest-worker")
        client = (
            tag.decode("latin-1") if tag is not None else (scope["client"][0] if scope.get("client") else "?")
        )
        arrived = ledger.arrive(client, path)
        draw = self.rng.random()
        fault: Any = None
        extra: dict[str, Any] = {}  # what the ledger records beside the status
        if draw < knobs.rate_limit_rate:
            ra = f"{knobs.retry_after:g}"
            fault = JSONResponse(
                self.fault_body(429, ra),
                status_code=429,
                headers={
                    "retry-after": ra,
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": f"{ra}s",
                },
            )
        elif (draw := draw - knobs.rate_limit_rate) < knobs.error_rate:
            fault = JSONResponse(
                self.fault_body(500, ""),
                status_code=500,
            )
        elif draw - knobs.error_rate < knobs.malformed_rate:
            fault = Response(self.malformed_body, status_code=200, media_type="application/json")
            extra = {"malformed": True}
        if fault is not None:
            await _until(arrived, knobs.latency_ms)
            if fault.status_code == 429:  # only the rate-limit branch answers 429
                ledger.rate_limited(client, knobs.retry_after)
            ledger.record(client, path, arrived, fault.status_code, **extra)
            await fault(scope, receive, send)
            return

        async def send_on_time(message: Any) -> None:
            if message["type"] == "http.response.start":
                await _until(arrived, knobs.latency_ms)
                ledger.record(client, path, arrived, message["status"])
            await send(message)

        await self.app(scope, receive, send_on_time)


async def _until(arrived: float, latency_ms: float) -> None:
    """Sleep until ``latency_ms`` after ``arrived`` (epoch seconds): the answer's time counts
    from the request's arrival, the mock's own work included, as a real service's latency does."""
    if latency_ms:
        await asyncio.sleep(max(0.0, arrived + latency_ms / 1000.0 - time.time()))


def serve(app: Any, host: str, port: int) -> None:
    """Run ``app`` under uvicorn until interrupted (SIGINT/SIGTERM)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
