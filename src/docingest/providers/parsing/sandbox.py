"""Bounded parsing: every local parse runs in a child process with a time and a memory limit.

A parser is third-party C code (PDFium, libxml2) fed with whatever users upload:
one file can hang it, crash it or make it allocate gigabytes. Running the parse in
the worker's own process would take the worker, and every job it holds, down with
it. Here the worker only waits:

    parse = SandboxedParser(ParseLimits.from_settings(settings))
    document = parse(path, kind)          # same shape as parsing.parse_file

How the limits are enforced:
- wall time: ``timeout_seconds + timeout_seconds_per_mb * size_MB``, capped at
  ``timeout_max_seconds``; on expiry the parent kills the child: ``ParseTimeout``. When OCR
  is on and the kind may be OCRed (PDF, image), the limit grows by
  ``ParseOptions.ocr_seconds_per_page`` for each page the child reports (one for an
  image), within the same cap: OCR is bounded per page, as parsing is per MiB.
- memory: the child sets ``RLIMIT_AS`` to its address space at start plus
  ``memory_mb`` (an allocation beyond it raises ``MemoryError`` in the child,
  reported as ``ParseOutOfMemory``), and the parent polls the child's resident
  set every ``poll_seconds`` and kills it above ``memory_mb``: ``ParseOutOfMemory``.
  A child killed by SIGKILL that the parent did not send (the kernel's OOM
  killer) is reported the same way.
- crash: a child that exits without an answer (segfault, abort, ``os._exit``)
  is ``ParseCrashed``, with the signal or exit status in the message.
- orphans: if the worker is killed (SIGKILL), its forkserver exits and the
  child, seeing its parent gone (or its parse's deadline long passed), exits;
  a per-parse ``RLIMIT_CPU`` ends a child spinning in C code that holds the GIL.

Children are forked from a ``forkserver`` (started once per process, with the
parsers preloaded), never from the multi-threaded worker itself, so a child
never inherits a lock held by another thread. A child serves one parse at a
time and is kept for the next (starting one costs 0.2-1 s, as multiprocessing
re-imports the entry module in it); a child that broke a limit is killed, and
every child is replaced after ``max_parses_per_child`` parses. The three errors are transient:
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
import warnings as py_warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docingest.errors import (
    DocingestError,
    ParseCrashed,
    ParseOutOfMemory,
    ParseTimeout,
    classify,
)
from docingest.heap import trim_heap
from docingest.providers.parsing.base import DEFAULT_OPTIONS, PageProgress, ParsedDocument, ParseOptions

log = logging.getLogger("docingest.providers.parsing.sandbox")

DEFAULT_TARGET = "docingest.providers.parsing:parse_file"
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

    def timeout_for(self, size_bytes: int, *, ocr_pages: int = 0, ocr_seconds_per_page: float = 0.0) -> float:
        """Wall-time limit, seconds, for an input of ``size_bytes`` of which up to ``ocr_pages``
        pages may be OCRed at ``ocr_seconds_per_page`` each."""
        scaled = (
            self.timeout_seconds
            + self.timeout_seconds_per_mb * size_bytes / _MB
            + ocr_pages * ocr_seconds_per_page
        )
        return min(scaled, max(self.timeout_max_seconds, self.timeout_seconds))


#: Kinds whose pages OCR may read (a PDF page without a text layer; an image, a TIFF frame).
OCR_KINDS = frozenset({"pdf", "image"})


def _ocr_budget(options: ParseOptions, kind: str) -> float:
    """Seconds of wall time each page of a parse of ``kind`` adds to its limit (0 without OCR)."""
    return options.ocr_seconds_per_page if options.ocr != "off" and kind in OCR_KINDS else 0.0


def _context() -> Any:
    """The multiprocessing context: forkserver (parsers preloaded) where available, else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["docingest.providers.parsing.preloaded"])
        return ctx
    return multiprocessing.get_context("spawn")


def _resolve(target: str) -> Callable[..., ParsedDocument]:
    module, _, name = target.partition(":")
    parse: Callable[..., ParsedDocument] = getattr(importlib.import_module(module), name)
    return parse


def _address_space_bytes() -> int:
    """This process's virtual size in bytes (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _watchdog(parent: int, state: dict[str, float]) -> None:
    """Exit when the parent is gone or a parse overran its deadline: no orphan parses."""
    while True:
        time.sleep(0.5)
        deadline = state.get("deadline")
        if os.getppid() != parent or (deadline and time.monotonic() > deadline + _ORPHAN_GRACE_SECONDS):
            os._exit(70)


def _page_reporter(
    conn: Any, interval_seconds: float | None, extend: Callable[[int], None]
) -> Callable[[int, int], None]:
    """``on_progress`` for the parser in the child: calls ``extend(pages_total)`` (the OCR
    allowance), then, when ``interval_seconds`` is not None, sends ``("progress", (parsed,
    total))`` for the first page and then at most once per ``interval_seconds``."""
    last: list[float] = []

    def report(parsed: int, total: int) -> None:
        extend(total)
        if interval_seconds is None:
            return
        now = time.monotonic()
        if last and now - last[0] < interval_seconds:
            return
        last[:] = [now]
        conn.send(("progress", (parsed, total)))

    return report


def _limit_setter(
    state: dict[str, float], limits: ParseLimits, size: int, budget: float
) -> Callable[[int], None]:
    """``set_limits(ocr_pages)`` for the parse starting now: sets this child's CPU-time limit
    and its watchdog's deadline to the wall-time limit of ``size`` bytes plus ``ocr_pages``
    pages of ``budget`` seconds each."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu_used = used.ru_utime + used.ru_stime
    started = time.monotonic()

    def set_limits(pages: int) -> None:
        timeout = limits.timeout_for(size, ocr_pages=pages, ocr_seconds_per_page=budget)
        cpu = int(cpu_used + timeout + _ORPHAN_GRACE_SECONDS) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))
        state["deadline"] = started + timeout

    return set_limits


def _child_loop(conn: Any, memory_bytes: int) -> None:
    """Entry point of a parse process: set the memory limit, then serve parse requests.

    Each request is ``(target, path, kind, limits, size, options, progress_seconds)``; the
    answer is ``("ok", ParsedDocument) | ("error", DocingestError) | ("oom", message)``,
    preceded, when ``progress_seconds`` is not None, by ``("progress", (pages_parsed,
    pages_total))`` messages. The target is called as ``target(path, kind, on_progress=...,
    options=options)``; its page reports also move this child's deadline and CPU limit by the
    OCR allowance (:func:`_ocr_budget`), as the parent moves its own.
    ``None`` or a closed pipe ends the loop; so does an ``oom`` answer.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Libraries warn on stderr about the files they read (Pillow's "Corrupt EXIF data" ...):
    # noise in the worker's log; what matters to the user the parsers report as warnings.
    py_warnings.simplefilter("ignore")
    state: dict[str, float] = {}
    threading.Thread(target=_watchdog, args=(os.getppid(), state), daemon=True).start()
    base = _address_space_bytes()
    if base:
        resource.setrlimit(resource.RLIMIT_AS, (base + memory_bytes, base + memory_bytes))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        target, path, kind, limits, size, options, progress_seconds = request
        budget = _ocr_budget(options, kind)
        set_limits = _limit_setter(state, limits, size, budget)
        set_limits(1 if budget else 0)
        try:
            parse = _resolve(target)
            reporter = _page_reporter(conn, progress_seconds, set_limits if budget else lambda _: None)
            message: tuple[str, Any] = ("ok", parse(Path(path), kind, on_progress=reporter, options=options))
        except MemoryError:
            message = ("oom", "the parser ran out of memory (MemoryError)")
        except DocingestError as exc:
            message = ("error", exc)
        except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
            message = ("error", classify(exc))
        state.pop("deadline", None)
        try:
            conn.send(message)
        except MemoryError:
            message = ("oom", "the parse result did not fit in memory")
            conn.send(message)
        if message[0] == "oom":
            return
        del message
        trim_heap()  # the parse's pages and text: this process is kept for the next parse


class _Child:
    """One parse process and the parent's end of its pipe."""

    def __init__(self, ctx: Any, memory_bytes: int) -> None:
        self.conn, theirs = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(
            target=_child_loop, args=(theirs, memory_bytes), name="docingest-parse", daemon=True
        )
        self.proc.start()
        theirs.close()
        self.parses = 0

    def close(self, *, kill: bool) -> None:
        try:
            if kill:
                self.proc.kill()
            else:
                self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


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
            ``docingest.providers.parsing:parse_file`` unless a test supplies a misbehaving one.
        poll_seconds: how often the parent checks the child's time and memory.
        max_parses_per_child: a child serves this many parses, then is replaced
            (bounds slow leaks and fragmentation); a child that broke a limit or
            ran out of memory is never reused.
        progress_seconds: with an ``on_progress`` callback, the child reports pages
            parsed after the first page, then at most once per this many seconds.

    Children are kept between parses (starting one costs 0.2-1 s: multiprocessing
    re-imports the entry module), one per concurrent caller. Thread-safe.
    """

    def __init__(
        self,
        limits: ParseLimits,
        *,
        target: str = DEFAULT_TARGET,
        poll_seconds: float = 0.05,
        max_parses_per_child: int = 100,
        progress_seconds: float = 0.5,
    ) -> None:
        self.limits = limits
        self.target = target
        self.poll_seconds = poll_seconds
        self.max_parses_per_child = max_parses_per_child
        self.progress_seconds = progress_seconds
        self._lock = threading.Lock()
        self._idle: list[_Child] = []

    def _acquire(self) -> _Child:
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.proc.is_alive():
                    return child
                child.close(kill=True)
            return _Child(_context(), self.limits.memory_mb * _MB)

    def _release(self, child: _Child, healthy: bool) -> None:
        child.parses += 1
        if healthy and child.parses < self.max_parses_per_child and child.proc.is_alive():
            with self._lock:
                self._idle.append(child)
            return
        child.close(kill=not healthy)

    def close(self) -> None:
        """Stop the idle children."""
        with self._lock:
            idle, self._idle = self._idle, []
        for child in idle:
            child.close(kill=False)

    def __call__(
        self,
        path: Path,
        kind: str,
        on_progress: PageProgress | None = None,
        options: ParseOptions = DEFAULT_OPTIONS,
    ) -> ParsedDocument:
        """Parse ``path`` as ``kind`` with ``options`` in a child process.

        ``on_progress(pages_parsed, pages_total)`` is called in this thread as the
        child reports pages (paged kinds; see ``progress_seconds``). An exception it
        raises (``LeaseLost`` ...) stops the parse: the child is killed.

        Raises:
            ParseTimeout, ParseOutOfMemory, ParseCrashed: the child broke a limit or died.
            DocingestError: what the parser itself raised (``PdfEncrypted`` ...).
        """
        size = os.path.getsize(path)
        budget = _ocr_budget(options, kind)
        timeout = self.limits.timeout_for(size, ocr_pages=1 if budget else 0, ocr_seconds_per_page=budget)
        memory_bytes = self.limits.memory_mb * _MB
        child = self._acquire()
        healthy = False
        killed = False
        try:
            # With OCR on, page reports move the deadline: they are wanted even without a caller.
            wants_progress = on_progress is not None or budget > 0
            progress_seconds = self.progress_seconds if wants_progress else None
            child.conn.send((self.target, str(path), kind, self.limits, size, options, progress_seconds))
            started = time.monotonic()
            while True:
                if child.conn.poll(self.poll_seconds):
                    try:
                        status, payload = child.conn.recv()
                    except (EOFError, OSError):
                        break  # the child died without answering
                    if status != "progress":
                        healthy = status != "oom"
                        return self._answer(status, payload)
                    if budget:
                        timeout = self.limits.timeout_for(
                            size, ocr_pages=payload[1], ocr_seconds_per_page=budget
                        )
                    if on_progress is not None:
                        on_progress(*payload)  # then the limits are checked as after a poll
                if not child.proc.is_alive() and not child.conn.poll(0):
                    break
                if _rss_bytes(child.proc.pid) > memory_bytes:
                    killed = True
                    child.proc.kill()
                    raise ParseOutOfMemory(
                        f"the parser used more than {self.limits.memory_mb} MB "
                        f"(UPLOAD_PIPELINE_PARSE_MEMORY_MB) and was stopped"
                    )
                if time.monotonic() - started > timeout:
                    killed = True
                    child.proc.kill()
                    ocr = " and _OCR_SECONDS_PER_PAGE" if budget else ""
                    raise ParseTimeout(
                        f"parsing took longer than {timeout:.1f} s for {size} bytes "
                        f"(UPLOAD_PIPELINE_PARSE_TIMEOUT_SECONDS, _PER_MB{ocr}) and was stopped"
                    )
            child.proc.join(5)
            raise self._death(child.proc.exitcode, killed)
        finally:
            self._release(child, healthy)

    def _answer(self, status: str, payload: Any) -> ParsedDocument:
        if status == "ok":
            document: ParsedDocument = payload
            return document
        if status == "oom":
            raise ParseOutOfMemory(
                f"{payload} (limit {self.limits.memory_mb} MB, UPLOAD_PIPELINE_PARSE_MEMORY_MB)"
            )
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
