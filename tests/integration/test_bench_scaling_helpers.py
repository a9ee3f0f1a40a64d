"""The scaling benchmarks' database helpers (bench/common.py, bench/queue.py) on a real PostgreSQL:
the bulk registration makes documents a worker ingests, the queue check finds a stage done
twice or never, and jobs queued not due wait for their release, which wakes the workers once.
"""

from __future__ import annotations

import psycopg
from bench.backlog import check_jobs, queue_times, table_sizes
from bench.common import copy_jobs, register_notes, release_queued

from docingest.runtime import Runtime


def _drain(rt: Runtime) -> None:
    worker = rt.worker(concurrency=1)
    while worker.run_once():
        pass


def test_bulk_registered_notes_are_ingested_each_stage_once(runtime: Runtime) -> None:
    register_notes(runtime, 3, batch=2)
    _drain(runtime)
    with runtime.pool().connection() as conn:
        checks = check_jobs(conn, 3)
        times = queue_times(conn)
        sizes = {name: (size, live) for name, size, live in table_sizes(conn)}
    assert checks["jobs"] == checks["done"] == checks["claims"] == 3
    assert checks["stage_events"] == 3 * 9
    assert checks["stage_pairs_not_once"] == 0
    assert checks["failed"] == checks["takeovers"] == checks["retries"] == checks["chunks_duplicated"] == 0
    assert checks["chunks"] >= 3
    assert 0 <= times["claim_p50"] <= times["claim_p99"] <= times["total_p99"]
    assert sizes["document_chunks"][0] > 0 and sizes["document_chunks"][1] == checks["chunks"]


def test_the_queue_check_counts_a_stage_completed_twice_and_one_never_completed(runtime: Runtime) -> None:
    register_notes(runtime, 2)
    _drain(runtime)
    with runtime.pool().connection() as conn:
        twice, never = conn.execute(
            "SELECT event_id FROM upload_pipeline.events WHERE type = 'stage_completed'"
            " AND payload->>'from' = 'parsed' ORDER BY event_id"
        ).fetchall()
        conn.execute(
            "INSERT INTO upload_pipeline.events (job_id, document_id, stage, type, payload)"
            " SELECT job_id, document_id, stage, type, payload FROM upload_pipeline.events WHERE event_id = %s",
            (twice["event_id"],),
        )
        conn.execute("DELETE FROM upload_pipeline.events WHERE event_id = %s", (never["event_id"],))
        checks = check_jobs(conn, 2)
    assert checks["stage_pairs_not_once"] == 2
    assert checks["stage_events"] == 2 * 9


def test_jobs_queued_not_due_wait_for_their_release_which_sends_one_notification(runtime: Runtime) -> None:
    with runtime.pool().connection() as conn:
        copy_jobs(conn, 4, due=False)
        conn.commit()
        worker = runtime.worker(concurrency=1)
        assert worker.claim() is None
        with psycopg.connect(runtime.url, autocommit=True) as listener:
            listener.execute("LISTEN upload_pipeline_jobs")
            assert release_queued(conn) == 4
            conn.commit()
            notes = list(listener.notifies(timeout=1.0))
        assert [n.payload for n in notes] == ["bench"]
        claimed = worker.claim()
    assert claimed is not None and claimed.previous_state == "queued"
