"""The BaseWorker against a real PostgreSQL: claim, leases, fencing, retries, idempotency."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from docingest.domain import JobProgress, Stage, State
from docingest.errors import EmbeddingUnavailable, LeaseLost, PdfCorrupt
from docingest.runtime import Runtime
from docingest.stages.base import StageResult
from docingest.worker.loop import BaseWorker, JobContext, _Held
from tests.integration.helpers import register, rows, write_docs

pytestmark = pytest.mark.integration


def expire_leases(rt: Runtime) -> None:
    rows(
        rt,
        "UPDATE upload_pipeline.upload_jobs SET lease_expires_at = now() - interval '1 second'"
        " WHERE state = 'working' RETURNING job_id",
    )


def test_claim_sets_a_fresh_attempt_and_lease(runtime: Runtime, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 1))
    w = runtime.worker(concurrency=1)
    job, previous, *_ = w.claim()
    assert previous == "queued"
    assert job.state is State.WORKING and job.attempt_id and job.claimed_by == w.worker_id
    assert job.lease_expires_at is not None and job.attempts == 1
    assert w.claim() is None  # the only job is held


def test_concurrent_claims_never_share_a_job(runtime: Runtime, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 40))
    w = runtime.worker(concurrency=1)
    got: list[uuid.UUID] = []
    lock = threading.Lock()

    def claimer() -> None:
        while (c := w.claim()) is not None:
            with lock:
                got.append(c[0].job_id)

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 40 == len(set(got))


def test_expired_lease_is_taken_over_and_the_old_attempt_is_fenced_out(
    runtime: Runtime, tmp_path: Path
) -> None:
    register(runtime, write_docs(tmp_path / "in", 1))
    w = runtime.worker(concurrency=1)
    old, *_ = w.claim()
    expire_leases(runtime)
    new, previous, *_ = w.claim()
    assert previous == "working" and new.job_id == old.job_id
    assert new.attempt_id != old.attempt_id and new.lost_leases == 1
    # The killed attempt, were it to resume, writes nothing: neither its handler's writes nor
    # its transition.
    with runtime.pool().connection() as conn:
        doc = runtime.repo.get_document(conn, old.document_id)
    ctx = JobContext(w, old, doc, _Held(old, threading.Event()))
    with pytest.raises(LeaseLost), ctx.fenced() as conn:
        conn.execute("UPDATE upload_pipeline.documents SET filename = 'hijacked'")
    result = StageResult(
        progress=JobProgress.model_validate({"x": 1}),
        persist=lambda conn: conn.execute("UPDATE upload_pipeline.documents SET filename = 'hijacked'"),
    )
    with pytest.raises(LeaseLost):
        w._transition(ctx, result, 0.0)
    job = rows(runtime, "SELECT * FROM upload_pipeline.upload_jobs")[0]
    assert job["attempt_id"] == new.attempt_id and job["stage"] == "uploaded"
    assert "x" not in job["progress"]
    assert rows(runtime, "SELECT filename FROM upload_pipeline.documents")[0]["filename"] != "hijacked"


def test_after_n_lost_leases_the_job_fails_worker_lost(runtime: Runtime, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 1))
    w = runtime.worker(concurrency=1)
    w.claim()
    for _ in range(runtime.settings.max_lost_leases):
        expire_leases(runtime)
        job, previous, *_ = w.claim()
    assert previous == "working" and job.lost_leases == runtime.settings.max_lost_leases
    final = w.process(job, took_over=True)
    assert final.state is State.FAILED and final.error_code == "worker_lost"
    events = [r["type"] for r in rows(runtime, "SELECT type FROM upload_pipeline.events ORDER BY event_id")]
    assert events == ["job_created", "lease_taken_over", "failed"]


def test_worker_runs_a_document_through_every_stage(runtime: Runtime, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 1, words=600))
    w = runtime.worker(concurrency=1)
    assert w.run_once()
    job = rows(runtime, "SELECT * FROM upload_pipeline.upload_jobs")[0]
    assert (job["stage"], job["state"]) == ("complete", "done")
    transitions = rows(
        runtime, "SELECT stage FROM upload_pipeline.events WHERE type = 'stage_completed' ORDER BY event_id"
    )
    assert [r["stage"] for r in transitions] == [s.value for s in Stage][1:]
    counts = rows(
        runtime,
        "SELECT (SELECT count(*) FROM upload_pipeline.document_chunks) c, "
        "(SELECT count(*) FROM upload_pipeline.document_chunk_buffer) b, "
        "(SELECT count(*) FROM upload_pipeline.document_vector_buffer) v",
    )[0]
    assert counts["c"] == job["progress"]["chunks_total"] > 1 and counts["b"] == counts["v"] == 0


class Failing:
    """A handler that raises ``error`` the first ``times`` runs, then succeeds."""

    def __init__(self, stage: Stage, error: Exception, times: int = 10**6) -> None:
        self.stage, self.error, self.times, self.calls = stage, error, times, 0

    def run(self, ctx: Any) -> StageResult:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return StageResult()


def _worker_with(runtime: Runtime, handler: Failing) -> BaseWorker:
    handlers = runtime.handlers()
    handlers[handler.stage] = handler
    return BaseWorker(runtime.settings, runtime.pool(), handlers, concurrency=1)


def test_permanent_errors_fail_at_once_without_retry(runtime: Runtime, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 1))
    handler = Failing(Stage.PARSE_QUEUED, PdfCorrupt("truncated xref"))
    w = _worker_with(runtime, handler)
    final = w.process(w.claim()[0])
    assert final.state is State.FAILED and final.error_code == "pdf_corrupt"
    assert final.stage is Stage.PARSE_QUEUED and final.retry_count == 0 and handler.calls == 1
    assert w.claim() is None


def test_transient_errors_retry_with_backoff_then_fail_with_the_last_cause(
    runtime: Runtime, tmp_path: Path
) -> None:
    register(runtime, write_docs(tmp_path / "in", 1))
    handler = Failing(Stage.EMBEDDING_IN_PROGRESS, EmbeddingUnavailable("503 from provider"))
    w = _worker_with(runtime, handler)
    job = w.process(w.claim()[0])
    assert job.state is State.RETRYABLE and job.retry_count == 1
    assert job.next_attempt_at >= job.updated_at and job.attempt_id is None
    first = rows(runtime, "SELECT payload FROM upload_pipeline.events WHERE type = 'retry_scheduled'")
    assert 0 <= first[0]["payload"]["retry_in_s"] <= runtime.settings.backoff_max_seconds
    for _ in range(runtime.settings.max_retries + 2):
        rows(
            runtime,
            "UPDATE upload_pipeline.upload_jobs SET next_attempt_at = now() "
            "WHERE state = 'retryable' RETURNING job_id",
        )
        claimed = w.claim()
        if claimed is None:
            break
        job = w.process(claimed[0])
    assert job.state is State.FAILED and job.error_code == "embedding_unavailable"
    assert job.error_message == "503 from provider"
    assert handler.calls == runtime.settings.max_retries + 1
    retries = rows(runtime, "SELECT payload FROM upload_pipeline.events WHERE type = 'retry_scheduled'")
    assert len(retries) == runtime.settings.max_retries


def test_transient_error_then_success_completes(runtime: Runtime, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 1))
    handler = Failing(Stage.CHUNKING, EmbeddingUnavailable("blip"), times=1)
    handler.run = _delegate(handler, runtime.handlers()[Stage.CHUNKING])  # type: ignore[method-assign]
    w = _worker_with(runtime, handler)
    job = w.process(w.claim()[0])
    assert job.state is State.RETRYABLE
    rows(runtime, "UPDATE upload_pipeline.upload_jobs SET next_attempt_at = now() RETURNING job_id")
    job = w.process(w.claim()[0])
    assert job.state is State.DONE and job.retry_count == 0


def _delegate(failing: Failing, real: Any) -> Any:
    def run(ctx: Any) -> StageResult:
        failing.calls += 1
        if failing.calls <= failing.times:
            raise failing.error
        return real.run(ctx)

    return run


def test_stopping_releases_the_held_job(runtime: Runtime, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 1))
    w = runtime.worker(concurrency=1)
    w.stopping.set()
    assert w.process(w.claim()[0]) is None
    job = rows(runtime, "SELECT * FROM upload_pipeline.upload_jobs")[0]
    assert job["state"] == "queued" and job["attempt_id"] is None


def _worker_holding_two_jobs(
    runtime: Runtime, tmp_path: Path
) -> tuple[BaseWorker, tuple[Any, _Held], tuple[Any, _Held]]:
    """A one-slot worker that has claimed two jobs and tracks both as held (what its heartbeat renews)."""
    register(runtime, write_docs(tmp_path / "in", 2))
    w = runtime.worker(concurrency=1)
    a, *_ = w.claim()
    b, *_ = w.claim()
    held_a, held_b = _Held(a, threading.Event()), _Held(b, threading.Event())
    w._held = {a.job_id: held_a, b.job_id: held_b}
    return w, (a, held_a), (b, held_b)


def _lease_expires_at(runtime: Runtime, job_id: Any) -> Any:
    return rows(
        runtime, "SELECT lease_expires_at FROM upload_pipeline.upload_jobs WHERE job_id = %s", (job_id,)
    )[0]["lease_expires_at"]


def test_heartbeat_renews_held_leases_and_flags_lost_ones(runtime: Runtime, tmp_path: Path) -> None:
    w, (a, held_a), (b, held_b) = _worker_holding_two_jobs(runtime, tmp_path)
    rows(
        runtime,
        "UPDATE upload_pipeline.upload_jobs SET attempt_id = gen_random_uuid() "
        "WHERE job_id = %s RETURNING job_id",
        (b.job_id,),
    )
    before = _lease_expires_at(runtime, a.job_id)
    w.heartbeat()
    after = _lease_expires_at(runtime, a.job_id)
    assert after > before
    assert not held_a.lost.is_set() and held_b.lost.is_set()


def test_heartbeat_never_waits_for_a_job_row_locked_by_a_long_transaction(
    runtime: Runtime, tmp_path: Path
) -> None:
    """A long fenced transaction (a big finalize) holds job A's row: the heartbeat still renews
    job B at once, and counts A as held (it was waiting here, and every lease expired)."""
    w, (a, held_a), (b, held_b) = _worker_holding_two_jobs(runtime, tmp_path)
    before = _lease_expires_at(runtime, b.job_id)
    with runtime.pool().connection() as locker, locker.transaction():
        locker.execute(
            "SELECT job_id FROM upload_pipeline.upload_jobs WHERE job_id = %s FOR UPDATE", (a.job_id,)
        )
        beat = threading.Thread(target=w.heartbeat)
        beat.start()
        beat.join(10)
        assert not beat.is_alive(), "the heartbeat waited for the locked row"
    after = _lease_expires_at(runtime, b.job_id)
    assert after > before
    assert not held_a.lost.is_set() and not held_b.lost.is_set()


def test_listen_notify_wakes_an_idle_worker_long_before_the_poll(db_url: str, tmp_path: Path) -> None:
    from tests.conftest import make_settings
    from tests.e2e.workers import wait_for

    rt = Runtime(make_settings(db_url, tmp_path / "data", poll_interval_seconds=60.0), migrate=False)
    w = rt.worker(concurrency=2)
    w.start()
    try:
        import time as _time

        _time.sleep(1.0)  # slots are now idle, waiting up to 60 s for a poll
        register(rt, write_docs(tmp_path / "in", 3))
        wait_for(
            lambda: (
                rows(rt, "SELECT count(*) n FROM upload_pipeline.upload_jobs WHERE state = 'done'")[0]["n"]
                == 3
            ),
            timeout=20,
        )
    finally:
        w.stop()
        rt.close()
    assert all(not t.is_alive() for t in w._threads)
    assert w.jobs_finished == 3


def test_stop_while_working_releases_the_job_for_another_worker(db_url: str, tmp_path: Path) -> None:
    from tests.conftest import make_settings
    from tests.e2e.workers import wait_for

    settings = make_settings(
        db_url, tmp_path / "data", fault_embedding_delay_seconds=0.5, embedding_batch_size=4
    )
    rt = Runtime(settings, migrate=False)
    try:
        register(rt, write_docs(tmp_path / "in", 1, words=3000))
        w = rt.worker(concurrency=1)
        w.handlers[Stage.EMBEDDING_IN_PROGRESS].batch_chunks = 2  # type: ignore[attr-defined]
        w.start()
        wait_for(
            lambda: rows(
                rt, "SELECT 1 FROM upload_pipeline.upload_jobs WHERE stage = 'embedding_in_progress'"
            ),
            timeout=30,
        )
        w.stop()
        job = rows(rt, "SELECT * FROM upload_pipeline.upload_jobs")[0]
        assert job["state"] == "queued" and job["stage"] == "embedding_in_progress"
        assert 0 < job["progress"]["chunks_embedded"] < job["progress"]["chunks_total"]
        w2 = Runtime(make_settings(db_url, tmp_path / "data"), migrate=False)
        try:
            assert w2.worker(concurrency=1).run_once()
        finally:
            w2.close()
        job = rows(rt, "SELECT * FROM upload_pipeline.upload_jobs")[0]
        assert job["state"] == "done" and job["retry_count"] == 0
    finally:
        rt.close()


def test_slot_loop_survives_database_errors(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    w = runtime.worker(concurrency=1)
    calls = {"n": 0}

    def flaky_run_once() -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        w.stopping.set()
        return False

    monkeypatch.setattr(w, "run_once", flaky_run_once)
    w._slot_loop()
    assert calls["n"] == 2


def test_a_started_worker_sets_its_gil_switch_interval_and_stop_restores_it(
    db_url: str, tmp_path: Path
) -> None:
    import sys

    from tests.conftest import make_settings

    before = sys.getswitchinterval()
    rt = Runtime(make_settings(db_url, tmp_path / "data", worker_switch_interval_ms=0.7), migrate=False)
    w = rt.worker(concurrency=1)
    try:
        w.start()
        assert sys.getswitchinterval() == pytest.approx(0.0007)
    finally:
        w.stop()
        rt.close()
    assert sys.getswitchinterval() == before
