"""BaseWorker: claims jobs under leases and runs them through the stage handlers.

Guarantees (docs/architecture.md, section 4):
- a claim is one ``UPDATE ... (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``
  with a fresh ``attempt_id`` (``db/sql/queries.sql``: ``claim_job``);
- every write of a handler, and its transition, happen in one transaction that
  first checks (``fence``) that the attempt still holds the job; a stage without
  writes is one fenced statement (``complete_stage``: the transition and its
  events, written only while the attempt holds the job at that stage);
- a heartbeat thread renews the leases of held jobs; a job whose renewal fails
  is marked lost and its handler stops at the next ``ctx.check()``;
- expired leases are claimable; after ``max_lost_leases`` takeovers the job
  fails ``worker_lost``;
- permanent errors fail at once; transient ones retry with backoff and jitter
  up to ``max_retries``, then fail with the last cause;
- idle slots wake on ``LISTEN upload_pipeline_jobs`` with polling as fallback;
- ``stop()`` (SIGTERM): stop claiming, release held jobs at the next check.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from docingest.backoff import backoff_seconds
from docingest.db.pool import single_statements
from docingest.db.repository import Repository
from docingest.domain import Claim, Document, Job, JobControl, JobProgress, Stage, State
from docingest.errors import DocingestError, LeaseLost, WorkerLost, classify
from docingest.observability import logs, metrics
from docingest.settings import Settings
from docingest.stages.base import Persist, StageHandler, StageResult

log = logging.getLogger("docingest.worker")
slog = logs.get_logger("docingest.worker")
# One line per job outcome (complete, failed, retry scheduled) and lease takeover; shown by
# `docingest worker` and `serve` at their default level (logs.configure_logging(job_lines=True)).
# Keys avoid LogRecord's attribute names (filename, message): without configure_logging,
# structlog hands them to the standard library as `extra`, which refuses those.
jlog = logs.get_logger(logs.JOBS_LOGGER)
NOTIFY_CHANNEL = "upload_pipeline_jobs"


_heap_frozen = threading.Event()


def freeze_startup_heap() -> int:
    """Once per process: move every object alive now (modules, classes, the loaded embedder and
    SDKs) out of reach of the cyclic garbage collector (``gc.freeze``); the count frozen.

    Those objects live as long as the process; without this every full collection walks them
    all again, holding the GIL, while the embedding lanes wait for it. Objects made later are
    collected as usual. Returns 0 after the first call.
    """
    if _heap_frozen.is_set():
        return 0
    _heap_frozen.set()
    gc.collect()  # what is already garbage is freed, not frozen
    gc.freeze()
    return gc.get_freeze_count()


class WorkerStopping(Exception):
    """The worker is shutting down; the held job is released, not failed."""


@dataclass
class _Held:
    job: Job
    lost: threading.Event


class JobContext:
    """A claimed job as its handlers see it (implements ``stages.base.StageContext``)."""

    def __init__(self, worker: BaseWorker, job: Job, document: Document, held: _Held) -> None:
        self.worker = worker
        self.job = job
        self.document = document
        self._held = held

    def check(self) -> None:
        if self._held.lost.is_set():
            raise LeaseLost(f"job {self.job.job_id}: lease lost by attempt {self.job.attempt_id}")
        if self.worker.stopping.is_set():
            raise WorkerStopping()

    def lost(self) -> None:
        """Mark the attempt as fenced out: its handler stops at the next :meth:`check`."""
        self._held.lost.set()

    @contextmanager
    def fenced(self) -> Iterator[Any]:
        with self.worker.pool.connection() as conn, conn.transaction():
            if not self.worker.repo.fence(conn, self.job):
                self.lost()
                raise LeaseLost(f"job {self.job.job_id}: attempt {self.job.attempt_id} fenced out")
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Any]:
        with self.worker.pool.connection() as conn:
            yield conn

    def save_progress(
        self, progress: JobProgress, persist: Persist | None = None, *, control: JobControl | None = None
    ) -> None:
        with self.fenced() as conn:
            if persist is not None:
                persist(conn)
            self.worker.repo.update_progress(
                conn,
                self.job.job_id,
                progress,
                control=control,
                lease_seconds=self.worker.settings.lease_seconds,
            )
        self.job = replace(
            self.job, progress=self.job.progress.merge(progress), control=self.job.control.merge(control)
        )


#: Seconds the LISTEN thread waits for a notification before it checks whether to stop.
LISTEN_POLL_SECONDS = 0.1


class BaseWorker:
    """Runs ``concurrency`` slots (threads) that claim and process jobs.

    Args:
        settings: lease, heartbeat, retry and poll settings.
        pool: psycopg pool (dict rows); at least ``concurrency + 2`` connections.
        handlers: ``{stage: handler}`` from ``stages.build_handlers``.
        url: database URL for the dedicated LISTEN connection (None: polling only).
        reembed_handlers: ``{stage: handler}`` of re-embedding jobs (``kind = 'reembed'``)
            from ``stages.build_reembed_handlers``; None: such a job fails ``internal_error``.
    """

    def __init__(
        self,
        settings: Settings,
        pool: ConnectionPool,
        handlers: dict[Stage, StageHandler],
        *,
        url: str | None = None,
        concurrency: int | None = None,
        worker_id: str | None = None,
        reembed_handlers: dict[Stage, StageHandler] | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.handlers = handlers
        self.reembed_handlers = reembed_handlers or {}
        self.url = url
        self.concurrency = concurrency or settings.worker_concurrency
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.repo = Repository()
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self._held: dict[uuid.UUID, _Held] = {}
        self._held_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._switch_interval: float | None = None  # the process's, restored by stop()
        self.jobs_finished = 0

    # --- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        """Start the slots, the heartbeat and the listener threads (and freeze the start-up heap).

        It also sets the process's GIL switch interval to ``worker_switch_interval_ms``
        (until :meth:`stop`). A worker's threads mostly wait on sockets; with Python's 5 ms,
        an embedding lane whose reply is in, or whose request a free connection could take,
        waits up to 5 ms behind another thread's CPU work, and the requests in flight fall
        below the embedder's concurrency.
        """
        freeze_startup_heap()
        if self._switch_interval is None:
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(self.settings.worker_switch_interval_ms / 1000.0)
        targets: list[tuple[str, Callable[[], None]]] = [
            (f"slot-{i}", self._slot_loop) for i in range(self.concurrency)
        ]
        targets.append(("heartbeat", self._heartbeat_loop))
        if self.url:
            targets.append(("listener", self._listen_loop))
        for name, target in targets:
            t = threading.Thread(target=target, name=f"docingest-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float | None = 60.0) -> None:
        """Stop claiming; held jobs are released at their next check; join the threads."""
        self.stopping.set()
        self.wake.set()
        for t in self._threads:
            t.join(timeout)
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None

    def run_forever(self) -> None:
        """Start and block until :meth:`stop` is called (e.g. from a SIGTERM handler)."""
        self.start()
        while not self.stopping.wait(0.5):
            pass
        self.stop()

    # --- slots -----------------------------------------------------------------
    def _slot_loop(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                self.wake.clear()
                worked = self.run_once()
                failures = 0
            except psycopg.Error as exc:
                failures += 1
                log.warning("database error in worker slot: %s", exc)
                self.stopping.wait(min(30.0, 0.5 * 2**failures))
                continue
            except Exception:
                failures += 1
                log.exception("unexpected error in worker slot")
                self.stopping.wait(min(30.0, 0.5 * 2**failures))
                continue
            if not worked:
                self.wake.wait(self.settings.poll_interval_seconds)

    def claim(self) -> Claim | None:
        """Claim one job under a fresh lease: the :class:`~docingest.domain.Claim` (the job, the
        state it was claimed from, its document), or None when nothing is claimable."""
        with single_statements(self.pool) as conn:  # the claim is its own transaction
            return self.repo.claim_job(
                conn, worker_id=self.worker_id, lease_seconds=self.settings.lease_seconds
            )

    def run_once(self) -> bool:
        """Claim and process one job; False when there was nothing to claim."""
        claimed = self.claim()
        if claimed is None:
            return False
        self.process(
            claimed.job,
            took_over=claimed.previous_state == State.WORKING.value,
            document=claimed.document,
            previous_worker=claimed.previous_worker,
        )
        return True

    def process(
        self,
        job: Job,
        *,
        took_over: bool = False,
        document: Document | None = None,
        previous_worker: str | None = None,
    ) -> Job | None:
        """Run a claimed job through as many stages as it can go; return its last row.

        ``document`` is the job's document when the claim brought it (else it is read);
        ``previous_worker`` the worker whose expired lease was taken over (for its log line).
        Returns None when the attempt lost its lease or the worker is stopping.
        """
        held = _Held(job, threading.Event())
        with self._held_lock:
            self._held[job.job_id] = held
        logs.bind_job(job)
        try:
            if document is None or took_over:
                with self.pool.connection() as conn:
                    if document is None:
                        document = self.repo.get_document(conn, job.document_id)
                    if took_over:
                        self.repo.insert_event(
                            conn,
                            job_id=job.job_id,
                            document_id=job.document_id,
                            stage=job.stage.value,
                            type="lease_taken_over",
                            payload={"lost_leases": job.lost_leases, "attempt_id": str(job.attempt_id)},
                        )
            assert document is not None, "a job always has its document (FK)"
            return self._process(JobContext(self, job, document, held), held, took_over, previous_worker)
        finally:
            logs.unbind_job()
            with self._held_lock:
                self._held.pop(job.job_id, None)

    def _process(
        self, ctx: JobContext, held: _Held, took_over: bool, previous_worker: str | None = None
    ) -> Job | None:
        job = ctx.job
        claimed_at = time.monotonic()
        logs.bind_job(job, user_id=ctx.document.user_id)
        if took_over:
            metrics.LEASE_TAKEOVERS.inc()
            jlog.warning(
                "lease taken over",
                job_id=str(job.job_id),
                file=ctx.document.filename,
                from_worker=previous_worker or "unknown",
                lost_leases=job.lost_leases,
                worker=self.worker_id,
            )
        slog.info("job claimed", took_over=took_over, attempts=job.attempts, worker=self.worker_id)
        try:
            if took_over and job.lost_leases >= self.settings.max_lost_leases:
                raise WorkerLost(f"the job's lease expired {job.lost_leases} times (workers died or hung)")
            while True:
                started = time.monotonic()
                handlers = self.reembed_handlers if ctx.job.kind == "reembed" else self.handlers
                result = handlers[ctx.job.stage].run(ctx)
                ctx.check()
                updated, seconds = self._transition(ctx, result, started)
                if result.after_commit is not None:
                    self._after_commit(result.after_commit)
                metrics.stage_finished(
                    ctx.job.stage.value,
                    None if result.delay_seconds is not None else updated.stage.value,
                    seconds,
                    terminal="done" if updated.state is State.DONE else None,
                )
                slog.info(
                    "stage completed" if result.delay_seconds is None else "stage rescheduled",
                    to_stage=updated.stage.value,
                    state=updated.state.value,
                    seconds=round(seconds, 4),
                )
                ctx.job = updated
                held.job = updated
                logs.bind_job(updated)
                if updated.state is not State.WORKING:
                    self.jobs_finished += updated.state.terminal
                    if updated.state is State.DONE:
                        self._log_complete(ctx, updated, time.monotonic() - claimed_at)
                    return updated
        except LeaseLost as exc:
            metrics.LEASES_LOST.inc()
            log.warning("%s; writing nothing", exc)
            return None
        except WorkerStopping:
            with self.pool.connection() as conn:
                self.repo.release_job(conn, ctx.job)
            return None
        except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded
            return self._record_failure(ctx, classify(exc))

    @staticmethod
    def _log_complete(ctx: JobContext, job: Job, seconds: float) -> None:
        progress = job.progress
        total = (
            (job.finished_at - job.created_at).total_seconds() if job.finished_at and job.created_at else None
        )
        chunks = (
            progress.chunks_stored if "chunks_stored" in progress.model_fields_set else progress.chunks_total
        )
        jlog.info(
            "job complete",
            file=ctx.document.filename,
            job_id=str(job.job_id),
            pages=progress.pages_total,
            chunks=chunks,
            seconds=round(seconds, 3),
            total_seconds=None if total is None else round(total, 3),
        )

    def _transition(self, ctx: JobContext, result: StageResult, started: float) -> tuple[Job, float]:
        """Record a handler's result: its writes, the stage change and its events, fenced.

        Without writes (``result.persist`` None) this is one statement on an autocommit
        connection, one round trip (``Repository.complete_stage``: the attempt's fence, the
        transition and the events). With writes, they and that statement share one
        transaction that first locks the job and checks the attempt (``ctx.fenced``).
        Returns the updated job and the stage's seconds since ``started`` (monotonic), its
        writes included (a finalize's index inserts are part of the stage's time).

        Raises:
            LeaseLost: the attempt no longer holds the job; nothing was written.
        """
        job = ctx.job
        if result.delay_seconds is not None:
            stage, state, delay = job.stage, State.QUEUED, result.delay_seconds
        else:
            stage = result.next_stage or job.stage.next()
            state = State.DONE if stage is Stage.COMPLETE else State.WORKING
            delay = 0.0

        def step(seconds: float) -> dict[str, Any]:
            events = [(job.stage.value, type_, payload) for type_, payload in result.events]
            if result.delay_seconds is None:
                events.append(
                    (
                        stage.value,
                        "stage_completed",
                        {
                            "from": job.stage.value,
                            "seconds": round(seconds, 4),
                            "attempt_id": str(job.attempt_id),
                            "worker": self.worker_id,
                        },
                    )
                )
            return {
                "stage": stage.value,
                "state": state.value,
                "progress": result.progress,
                "control": result.control,
                "events": events,
                "delay_seconds": delay,
                "lease_seconds": self.settings.lease_seconds,
            }

        if result.persist is None:
            seconds = time.monotonic() - started
            with single_statements(self.pool) as conn:
                updated = self.repo.complete_stage(conn, job, **step(seconds))
        else:
            with ctx.fenced() as conn:
                result.persist(conn)
                seconds = time.monotonic() - started
                updated = self.repo.complete_stage(conn, job, **step(seconds))
                if updated is None:  # raised inside: the handler's writes roll back too
                    ctx.lost()
                    raise LeaseLost(f"job {job.job_id}: transition of attempt {job.attempt_id} fenced out")
        if updated is None:
            ctx.lost()
            raise LeaseLost(f"job {job.job_id}: transition of attempt {job.attempt_id} fenced out")
        return updated, seconds

    def _after_commit(self, hook: Persist) -> None:
        """Run a stage's ``after_commit`` on a pool connection; its failure is only logged (the
        transition is committed, and what the hook does is retried elsewhere)."""
        try:
            with self.pool.connection() as conn:
                hook(conn)
        except Exception:  # the job is done; what the hook does has a sweep
            log.exception("after-commit work failed")

    def _record_failure(self, ctx: JobContext, error: DocingestError) -> Job | None:
        job = ctx.job
        retry = error.retryable and job.retry_count < self.settings.max_retries
        try:
            with ctx.fenced() as conn:
                if retry:
                    delay = backoff_seconds(
                        job.retry_count,
                        base=self.settings.backoff_base_seconds,
                        cap=self.settings.backoff_max_seconds,
                        retry_after=error.retry_after,
                    )
                    updated = self.repo.retry_job_later(
                        conn,
                        job,
                        delay_seconds=delay,
                        error_code=error.error_code,
                        error_message=error.message,
                    )
                    payload = {
                        "error_code": error.error_code,
                        "message": error.message,
                        "retry_in_s": round(delay, 3),
                        "retry_count": job.retry_count + 1,
                    }
                else:
                    updated = self.repo.fail_job(
                        conn, job, error_code=error.error_code, error_message=error.message
                    )
                    payload = {
                        "error_code": error.error_code,
                        "message": error.message,
                        "retryable": error.retryable,
                    }
                self.repo.insert_event(
                    conn,
                    job_id=job.job_id,
                    document_id=job.document_id,
                    stage=job.stage.value,
                    type="retry_scheduled" if retry else "failed",
                    payload=payload,
                )
        except LeaseLost:
            log.warning("job %s: failure not recorded, lease lost", job.job_id)
            return None
        metrics.job_error(job.stage.value, error.error_code, retry=retry)
        if not retry:
            self.jobs_finished += 1
        if retry:
            jlog.info(
                "job retry scheduled",
                job_id=str(job.job_id),
                file=ctx.document.filename,
                error_code=error.error_code,
                error_message=error.message,
                attempt=job.retry_count + 1,
                max_retries=self.settings.max_retries,
                delay_seconds=round(delay, 3),
            )
        else:
            jlog.warning(
                "job failed",
                job_id=str(job.job_id),
                file=ctx.document.filename,
                error_code=error.error_code,
                error_message=error.message,
            )
        return updated

    # --- heartbeat and wake-up ---------------------------------------------------
    def _heartbeat_loop(self) -> None:
        while not self.stopping.wait(self.settings.heartbeat_seconds):
            self.heartbeat()

    def heartbeat(self) -> None:
        """Renew the leases of every held job; mark the ones no longer held as lost."""
        with self._held_lock:
            held = list(self._held.values())
        if not held:
            return
        try:
            with self.pool.connection() as conn:
                kept = self.repo.renew_leases(
                    conn,
                    [(h.job.job_id, h.job.attempt_id) for h in held],  # type: ignore[misc]
                    lease_seconds=self.settings.lease_seconds,
                )
        except psycopg.Error as exc:
            log.warning("heartbeat failed: %s", exc)
            return
        except Exception:
            log.exception("heartbeat failed")
            return
        for h in held:
            if h.job.job_id not in kept:
                h.lost.set()

    def _listen_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:  # type: ignore[arg-type]
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self.stopping.is_set():
                        # The timeout bounds how long stop() waits for this thread (a CLI
                        # command's exit), not how soon a notification is seen.
                        for _ in conn.notifies(timeout=LISTEN_POLL_SECONDS, stop_after=1):
                            self.wake.set()
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (%s); polling until it is back", exc)
                self.stopping.wait(2.0)
