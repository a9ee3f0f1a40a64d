"""The embedded PostgreSQL stops when the last CLI process using it exits, however it exits."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.e2e


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_PIPELINE_")}
    env.update(
        UPLOAD_PIPELINE_DATA_DIR=str(data_dir),
        UPLOAD_PIPELINE_EMBEDDING_PROVIDER="hashing",
        UPLOAD_PIPELINE_ENVIRONMENT="test",
    )
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])


def _gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _stop_postgres(data_dir: Path) -> None:
    try:
        psutil.Process(_postmaster_pid(data_dir)).terminate()
    except (OSError, ValueError, psutil.Error):
        pass


def test_sigterm_to_serve_stops_the_embedded_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "docingest.cli.main", "serve", "--port", str(port)],
        env=_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.3)
        pg_pid = _postmaster_pid(data_dir)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "docingest API stopped" in proc.communicate()[1]
        assert _gone(pg_pid, 10), "postgres still runs after SIGTERM to serve"
        assert json.loads((data_dir / "pg" / ".handle_pids.json").read_text()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        _stop_postgres(data_dir)


def test_pids_of_dead_processes_do_not_keep_postgres_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = _env(data_dir)
    # migrate creates the embedded database (status on a data dir without one creates none)
    first = subprocess.run(
        [sys.executable, "-m", "docingest.cli.main", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    assert (data_dir / "pg").is_dir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs, as left by a process killed with SIGKILL
    handles = data_dir / "pg" / ".handle_pids.json"
    handles.write_text(json.dumps([dead.pid]))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "docingest.cli.main", "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        pid_file = data_dir / "pg" / "postmaster.pid"  # removed by a clean stop
        assert not pid_file.exists() or _gone(_postmaster_pid(data_dir), 10), (
            "a stale pid kept postgres running"
        )
        assert json.loads(handles.read_text()) == []
    finally:
        _stop_postgres(data_dir)
