"""One rate limit for every worker: token buckets kept in PostgreSQL.

Each provider has a ``requests`` bucket (requests per minute) and, when a token
limit is set, a ``tokens`` bucket (tokens per minute). ``acquire`` takes one
request and the batch's tokens from both buckets in one atomic UPDATE
(``rate_limit_acquire`` in ``db/sql/queries.sql``), so N processes on M hosts
share one budget. ``block`` records a provider's ``Retry-After`` in the bucket
rows: every worker then waits, not only the one that was answered 429.

Sizing (so that any 60-second window stays under the limit ``L``): a token
bucket of capacity ``b`` refilled at ``r``/s admits at most ``b + r*60`` requests
in a window of 60 s. We take ``b = max(1, ceil(L * burst_fraction))`` and
``r = (L - b) / 60``, so ``b + r*60 = L`` exactly.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from docingest.db.repository import Repository

log = logging.getLogger("docingest.ratelimit")
UNLIMITED = 1e12


def bucket_size(per_minute: int | None, burst_fraction: float) -> tuple[float, float]:
    """``(capacity, refill_per_second)`` for a per-minute limit (None: unlimited)."""
    if per_minute is None:
        return UNLIMITED, UNLIMITED
    capacity = max(1.0, float(math.ceil(per_minute * burst_fraction)))
    capacity = min(capacity, float(per_minute))
    refill = max(per_minute - capacity, 1.0) / 60.0  # a limit of 1/min: one burst of 1, then 1/min
    return capacity, refill


class SharedRateLimiter:
    """Requests and tokens per minute for one provider, shared through PostgreSQL.

    Args:
        pool: psycopg pool (dict rows) of the database every worker uses.
        name: the provider's bucket prefix, e.g. ``openai`` or ``llamaparse``.
        rpm, tpm: limits per minute (None: no limit; the shared backoff still applies).
        burst_fraction: share of the limit that may be sent at once.
        max_sleep_seconds: longest single wait between two tries of the bucket.
        url: when given, each thread keeps its own autocommit connection for ``acquire``
            (one round trip per request instead of a pool checkout, check and commit).
    """

    def __init__(
        self, pool: Any, *, name: str, rpm: int | None = None, tpm: int | None = None,
        burst_fraction: float = 0.1, max_sleep_seconds: float = 2.0, url: str | None = None,
    ) -> None:
        self.pool = pool
        self.url = url
        self._local = threading.local()
        self.name = name
        self.repo = Repository()
        self.max_sleep_seconds = max_sleep_seconds
        self._sizes: dict[str, tuple[float, float]] = {
            f"{name}:requests": bucket_size(rpm, burst_fraction)}
        if tpm is not None:
            self._sizes[f"{name}:tokens"] = bucket_size(tpm, burst_fraction)
        self._configured = False
        self._lock = threading.Lock()

    @property
    def buckets(self) -> list[str]:
        return list(self._sizes)

    def _configure(self) -> None:
        with self._lock:
            if self._configured:
                return
            with self.pool.connection() as conn:
                for bucket, (capacity, refill) in self._sizes.items():
                    self.repo.rate_limit_configure(conn, bucket, capacity=capacity,
                                                   refill_per_second=refill)
            self._configured = True

    def acquire(self, tokens: int = 0, *, should_stop: Callable[[], bool] | None = None) -> float:
        """Block until one request (and ``tokens``) may be sent; returns the seconds waited.

        A cost above a bucket's capacity is clamped to it (the request could never
        be admitted otherwise). ``should_stop`` is polled between waits.
        """
        self._configure()
        costs = [1.0]
        names = self.buckets
        if len(names) > 1:
            costs.append(min(float(tokens), self._sizes[names[1]][0]))
        started = time.monotonic()
        while True:
            granted, wait = self._take(names, costs)
            if granted:
                return time.monotonic() - started
            if should_stop is not None and should_stop():
                raise InterruptedError("stopped while waiting for the rate limit")
            time.sleep(min(self.max_sleep_seconds, wait) + random.uniform(0.0, 0.02))

    def _take(self, names: list[str], costs: list[float]) -> tuple[bool, float]:
        if self.url is None:
            with self.pool.connection() as conn:
                return self.repo.rate_limit_acquire(conn, names, costs)
        import psycopg

        from docingest.db.pool import connect

        conn = getattr(self._local, "conn", None)
        try:
            if conn is None or conn.closed:
                conn = self._local.conn = connect(self.url, autocommit=True)
            return self.repo.rate_limit_acquire(conn, names, costs)
        except psycopg.OperationalError:
            self._local.conn = None  # reconnect on the next try
            with self.pool.connection() as pooled:
                return self.repo.rate_limit_acquire(pooled, names, costs)

    def block(self, seconds: float) -> None:
        """Make every worker wait ``seconds`` before its next request (after a 429)."""
        self._configure()
        with self.pool.connection() as conn:
            self.repo.rate_limit_block(conn, self.buckets, seconds)
        log.info("%s: every worker backs off %.2fs", self.name, seconds)


class LocalBackoff:
    """The limiter used without a database (unit tests): no limit, backoff in this process."""

    def __init__(self) -> None:
        self._until = 0.0
        self._lock = threading.Lock()

    def acquire(self, tokens: int = 0, *, should_stop: Callable[[], bool] | None = None) -> float:
        with self._lock:
            wait = self._until - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        return max(wait, 0.0)

    def block(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)
