"""Bounded parsing: every local parse runs in a child process with a time and a memory limit.

A parser is third-party C code (PDFium, libxml2) fed with whatever users upload:
one file can hang it, crash it or make it allocate gigabytes. Running the parse in
the worker's own process would take the worker, and every job it holds, down with
it. Here the worker only waits:

    parse = SandboxedParser(ParseLimits.from_settings(settings))
    document = parse(path, kind)          # same shape as parsing.parse_file

How the limits are enforced:
- wall time: ``timeout_seconds + timeout_seconds_per_mb * size_MB``, capped at
  ``timeout_max_seconds``; on expiry the parent kills the child: ``ParseTimeout``.
- memory: the child sets ``RLIMIT_AS`` to its address space at start plus
  ``memory_mb`` (an allocation beyond it raises ``MemoryError`` in the child,
  reported as ``ParseOutOfMemory``), and the parent polls the child's resident
  set every ``poll_seconds`` and kills it above ``memory_mb``: ``ParseOutOfMemory``.
  A child killed by SIGKILL that the parent did not send (the kernel's OOM
  killer) is reported the same way.
- crash: a child that exits without an answer (segfault, abort, ``os._exit``)
  is ``ParseCrashed``, with the signal or exit status in the message.
- orphans: if the worker is killed (SIGKILL) mid-parse, the child notices its
  parent is gone (or its own deadline passed) and exits; ``RLIMIT_CPU`` ends a
  child spinning in C code that holds the GIL.

Children are forked from a ``forkserver`` (started once per process, with the
parsers preloaded), never from the multi-threaded worker itself, so a child
never inherits a lock held by another thread. The three errors are transient:
the worker retries them with backoff, then fails the document with the last one.
The parser's own errors (``PdfEncrypted``, ``PdfCorrupt`` ...) are re-raised in
the parent unchanged; any other exception becomes ``InternalError``.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from docingest.errors import (
    DocingestError,
    ParseCrashed,
    ParseOutOfMemory,
    ParseTimeout,
    classify,
)
from docingest.parsing.base import ParsedDocument

log = logging.getLogger("docingest.parsing.sandbox")

DEFAULT_TARGET = "docingest.parsing:parse_file"
_MB = 1024 * 1024
_ORPHAN_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class ParseLimits:
    """Limits of one parse.

    Attributes:
        timeout_seconds: base wall-time limit, seconds.
        timeout_seconds_per_mb: seconds added per MiB of input.
        timeout_max_seconds: cap of the scaled limit, seconds.
        memory_mb: resident-memory limit of the child, MiB.
    """

    timeout_seconds: float = 60.0
    timeout_seconds_per_mb: float = 10.0
    timeout_max_seconds: float = 900.0
    memory_mb: int = 2048

    @classmethod
    def from_settings(cls, settings: Any) -> ParseLimits:
        return cls(
            timeout_seconds=settings.parse_timeout_seconds,
            timeout_seconds_per_mb=settings.parse_timeout_seconds_per_mb,
            timeout_max_seconds=settings.parse_timeout_max_seconds,
            memory_mb=settings.parse_memory_mb,
        )

    def timeout_for(self, size_bytes: int) -> float:
        """Wall-time limit, seconds, for an input of ``size_bytes``."""
        scaled = self.timeout_seconds + self.timeout_seconds_per_mb * size_bytes / _MB
        return min(scaled, max(self.timeout_max_seconds, self.timeout_seconds))


def _context() -> Any:
    """The multiprocessing context: forkserver (parsers preloaded) where available, else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["docingest.parsing"])
        return ctx
    return multiprocessing.get_context("spawn")


def _resolve(target: str) -> Callable[[Path, str], ParsedDocument]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _address_space_bytes() -> int:
    """This process's virtual size in bytes (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _watchdog(parent: int, deadline: float) -> None:
    """Exit when the parent is gone or the deadline (plus grace) passed: no orphan parses."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent or time.monotonic() > deadline + _ORPHAN_GRACE_SECONDS:
            os._exit(70)


def _child_main(target: str, path: str, kind: str, memory_bytes: int, timeout: float, conn: Any) -> None:
    """Entry point of the child: set limits, parse, send ``(status, payload)`` and exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    deadline = time.monotonic() + timeout
    threading.Thread(target=_watchdog, args=(os.getppid(), deadline), daemon=True).start()
    base = _address_space_bytes()
    if base:
        limit = base + memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cpu = int(timeout + _ORPHAN_GRACE_SECONDS) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    try:
        message: tuple[str, Any] = ("ok", _resolve(target)(Path(path), kind))
    except MemoryError:
        message = ("oom", "the parser ran out of memory (MemoryError)")
    except DocingestError as exc:
        message = ("error", exc)
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
        message = ("error", classify(exc))
    try:
        conn.send(message)
    except MemoryError:
        conn.send(("oom", "the parse result did not fit in memory"))
    conn.close()


def _rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (0 when it is gone)."""
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except Exception:  # noqa: BLE001 - the child may exit between checks
        return 0


class SandboxedParser:
    """``parse_fn(path, kind)`` that runs ``target`` in a bounded child process.

    Args:
        limits: time and memory limits.
        target: ``"module:function"`` called in the child as ``function(path, kind)``;
            ``docingest.parsing:parse_file`` unless a test supplies a misbehaving one.
        poll_seconds: how often the parent checks the child's time and memory.

    Thread-safe: each call has its own child; the worker's slots call it concurrently.
    """

    def __init__(self, limits: ParseLimits, *, target: str = DEFAULT_TARGET,
                 poll_seconds: float = 0.05) -> None:
        self.limits = limits
        self.target = target
        self.poll_seconds = poll_seconds
        self._start_lock = threading.Lock()

    def __call__(self, path: Path, kind: str) -> ParsedDocument:
        """Parse ``path`` as ``kind`` in a child process.

        Raises:
            ParseTimeout, ParseOutOfMemory, ParseCrashed: the child broke a limit or died.
            DocingestError: what the parser itself raised (``PdfEncrypted`` ...).
        """
        size = os.path.getsize(path)
        timeout = self.limits.timeout_for(size)
        memory_bytes = self.limits.memory_mb * _MB
        ctx = _context()
        reader, writer = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child_main, name="docingest-parse", daemon=True,
                           args=(self.target, str(path), kind, memory_bytes, timeout, writer))
        with self._start_lock:
            proc.start()
        writer.close()
        started = time.monotonic()
        killed = False
        try:
            while True:
                if reader.poll(self.poll_seconds):
                    try:
                        status, payload = reader.recv()
                    except (EOFError, OSError):
                        break  # the child died without answering
                    return self._answer(status, payload)
                if not proc.is_alive() and not reader.poll(0):
                    break
                if _rss_bytes(proc.pid) > memory_bytes:  # type: ignore[arg-type]
                    killed = True
                    proc.kill()
                    raise ParseOutOfMemory(
                        f"the parser used more than {self.limits.memory_mb} MB "
                        f"(UPLOAD_PIPELINE_PARSE_MEMORY_MB) and was stopped"
                    )
                if time.monotonic() - started > timeout:
                    killed = True
                    proc.kill()
                    raise ParseTimeout(
                        f"parsing took longer than {timeout:.1f} s for {size} bytes "
                        f"(UPLOAD_PIPELINE_PARSE_TIMEOUT_SECONDS and _PER_MB) and was stopped"
                    )
            proc.join(5)
            raise self._death(proc.exitcode, killed)
        finally:
            if proc.is_alive():
                proc.kill()
            proc.join(5)
            reader.close()
            if hasattr(proc, "close") and proc.exitcode is not None:
                proc.close()

    def _answer(self, status: str, payload: Any) -> ParsedDocument:
        if status == "ok":
            return payload  # type: ignore[no-any-return]
        if status == "oom":
            raise ParseOutOfMemory(f"{payload} (limit {self.limits.memory_mb} MB, "
                                   "UPLOAD_PIPELINE_PARSE_MEMORY_MB)")
        raise payload

    def _death(self, exitcode: int | None, killed: bool) -> DocingestError:
        if exitcode is not None and exitcode < 0:
            sig = signal.Signals(-exitcode)
            if sig is signal.SIGKILL and not killed:
                return ParseOutOfMemory("the parser was killed by SIGKILL (the system's OOM killer?)")
            if sig is signal.SIGXCPU:
                return ParseTimeout("the parser exceeded its CPU-time limit and was stopped")
            return ParseCrashed(f"the parser process crashed ({sig.name})")
        return ParseCrashed(f"the parser process exited with status {exitcode} without a result")
