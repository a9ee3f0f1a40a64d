"""A stage transition as one fenced statement, the claim, and the round trips they cost.

``Repository.complete_stage`` moves a job and writes its events in one statement,
only while the attempt holds the job at the stage it completes; a no-op stage
costs the worker one round trip, and a job's claim (which brings its document)
one more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from docingest.db.pool import check_connection, single_statements
from docingest.domain import Job, JobProgress, Stage
from docingest.errors import LeaseLost
from docingest.runtime import Runtime
from docingest.stages.base import StageResult
from docingest.stages.passthrough import Passthrough
from docingest.worker.loop import BaseWorker, JobContext, _Held
from tests.integration.helpers import register, rows, write_docs

pytestmark = pytest.mark.integration


def _claim(rt: Runtime, worker: str = "w1") -> Any:
    with single_statements(rt.pool()) as conn:
        return rt.repo.claim_job(conn, worker_id=worker, lease_seconds=30.0)


def _complete(rt: Runtime, job: Job, **overrides: Any) -> Job | None:
    step: dict[str, Any] = {
        "stage": job.stage.next().value,
        "state": "working",
        "progress": JobProgress.model_validate({"n": 1}),
        "events": [(job.stage.next().value, "stage_completed", {"from": job.stage.value})],
        "lease_seconds": 30.0,
    }
    step.update(overrides)
    with single_statements(rt.pool()) as conn:
        return rt.repo.complete_stage(conn, job, **step)


def _events(rt: Runtime) -> list[dict[str, Any]]:
    """The events after the registration's own ``job_created`` (checked to come first)."""
    events = rows(rt, "SELECT stage, type, payload FROM upload_pipeline.events ORDER BY event_id")
    assert events[0]["type"] == "job_created", events
    return events[1:]


def _job(rt: Runtime) -> dict[str, Any]:
    return rows(rt, "SELECT * FROM upload_pipeline.upload_jobs")[0]


def test_claim_brings_the_jobs_document(runtime: Runtime, tmp_path: Path) -> None:
    [reg] = register(runtime, write_docs(tmp_path / "in", 1))
    claim = _claim(runtime)
    assert claim.previous_state == "queued" and claim.job.job_id == reg.job.job_id
    with runtime.pool().connection() as conn:
        assert claim.document == runtime.repo.get_document(conn, reg.document.document_id)


def test_claim_takes_an_expired_lease_before_a_due_job(runtime: Runtime, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 2))
    first = _claim(runtime)
    rows(
        runtime,
        "UPDATE upload_pipeline.upload_jobs SET lease_expires_at = now() - interval '1 s'"
        " WHERE job_id = %s RETURNING job_id",
        (first.job.job_id,),
    )
    again = _claim(runtime, "w2")
    assert again.job.job_id == first.job.job_id and again.previous_state == "working"
    assert again.job.lost_leases == 1 and again.job.attempt_id != first.job.attempt_id
    other = _claim(runtime, "w2")
    assert other.previous_state == "queued" and other.job.job_id != first.job.job_id
    assert _claim(runtime, "w3") is None  # both held under live leases


def test_complete_stage_writes_the_transition_and_its_events_together(
    runtime: Runtime, tmp_path: Path
) -> None:
    register(runtime, write_docs(tmp_path / "in", 1))
    job = _claim(runtime).job
    updated = _complete(
        runtime,
        job,
        events=[
            ("uploaded", "cleaned", {"nul": 2}),
            ("parse_queued", "stage_completed", {"from": "uploaded"}),
        ],
    )
    assert updated is not None and updated.stage is Stage.PARSE_QUEUED
    assert updated.attempt_id == job.attempt_id and updated.progress.as_dict() == {"n": 1}
    assert _events(runtime) == [
        {"stage": "uploaded", "type": "cleaned", "payload": {"nul": 2}},
        {"stage": "parse_queued", "type": "stage_completed", "payload": {"from": "uploaded"}},
    ]
    # An event that cannot be written (type is NOT NULL) takes the transition down with it.
    with pytest.raises(psycopg.errors.NotNullViolation):
        _complete(runtime, updated, events=[("parsed", None, {})])
    row = _job(runtime)
    assert row["stage"] == "parse_queued" and len(_events(runtime)) == 2


def test_a_stale_attempt_cannot_complete_a_stage(runtime: Runtime, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 1))
    old = _claim(runtime).job
    rows(
        runtime,
        "UPDATE upload_pipeline.upload_jobs SET lease_expires_at = now() - interval '1 s' RETURNING job_id",
    )
    new = _claim(runtime, "w2").job
    assert _complete(runtime, old) is None
    row = _job(runtime)
    assert row["attempt_id"] == new.attempt_id and row["stage"] == "uploaded"
    assert row["progress"] == {} and _events(runtime) == []


def test_a_transition_is_applied_once(runtime: Runtime, tmp_path: Path) -> None:
    """Replayed (e.g. resent after a lost reply), the same transition finds the job moved on."""
    register(runtime, write_docs(tmp_path / "in", 1))
    job = _claim(runtime).job
    assert _complete(runtime, job) is not None
    assert _complete(runtime, job) is None
    assert _job(runtime)["stage"] == "parse_queued" and len(_events(runtime)) == 1


def test_a_transition_renews_the_lease_only_when_half_of_it_is_gone(runtime: Runtime, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 1))
    job = _claim(runtime).job
    kept = _complete(runtime, job)  # 30 s lease just taken: kept as it is (a HOT update)
    assert kept is not None and kept.lease_expires_at == job.lease_expires_at
    rows(
        runtime,
        "UPDATE upload_pipeline.upload_jobs SET lease_expires_at = now() + interval '10 s' RETURNING job_id",
    )
    renewed = _complete(runtime, kept)
    lease_left = rows(
        runtime, "SELECT extract(epoch FROM lease_expires_at - now()) AS s FROM upload_pipeline.upload_jobs"
    )[0]["s"]
    assert renewed is not None and 25 < lease_left <= 30


def test_the_last_transition_ends_the_lease(runtime: Runtime, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 1))
    job = _claim(runtime).job
    rows(runtime, "UPDATE upload_pipeline.upload_jobs SET stage = 'embeddings_stored' RETURNING job_id")
    job = replace(job, stage=Stage.EMBEDDINGS_STORED)
    done = _complete(runtime, job, stage="complete", state="done")
    assert done is not None and done.state.value == "done" and done.finished_at is not None
    assert done.attempt_id is None and done.lease_expires_at is None and done.claimed_by is None


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    """``(trace file, configure)``: a pool ``configure`` that traces each connection's messages."""
    path = tmp_path / "libpq.trace"
    files: list[Any] = []

    def configure(conn: psycopg.Connection[Any]) -> None:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        conn.commit()
        f = path.open("a")
        files.append(f)
        conn.pgconn.trace(f.fileno())
        conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)

    yield path, configure
    for f in files:
        f.close()


def _round_trips(path: Path) -> int:
    """Requests the client ended (``Sync``, or a simple ``Query``): one per round trip outside
    pipeline mode. The client's lines are written as it sends them; the server's may lag."""
    return sum(
        line.startswith("F\t") and line.split("\t")[2].strip() in ("Sync", "Query")
        for line in path.read_text().splitlines()
    )


def test_a_no_op_stage_costs_one_round_trip(
    runtime: Runtime, tmp_path: Path, traced: tuple[Path, Any]
) -> None:
    path, configure = traced
    register(runtime, write_docs(tmp_path / "in", 3))
    pool = ConnectionPool(
        runtime.url,
        min_size=1,
        max_size=1,
        kwargs={"row_factory": dict_row},
        configure=configure,
        check=check_connection,
        open=True,
    )
    try:
        handlers = {s: Passthrough(s) for s in Stage if s is not Stage.COMPLETE}
        worker = BaseWorker(runtime.settings, pool, handlers, concurrency=1)  # type: ignore[arg-type]
        assert worker.run_once()  # first job: psycopg prepares its statements along the way
        before = _round_trips(path)
        assert worker.run_once()
        assert _round_trips(path) - before == 1 + 9  # the claim, then one per transition
    finally:
        pool.close()
    assert [r["state"] for r in rows(runtime, "SELECT state FROM upload_pipeline.upload_jobs")].count(
        "done"
    ) == 2


def test_checkout_pings_only_a_connection_that_looks_broken(
    runtime: Runtime, traced: tuple[Path, Any]
) -> None:
    path, configure = traced
    conn = psycopg.connect(runtime.url, autocommit=True)
    try:
        configure(conn)
        before = _round_trips(path)
        check_connection(conn)  # idle and healthy: nothing to read, no round trip
        assert _round_trips(path) == before
        with psycopg.connect(runtime.url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            for _ in range(50):  # the backend's farewell reaches the socket within moments
                check_connection(conn)
                time.sleep(0.05)
    finally:
        conn.close()


def test_the_pool_replaces_a_connection_whose_backend_was_terminated(runtime: Runtime) -> None:
    pool = runtime.pool()
    with pool.connection() as conn:
        pid = conn.info.backend_pid
    with psycopg.connect(runtime.url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    time.sleep(0.2)
    with pool.connection() as conn:
        assert conn.execute("SELECT 1 AS one").fetchone()["one"] == 1
        assert conn.info.backend_pid != pid


def test_single_statements_commit_each_statement_and_return_the_connection_as_it_was(
    runtime: Runtime,
) -> None:
    pool = runtime.pool()
    with single_statements(pool) as conn:
        conn.execute("CREATE TABLE public.t_single (x int)")
        conn.execute("INSERT INTO public.t_single VALUES (1)")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with psycopg.connect(runtime.url) as other:  # committed: visible elsewhere at once
            assert other.execute("SELECT count(*) FROM public.t_single").fetchone() == (1,)
    with pool.connection() as conn:
        assert not conn.autocommit


def test_a_fenced_out_no_op_transition_raises_lease_lost_and_stops_the_handler(
    runtime: Runtime, tmp_path: Path
) -> None:
    register(runtime, write_docs(tmp_path / "in", 1))
    w = runtime.worker(concurrency=1)
    old = _claim(runtime)
    rows(
        runtime, "UPDATE upload_pipeline.upload_jobs SET attempt_id = gen_random_uuid() RETURNING job_id"
    )  # another attempt holds the job now
    held = _Held(old.job, threading.Event())
    ctx = JobContext(w, old.job, old.document, held)
    with pytest.raises(LeaseLost):
        w._transition(
            ctx, StageResult(progress=JobProgress.model_validate({"x": 1}), events=[("note", {})]), 0.0
        )
    assert held.lost.is_set()
    assert _job(runtime)["stage"] == "uploaded" and _events(runtime) == []


def test_a_stages_recorded_seconds_include_its_writes(runtime: Runtime, tmp_path: Path) -> None:
    """``stage_completed.seconds`` counts the handler's writes (e.g. a finalize's index inserts),
    not only the handler's run."""
    register(runtime, write_docs(tmp_path / "in", 1))
    w = runtime.worker(concurrency=1)
    claimed = _claim(runtime)
    ctx = JobContext(w, claimed.job, claimed.document, _Held(claimed.job, threading.Event()))
    result = StageResult(progress=JobProgress(), persist=lambda conn: conn.execute("SELECT pg_sleep(0.3)"))
    updated, seconds = w._transition(ctx, result, time.monotonic())
    assert updated.stage is claimed.job.stage.next() and seconds >= 0.3
    [event] = [e for e in _events(runtime) if e["type"] == "stage_completed"]
    assert event["payload"]["seconds"] >= 0.3
