"""Retry delays: exponential backoff with full jitter.

Source: "Exponential Backoff And Jitter", AWS Architecture Blog (M. Brooker,
2015): ``sleep = random_between(0, min(cap, base * 2 ** attempt))``. A server's
``Retry-After`` is a floor: we never come back sooner than it asked.
"""

from __future__ import annotations

import random


def backoff_seconds(
    retry_count: int,
    *,
    base: float = 1.0,
    cap: float = 300.0,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``retry_count + 1`` (``retry_count`` >= 0).

    Returns a value in ``[0, min(cap, base * 2**retry_count)]``, raised to
    ``retry_after`` when one is given.
    """
    if retry_count < 0:
        raise ValueError("retry_count must be >= 0")
    ceiling = min(cap, base * (2 ** min(retry_count, 60)))
    delay = (rng or random).uniform(0.0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
