"""Database faults under running ``docingest worker`` processes.

A dedicated PostgreSQL (pgserver) serves this test alone. While jobs are in
flight (a slow embedder keeps them there), the test first terminates every
backend of the database (dropped connections), then stops the server with
``pg_ctl stop -m immediate`` for longer than a lease and starts it again. The
worker process must survive both; its pool reconnects; the claims it held are
not lost: each ends ``done``, continued by its attempt or retaken by a claim
once its lease expired; nothing is left ``working`` or in the buffers. One of the
two workers is frozen (SIGSTOP) through the outage, so its claims must be retaken
by the other after their leases expire; woken up, it is fenced out and goes on. A worker
still starting when the connections are dropped (it records its embedding generation first)
retries on a new connection rather than dying (tests/integration/test_generation_retry.py).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from docingest.db import embedded
from docingest.db.migrate import apply_migrations
from docingest.runtime import Runtime
from tests.conftest import make_settings, settings_env
from tests.fixtures import pipeline
from tests.fixtures.good_docs import generate_good

pytestmark = pytest.mark.e2e
T = TypeVar("T")
DOCUMENTS = 24
LEASE_SECONDS = 4.0
OUTAGE_SECONDS = LEASE_SECONDS + 2.0


def _retrying(fn: Callable[[], T], timeout: float = 60.0) -> T:
    """``fn()``, retried while the database is unreachable."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _pg_ctl(server: Any, *args: str) -> None:
    import pgserver

    pgserver.pg_ctl(list(args), pgdata=server.pgdata, user=server.system_user, timeout=60)


def _working(rt: Runtime) -> list[dict[str, Any]]:
    with rt.pool().connection() as conn:
        return conn.execute(  # type: ignore[no-any-return]
            "SELECT job_id, attempt_id, claimed_by FROM upload_pipeline.upload_jobs WHERE state = 'working'"
        ).fetchall()


def _stage_events(rt: Runtime) -> int:
    with rt.pool().connection() as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM upload_pipeline.events WHERE type = 'stage_completed'"
        ).fetchone()
    return int(row["n"])


def _wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def own_server() -> Iterator[tuple[str, Any]]:
    """A PostgreSQL for this test alone: ``(url, pgserver handle)``; stopped and removed after.

    Its data directory is outside pytest's tmp root, which pytest keeps at mode 0700
    (the server runs as another user and must reach it; see tests/conftest.py).
    """
    root = Path(tempfile.mkdtemp(prefix="docingest-dbrestart-"))
    url = embedded.embedded_database_url(root)
    pgdata = (root / "pg").resolve()
    server = embedded._servers[pgdata]
    try:
        yield url, server
    finally:
        try:
            _pg_ctl(server, "-w", "stop", "-m", "fast")
        except subprocess.CalledProcessError:
            pass
        server.cleanup()  # type: ignore[attr-defined]
        embedded._servers.pop(pgdata, None)
        shutil.rmtree(root, ignore_errors=True)


def _claims(rt: Runtime, pid: int | None = None) -> list[dict[str, Any]]:
    """Working jobs ``job_id, attempt_id, claimed_by`` (of worker process ``pid`` if given)."""
    return [r for r in _working(rt) if pid is None or f":{pid}:" in (r["claimed_by"] or "")]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_workers_survive_dropped_connections_and_a_database_restart(
    own_server: tuple[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, server = own_server
    with psycopg.connect(url) as conn:
        apply_migrations(conn, embedding_dimensions=384)
        conn.commit()
    settings = make_settings(url, tmp_path / "data", lease_seconds=LEASE_SECONDS, heartbeat_seconds=1.0)
    slow = make_settings(
        url,
        tmp_path / "data",
        lease_seconds=LEASE_SECONDS,
        heartbeat_seconds=1.0,
        fault_embedding_delay_seconds=1.0,
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "docingest.cli.main", "worker", "-c", "2", "-v"],
            env=settings_env(slow),
            stdout=(tmp_path / f"worker-{n}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for n in ("a", "b")
    ]
    a, b = workers
    rt = Runtime(settings, migrate=False)
    try:
        files = generate_good(tmp_path / "in", DOCUMENTS, seed=11)
        ids = [rt.documents.register_file(p, user_id="u").document.document_id for p in files]

        # 1. dropped connections: every backend of the database but ours is terminated
        _wait_for(lambda: bool(_working(rt)), 30, "a claimed job")
        with psycopg.connect(url, autocommit=True) as conn:
            dropped = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert dropped and dropped[0] >= 1
        progress = _retrying(lambda: _stage_events(rt))
        _wait_for(
            lambda: _retrying(lambda: _stage_events(rt)) >= progress + 3,
            60,
            "the workers to make progress after their connections were dropped",
        )

        # 2. restart, down for longer than a lease, with claims in flight. Worker A is
        #    frozen through it (SIGSTOP): its claims can only be retaken once their leases
        #    expire; worker B lives through the restart and must retake them.
        _wait_for(lambda: bool(_retrying(lambda: _claims(rt, a.pid))), 30, "a claim of worker A")
        a.send_signal(signal.SIGSTOP)
        held_by_a = _retrying(lambda: _claims(rt, a.pid))
        in_flight = _retrying(lambda: _claims(rt))
        _pg_ctl(server, "-w", "stop", "-m", "immediate")
        time.sleep(OUTAGE_SECONDS)
        assert b.poll() is None, "worker B died while the database was down"
        _pg_ctl(server, "-w", "restart")
        a_ids = {r["job_id"] for r in held_by_a}
        _wait_for(
            lambda: a_ids.isdisjoint(r["job_id"] for r in _retrying(lambda: _claims(rt, a.pid))),
            60,
            "worker A's claims to be retaken",
        )
        a.send_signal(signal.SIGCONT)  # A wakes up fenced out of what it held, and goes on

        jobs = _retrying(lambda: pipeline.wait_terminal(rt, ids, timeout=120), timeout=150)
        assert a.poll() is None and b.poll() is None, "a worker died"
        assert all(j["state"] == "done" for j in jobs.values()), [
            (j["filename"], j["error_code"], j["error_message"])
            for j in jobs.values()
            if j["state"] != "done"
        ]
        for doc_id, job in jobs.items():
            assert len(pipeline.chunks(rt, doc_id)) == job["progress"]["chunks_total"] > 0
        assert pipeline.buffer_rows(rt) == 0
        by_job = {j["job_id"]: j for j in jobs.values()}
        assert all(by_job[r["job_id"]]["lost_leases"] >= 1 for r in held_by_a), (
            "a claim of the frozen worker was not retaken"
        )
        retaken = sum(by_job[r["job_id"]]["lost_leases"] > 0 for r in in_flight)
        with capsys.disabled():
            print(
                f"\ndb restart: {DOCUMENTS} documents, {dropped[0]} connections dropped, "
                f"{len(in_flight)} claims in flight at the restart ({retaken} retaken after "
                f"their leases expired, {len(in_flight) - retaken} continued by their attempt), "
                f"outage {OUTAGE_SECONDS:.0f} s"
            )
    finally:
        rt.close()
        for proc in workers:
            _stop(proc)
