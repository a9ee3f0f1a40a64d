"""Giving freed C heap memory back to the operating system (glibc's ``malloc_trim``).

Large, short-lived native allocations (a model's activations, a tokenizer's encodings, a
parser's page objects) come from glibc's heap once its mmap threshold has risen; freed,
they stay in the process's resident set, cut up by allocations of other sizes. Trimming
after such a step keeps the resident set near what is live.
"""

from __future__ import annotations

from typing import Any

__all__ = ["trim_heap"]


def _libc() -> Any:
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _libc()


def trim_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc's ``malloc_trim(0)``); elsewhere a no-op.

    Costs a walk of the heap (milliseconds): call it after a large step, not per allocation.
    """
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)
