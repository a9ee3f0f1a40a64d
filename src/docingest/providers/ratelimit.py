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

Cost per request. Without limits (no rpm or tpm) the only thing to honour is the
shared backoff, and ``acquire`` does not touch the database: ``block`` sends a
``NOTIFY upload_pipeline_rate_limits`` with its bucket rows, and a listener
thread in each process (one ``LISTEN`` connection per limiter) keeps the backoff
it announces; ``acquire`` then only reads a local deadline. While that listener
is not connected (starting, or its connection lost), ``acquire`` reads the
backoff from the bucket rows instead (``rate_limit_wait``: no lock, no write), so
a notification missed while disconnected cannot let a worker ignore a backoff;
on (re)connecting the listener reads the rows once, then follows notifications.
A worker that was answered 429 knows its own backoff at once, before the
notification.

With limits, each request is one atomic bucket update, committed with
``synchronous_commit = off`` on the limiter's own connections: visible to every
worker at once, but not waiting for the WAL flush. A database crash can lose the
last fraction of a second of bucket updates (PostgreSQL's ``wal_writer_delay`` x 3
at most), which only lets the buckets look fuller than they were by that much.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from docingest.db.repository import Repository

log = logging.getLogger("docingest.providers.ratelimit")
UNLIMITED = 1e12
BACKOFF_CHANNEL = "upload_pipeline_rate_limits"  # payload: "<bucket> <seconds of backoff left>"


class RateLimiter(Protocol):
    """What a provider client asks of a rate limiter (:class:`SharedRateLimiter`, :class:`LocalBackoff`)."""

    @property
    def meters_tokens(self) -> bool:
        """True when ``acquire`` needs each request's real token count (a tokens-per-minute bucket)."""
        ...

    def acquire(self, tokens: int = 0, *, should_stop: Callable[[], bool] | None = None) -> float:
        """Wait until one request of ``tokens`` tokens may be sent; the seconds waited."""
        ...

    def block(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` (a provider's ``Retry-After``)."""
        ...


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
            (one round trip per request instead of a pool checkout, check and commit), and
            an unlimited limiter follows the shared backoff by ``LISTEN`` on its own
            connection (no round trip per request). Without it every ``acquire`` reads the
            bucket rows through the pool.

    Call :meth:`close` to stop the listener thread.
    """

    def __init__(
        self,
        pool: Any,
        *,
        name: str,
        rpm: int | None = None,
        tpm: int | None = None,
        burst_fraction: float = 0.1,
        max_sleep_seconds: float = 2.0,
        url: str | None = None,
    ) -> None:
        self.pool = pool
        self.url = url
        self._local = threading.local()
        self.name = name
        self.repo = Repository()
        self.max_sleep_seconds = max_sleep_seconds
        self._sizes: dict[str, tuple[float, float]] = {f"{name}:requests": bucket_size(rpm, burst_fraction)}
        if tpm is not None:
            self._sizes[f"{name}:tokens"] = bucket_size(tpm, burst_fraction)
        self.unlimited = rpm is None and tpm is None  # acquire only honours the shared backoff
        self._configured = False
        self._lock = threading.Lock()
        self._backoff_until = 0.0  # monotonic: the shared backoff as the listener last heard it
        self._listening = threading.Event()  # set while the listener is connected and in sync
        self._closed = threading.Event()
        self._listener: threading.Thread | None = None

    @property
    def buckets(self) -> list[str]:
        return list(self._sizes)

    @property
    def meters_tokens(self) -> bool:
        """True with a tokens-per-minute bucket: ``acquire`` then needs exact token counts."""
        return len(self._sizes) > 1

    def _configure(self) -> None:
        with self._lock:
            if self._configured:
                return
            with self.pool.connection() as conn:
                for bucket, (capacity, refill) in self._sizes.items():
                    self.repo.rate_limit_configure(conn, bucket, capacity=capacity, refill_per_second=refill)
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
        if self.unlimited and self.url is not None:
            self._start_listener()
        while True:
            if self._listening.is_set():
                wait = self._backoff_until - time.monotonic()
                granted = wait <= 0
            else:
                granted, wait = self._take(names, costs)
            if granted:
                return time.monotonic() - started
            if should_stop is not None and should_stop():
                raise InterruptedError("stopped while waiting for the rate limit")
            time.sleep(min(self.max_sleep_seconds, wait) + random.uniform(0.0, 0.02))

    def _take(self, names: list[str], costs: list[float]) -> tuple[bool, float]:
        if self.url is None:
            with self.pool.connection() as conn:
                return self._verdict(conn, names, costs)
        import psycopg

        from docingest.db.pool import connect

        conn = getattr(self._local, "conn", None)
        try:
            if conn is None or conn.closed:
                conn = connect(self.url, autocommit=True)
                conn.execute("SET synchronous_commit = off")  # soft state: see the module docstring
                self._local.conn = conn
            return self._verdict(conn, names, costs)
        except psycopg.OperationalError:
            self._local.conn = None  # reconnect on the next try
            with self.pool.connection() as pooled:
                return self._verdict(pooled, names, costs)

    def _verdict(self, conn: Any, names: list[str], costs: list[float]) -> tuple[bool, float]:
        """``(granted, wait_seconds)``: a read of the backoff when unlimited, else the bucket update."""
        if self.unlimited:
            wait = self.repo.rate_limit_wait(conn, names)
            return wait <= 0, wait
        return self.repo.rate_limit_acquire(conn, names, costs)

    def block(self, seconds: float) -> None:
        """Make every worker wait ``seconds`` before its next request (after a 429)."""
        self._configure()
        self._extend(seconds)  # this process at once; the others when the NOTIFY arrives
        with self.pool.connection() as conn:
            self.repo.rate_limit_block(conn, self.buckets, seconds)
        log.info("%s: every worker backs off %.2fs", self.name, seconds)

    def close(self) -> None:
        """Stop the listener thread (within a second); ``acquire`` then reads the rows."""
        self._closed.set()
        self._listening.clear()

    # --- the shared backoff, as LISTEN delivers it -----------------------------------
    def _extend(self, seconds: float) -> None:
        with self._lock:
            self._backoff_until = max(self._backoff_until, time.monotonic() + seconds)

    def _start_listener(self) -> None:
        with self._lock:
            if self._listener is not None or self._closed.is_set():
                return
            self._listener = threading.Thread(
                target=self._listen, daemon=True, name=f"docingest-{self.name}-backoff"
            )
        self._listener.start()

    def _listen(self) -> None:
        """Follow ``NOTIFY upload_pipeline_rate_limits`` until :meth:`close`; reconnect on loss."""
        import psycopg

        from docingest.db.pool import connect

        assert self.url is not None
        while not self._closed.is_set():
            try:
                with connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {BACKOFF_CHANNEL}")
                    # A backoff set before LISTEN took effect is in the rows, not in a notification.
                    self._extend(self.repo.rate_limit_wait(conn, self.buckets))
                    self._listening.set()
                    while not self._closed.is_set():
                        for note in conn.notifies(timeout=1.0):
                            bucket, _, seconds = note.payload.partition(" ")
                            if bucket in self._sizes:
                                self._extend(float(seconds))
            except (psycopg.Error, ValueError) as exc:
                self._listening.clear()  # before the wait below: acquire reads the rows meanwhile
                if self._closed.is_set():
                    return  # closed while the database went away: nothing to report
                log.warning(
                    "%s: backoff listener lost (%s); reading the rows until it is back", self.name, exc
                )
                self._closed.wait(1.0)
            finally:
                self._listening.clear()  # whatever ended it: acquire falls back to the rows


class LocalBackoff:
    """The limiter used without a database (unit tests): no limit, backoff in this process."""

    meters_tokens = False  # no token bucket: token counts only bound the batches

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
