"""The embedder probe run before a command starts work: one probe string through the
embedders, compared with the database column, with a short backoff on transient failures."""

from __future__ import annotations

import time
from collections.abc import Callable

from docingest.backoff import backoff_seconds
from docingest.errors import DocingestError

#: Called after a failed attempt that will be tried again: ``(attempt, attempts, error,
#: delay_seconds)``, ``attempt`` counted from 1.
OnRetry = Callable[[int, int, DocingestError, float], None]


def probe_embedder(
    check: Callable[[], None],
    *,
    attempts: int = 3,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DocingestError | None:
    """Run ``check`` (``Runtime.check_embedder_dimensions``) until it passes, at most ``attempts`` times.

    A transient failure of the provider (5xx, 429, timeout: ``retryable``) is tried again after
    a backoff (0.5 s doubling, at most 5 s, or the provider's ``Retry-After``), ``on_retry``
    told first. If it persists the caller may start anyway: every reply is checked again per
    batch, so a wrong dimension still fails the job, writing nothing.

    Returns:
        None when the check passed; the last error when every attempt failed transiently.

    Raises:
        DocingestError: a permanent refusal (``embedding_dimension_mismatch``, a rejected key).
        ValueError: the embedder's configuration is invalid.
    """
    for attempt in range(attempts):
        try:
            check()
            return None
        except DocingestError as exc:
            if not exc.retryable:
                raise
            if attempt == attempts - 1:
                return exc
            delay = backoff_seconds(attempt, base=0.5, cap=5.0, retry_after=exc.retry_after)
            if on_retry is not None:
                on_retry(attempt + 1, attempts, exc, delay)
            sleep(delay)
    return None
