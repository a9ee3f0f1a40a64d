"""Several worker processes on one database: every job once, no duplicates, crash recovery."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from docingest.runtime import Runtime
from docingest.settings import Settings
from tests.conftest import make_settings
from tests.e2e.workers import start_worker, stop_all, wait_for
from tests.integration.helpers import register, rows, write_docs

pytestmark = pytest.mark.e2e


def test_300_documents_4_worker_processes(runtime: Runtime, settings: Settings, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 300, words=300))
    procs = [start_worker(settings, tmp_path / "logs", f"w{i}") for i in range(4)]
    try:
        wait_for(
            lambda: (
                rows(runtime, "SELECT count(*) n FROM upload_pipeline.upload_jobs WHERE state = 'done'")[0][
                    "n"
                ]
                == 300
            ),
            timeout=300,
        )
    finally:
        stop_all(procs)
    assert all(p.returncode == 0 for p in procs), "a worker did not exit cleanly on SIGTERM"
    dup = rows(
        runtime,
        "SELECT document_id, ordinal, count(*) FROM upload_pipeline.document_chunks "
        "GROUP BY 1, 2 HAVING count(*) > 1",
    )
    assert dup == []
    per_job = rows(
        runtime,
        "SELECT job_id, stage, count(*) n FROM upload_pipeline.events "
        "WHERE type = 'stage_completed' GROUP BY 1, 2",
    )
    assert len(per_job) == 300 * 9 and all(r["n"] == 1 for r in per_job)
    workers = rows(
        runtime,
        "SELECT count(DISTINCT payload->>'worker') n FROM upload_pipeline.events "
        "WHERE type = 'stage_completed'",
    )[0]["n"]
    assert workers >= 2, "the work was not shared between processes"
    empty = rows(runtime, "SELECT count(*) n FROM upload_pipeline.document_chunk_buffer")[0]["n"]
    assert empty == 0


def test_sigkill_mid_stage_then_another_worker_finishes(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        db_url, tmp_path / "data", lease_seconds=3.0, heartbeat_seconds=0.5, embedding_batch_size=8
    )
    rt = Runtime(settings, migrate=False)
    try:
        register(rt, write_docs(tmp_path / "in", 1, words=4000))
        # A slow embedder (2 s per call) keeps the job inside embedding_in_progress.
        victim = start_worker(
            settings,
            tmp_path / "logs",
            "victim",
            concurrency=1,
            UPLOAD_PIPELINE_FAULT_EMBEDDING_DELAY_SECONDS="2",
        )
        wait_for(
            lambda: rows(
                rt,
                "SELECT 1 FROM upload_pipeline.upload_jobs WHERE "
                "stage = 'embedding_in_progress' AND state = 'working'",
            ),
            60,
        )
        killed_attempt = rows(rt, "SELECT attempt_id FROM upload_pipeline.upload_jobs")[0]["attempt_id"]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        time.sleep(0.5)
        job = rows(rt, "SELECT * FROM upload_pipeline.upload_jobs")[0]
        assert job["state"] == "working" and job["attempt_id"] == killed_attempt  # stuck until expiry
        rescuer = start_worker(settings, tmp_path / "logs", "rescuer", concurrency=1)
        try:
            wait_for(lambda: rows(rt, "SELECT 1 FROM upload_pipeline.upload_jobs WHERE state = 'done'"), 120)
        finally:
            stop_all([rescuer])
        job = rows(rt, "SELECT * FROM upload_pipeline.upload_jobs")[0]
        assert job["lost_leases"] == 1 and job["attempts"] == 2
        takeovers = rows(rt, "SELECT payload FROM upload_pipeline.events WHERE type = 'lease_taken_over'")
        assert len(takeovers) == 1
        n_chunks = rows(rt, "SELECT count(*) n FROM upload_pipeline.document_chunks")[0]["n"]
        assert n_chunks == job["progress"]["chunks_total"] > 10
    finally:
        rt.close()
