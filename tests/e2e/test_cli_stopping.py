"""Stopping ``docingest ingest`` by a signal, and what ``status`` shows of jobs left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from docingest.db.repository import Repository
from docingest.settings import Settings
from tests.conftest import settings_env
from tests.integration.helpers import write_docs

pytestmark = pytest.mark.e2e


def _jobs(settings: Settings) -> list[dict[str, Any]]:
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT job_id, stage, state, attempt_id, lease_expires_at, next_attempt_at "
            "FROM upload_pipeline.upload_jobs"
        ).fetchall()


def _wait_for(predicate: Any, proc: subprocess.Popen[Any] | None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc is None or proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _signal_when(proc: subprocess.Popen[str], signum: int, predicate: Any) -> str:
    """Send ``signum`` to ``proc`` once ``predicate()`` holds; its stderr once it exited."""
    try:
        _wait_for(predicate, proc)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return stderr


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_a_signal_mid_run_releases_the_jobs_and_says_how_to_resume(
    settings: Settings, tmp_path: Path, signum: int, code: int
) -> None:
    slow = settings.model_copy(
        update={"fault_embedding_delay_seconds": 1.0, "lease_seconds": 60.0, "heartbeat_seconds": 5.0}
    )
    write_docs(tmp_path / "in", 4)
    proc = subprocess.Popen(
        [sys.executable, "-m", "docingest.cli.main", "ingest", "-c", "2", str(tmp_path / "in")],
        env=settings_env(slow),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr = _signal_when(
        proc,
        signum,
        lambda: any(j["stage"] == "embedding_in_progress" and j["state"] == "working" for j in _jobs(slow)),
    )
    assert proc.returncode == code, stderr
    assert "run the same command again to resume" in " ".join(stderr.split()), stderr
    assert "Traceback" not in stderr, stderr
    jobs = _jobs(slow)
    unfinished = [j for j in jobs if j["state"] not in ("done", "failed")]
    assert unfinished, "the run finished before the signal: nothing was tested"
    # Released, not left leased to a dead process: queued, no attempt, no lease, due now.
    assert all(
        j["state"] == "queued" and j["attempt_id"] is None and j["lease_expires_at"] is None
        for j in unfinished
    ), unfinished
    with psycopg.connect(slow.database_url, row_factory=dict_row, autocommit=True) as conn:
        claim = Repository().claim_job(conn, worker_id="test", lease_seconds=30)
    assert claim is not None and claim.previous_state == "queued"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
@pytest.mark.parametrize("during", ["probe", "registration"])
def test_a_signal_before_the_workers_start_exits_with_its_code(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int, code: int, during: str
) -> None:
    from typer.testing import CliRunner

    from docingest.cli.main import app
    from docingest.runtime import Runtime
    from docingest.services.documents import DocumentService

    def signalled(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signum)
        time.sleep(3)  # the handler interrupts this
        raise AssertionError("the signal did not interrupt")

    if during == "probe":
        monkeypatch.setattr(Runtime, "check_embedder_dimensions", signalled)
    else:
        monkeypatch.setattr(DocumentService, "register_file", signalled)

    def ignored(*args: object) -> None:  # the signal must not end pytest if the command misses it
        pass

    previous = signal.signal(signum, ignored)
    try:
        write_docs(tmp_path / "in", 1)
        result = CliRunner().invoke(app, ["ingest", str(tmp_path / "in")], env=settings_env(settings))
        assert signal.getsignal(signum) is ignored  # the command's handlers are gone
    finally:
        signal.signal(signum, previous)
    assert result.exit_code == code, result.output
    assert f"stopped by {signal.Signals(signum).name}" in result.output
    assert "run the same command again" in " ".join(result.output.split())


def test_a_job_whose_worker_was_killed_shows_as_stalled_once_its_lease_expired(
    settings: Settings, tmp_path: Path
) -> None:
    from docingest.api.schemas import DocumentPublic, JobPublic
    from docingest.runtime import Runtime

    short = settings.model_copy(
        update={"fault_embedding_delay_seconds": 3.0, "lease_seconds": 2.0, "heartbeat_seconds": 0.5}
    )
    rt = Runtime(short, migrate=False)
    try:
        [path] = write_docs(tmp_path / "in", 1)
        reg = rt.documents.register_file(path, user_id="local")
        assert reg.job is not None
        proc = subprocess.Popen(
            [sys.executable, "-m", "docingest.cli.main", "worker", "-c", "1"],
            env=settings_env(short),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for(lambda: any(j["state"] == "working" for j in _jobs(short)), proc)
            with rt.pool().connection() as conn:
                [live] = rt.repo.list_jobs(conn)
            assert live["state"] == "working" and not live["stalled"]  # held, its lease renewed
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        with psycopg.connect(short.database_url, autocommit=True) as conn:  # as a checkpoint leaves it
            conn.execute("""UPDATE upload_pipeline.upload_jobs SET progress = progress || '{"eta_s": 39}'""")
        _wait_for(
            lambda: all(
                j["lease_expires_at"] is not None
                and j["lease_expires_at"] < datetime.now(UTC) - timedelta(seconds=0.5)
                for j in _jobs(short)
            ),
            None,
        )
        status = subprocess.run(
            [sys.executable, "-m", "docingest.cli.main", "status", "--json"],
            env=settings_env(short),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        [row] = json.loads(status.stdout)
        assert row["state"] == "working" and row["stalled"] is True, row
        assert "eta_s" not in row["progress"], row
        table = subprocess.run(
            [sys.executable, "-m", "docingest.cli.main", "status"],
            env={**settings_env(short), "COLUMNS": "200"},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert "stalled" in table.stdout and "working" not in table.stdout, table.stdout
        assert "eta" not in table.stdout, table.stdout
        with rt.pool().connection() as conn:
            view = DocumentPublic.from_row(
                rt.repo.get_document_view(conn, user_id="local", document_id=reg.document.document_id)
            )
            job = rt.repo.get_job(conn, reg.job.job_id)
        assert view.stalled and view.state == "working" and "eta_s" not in view.progress
        assert job is not None
        public = JobPublic.from_job(job)
        assert public.stalled and public.state == "working" and "eta_s" not in public.progress
    finally:
        rt.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_worker_stopped_by_a_signal_releases_its_job(
    settings: Settings, tmp_path: Path, signum: signal.Signals
) -> None:
    from docingest.runtime import Runtime

    slow = settings.model_copy(update={"fault_embedding_delay_seconds": 4.0})
    rt = Runtime(slow, migrate=False)
    try:
        [path] = write_docs(tmp_path / "in", 1)
        rt.documents.register_file(path, user_id="local")
    finally:
        rt.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "docingest.cli.main", "worker", "-c", "1"],
        env=settings_env(slow),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = _signal_when(proc, signum, lambda: any(j["state"] == "working" for j in _jobs(slow)))
    assert proc.returncode == 0, err
    assert f"{signal.Signals(signum).name}: stopping" in err and "stopped" in err.splitlines()[-1], err
    [job] = _jobs(slow)
    assert job["state"] == "queued" and job["attempt_id"] is None and job["lease_expires_at"] is None, job
    # A queued job shows no ETA: its last attempt's rate says nothing now that nothing runs it.
    with psycopg.connect(slow.database_url, autocommit=True) as conn:
        conn.execute("""UPDATE upload_pipeline.upload_jobs SET progress = progress || '{"eta_s": 39}'""")
    status = subprocess.run(
        [sys.executable, "-m", "docingest.cli.main", "status", "--json"],
        env=settings_env(slow),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    [row] = json.loads(status.stdout)
    assert row["state"] == "queued" and "eta_s" not in row["progress"], row


def test_output_that_is_not_a_terminal_gets_a_progress_line_every_few_seconds(
    settings: Settings, tmp_path: Path
) -> None:
    import re

    slow = settings.model_copy(update={"fault_embedding_delay_seconds": 0.4})
    write_docs(tmp_path / "in", 4)
    code = (
        "import sys, docingest.cli.ingest as i; i.PLAIN_PROGRESS_SECONDS = 0.5; "
        "from docingest.cli.main import main; sys.exit(main())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "ingest", "--json", "-c", "1", str(tmp_path / "in")],
        env=settings_env(slow),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["complete"] == 4  # stdout stays one JSON object
    lines = re.findall(
        r"^ingest: (\d)/4 documents, [\d,]+/[\d,]+ chunks(?: \(\+\d docs? to chunk\))? embedded, "
        r".*elapsed \d:\d\d:\d\d",
        proc.stderr,
        flags=re.MULTILINE,
    )
    assert len(lines) >= 3, proc.stderr
    assert [int(n) for n in lines] == sorted(int(n) for n in lines)
    assert "chunks/s, eta " in proc.stderr, proc.stderr


def test_ingest_says_it_waits_for_a_lease_held_by_a_dead_process_then_takes_the_job_over(
    settings: Settings, tmp_path: Path
) -> None:
    import re

    from docingest.runtime import Runtime

    leased = settings.model_copy(update={"lease_seconds": 8.0, "heartbeat_seconds": 1.0})
    [path] = write_docs(tmp_path / "in", 1)
    rt = Runtime(leased, migrate=False)
    try:
        rt.documents.register_file(path, user_id="local")
    finally:
        rt.close()
    slow = leased.model_copy(update={"fault_embedding_delay_seconds": 2.0})
    worker = subprocess.Popen(
        [sys.executable, "-m", "docingest.cli.main", "worker", "-c", "1"],
        env=settings_env(slow),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: any(j["state"] == "working" for j in _jobs(leased)), worker)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    # The dead worker's lease outlasts ingest's start however loaded the machine is (a process
    # starting after an 8 s lease ran out took the job over without waiting); once ingest says it
    # waits, the lease is left a few seconds to run.
    lease = "UPDATE upload_pipeline.upload_jobs SET lease_expires_at = now() + %s * interval '1 second' WHERE state = 'working'"
    with psycopg.connect(leased.database_url, autocommit=True) as conn:
        conn.execute(lease, (120,))
        code = (
            "import sys, docingest.cli.ingest as i; i.PLAIN_PROGRESS_SECONDS = 0.3; "
            "from docingest.cli.main import main; sys.exit(main())"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "ingest", str(path)],
            env=settings_env(leased),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        timer = threading.Timer(120, proc.kill)
        timer.start()
        try:
            assert proc.stderr is not None
            lines = []
            for line in proc.stderr:
                if "leased by another process" in line and not any("leased by another" in x for x in lines):
                    conn.execute(lease, (4,))
                lines.append(line)
            returncode = proc.wait()
        finally:
            timer.cancel()
            proc.kill()
            proc.wait()
    stderr = "".join(lines)
    assert returncode == 0, stderr
    assert re.search(r"waiting for 1 job leased by another process, lease expires in [1-8] s", stderr), stderr
    assert "took over 1 job whose lease expired" in stderr, stderr
    assert [j["state"] for j in _jobs(leased)] == ["done"]
