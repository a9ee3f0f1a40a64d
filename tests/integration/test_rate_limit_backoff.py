"""The shared backoff of ``SharedRateLimiter`` against a real PostgreSQL: a 429 answered to one
worker makes the others wait, by ``NOTIFY`` while their listener is connected and by reading the
bucket rows while it is not; a limiter without limits writes nothing per request."""

from __future__ import annotations

import time
from typing import Any

import pytest

from docingest.providers.ratelimit import SharedRateLimiter
from docingest.runtime import Runtime

pytestmark = pytest.mark.integration


def _limiter(rt: Runtime, *, listen: bool = True, **limits: Any) -> SharedRateLimiter:
    return SharedRateLimiter(rt.pool(), name="openai", url=rt.url if listen else None, **limits)


def _listening(limiter: SharedRateLimiter, timeout: float = 10.0) -> None:
    limiter.acquire()  # the first acquire starts the listener
    assert limiter._listening.wait(timeout), "the backoff listener never connected"


def _timed_acquire(limiter: SharedRateLimiter) -> float:
    started = time.monotonic()
    limiter.acquire()
    return time.monotonic() - started


def test_a_backoff_reaches_a_listening_worker_without_a_query_per_request(runtime: Runtime) -> None:
    worker_a, worker_b = _limiter(runtime), _limiter(runtime)
    try:
        _listening(worker_a)

        def no_query(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("acquire queried the database while its listener was connected")

        worker_a._take = no_query  # type: ignore[method-assign]
        assert _timed_acquire(worker_a) < 0.5  # no backoff yet: at once, and no query
        worker_b.block(1.0)  # worker B was answered 429 with Retry-After: 1
        deadline = time.monotonic() + 5
        while worker_a._backoff_until <= time.monotonic() and time.monotonic() < deadline:
            time.sleep(0.01)  # the notification is on its way
        assert _timed_acquire(worker_a) >= 0.7
    finally:
        worker_a.close()
        worker_b.close()


def test_a_backoff_set_before_a_worker_listens_is_honoured(runtime: Runtime) -> None:
    worker_b = _limiter(runtime)
    worker_b.block(1.5)
    late = _limiter(runtime)  # starts after the 429: no notification will come
    try:
        assert _timed_acquire(late) >= 1.0
    finally:
        late.close()
        worker_b.close()


def test_without_a_listener_acquire_reads_the_backoff_from_the_rows(runtime: Runtime) -> None:
    worker_a, worker_b = _limiter(runtime, listen=False), _limiter(runtime)
    try:
        assert _timed_acquire(worker_a) < 0.5
        worker_b.block(1.0)
        assert _timed_acquire(worker_a) >= 0.7
        assert worker_a._listener is None
    finally:
        worker_b.close()


def test_an_unlimited_limiter_writes_nothing_per_request(runtime: Runtime) -> None:
    limiter = _limiter(runtime, listen=False)
    limiter.acquire()
    with runtime.pool().connection() as conn:
        before = conn.execute(
            "SELECT bucket, tokens, updated_at FROM upload_pipeline.rate_limits ORDER BY bucket"
        ).fetchall()
    for _ in range(5):
        limiter.acquire(tokens=100)
    with runtime.pool().connection() as conn:
        after = conn.execute(
            "SELECT bucket, tokens, updated_at FROM upload_pipeline.rate_limits ORDER BY bucket"
        ).fetchall()
    assert before == after and [r["bucket"] for r in after] == ["openai:requests"]


def test_a_limited_bucket_is_taken_on_every_request_without_waiting_for_a_flush(runtime: Runtime) -> None:
    limiter = _limiter(runtime, rpm=60, tpm=6_000)  # capacities 6 and 600, refills 0.9/s and 90/s
    try:
        for _ in range(3):
            limiter.acquire(tokens=100)
        with runtime.pool().connection() as conn:
            tokens = {
                r["bucket"]: r["tokens"]
                for r in conn.execute("SELECT bucket, tokens FROM upload_pipeline.rate_limits").fetchall()
            }
        assert tokens["openai:requests"] < 6 - 1.5  # 3 taken (a second and more of refill allowed)
        assert tokens["openai:tokens"] < 600 - 150  # 300 taken
        assert limiter._listener is None  # limits are enforced by the bucket rows themselves
        conn = limiter._local.conn
        assert conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"] == "off"
    finally:
        limiter.close()
