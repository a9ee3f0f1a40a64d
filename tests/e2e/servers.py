"""Real servers on loopback for the API tests: the API (uvicorn), workers, the storage service, moto."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from docingest.settings import Settings
from tests.conftest import settings_env

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(settings: Settings | None) -> dict[str, str]:
    env = settings_env(settings) if settings is not None else dict(os.environ)
    paths = [str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Wait until ``url`` answers (any status), or fail with the process's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}:\n{out[-4000:]}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


@contextmanager
def process(
    args: list[str], env: dict[str, str], log: Path, ready_url: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` with output to ``log``; terminate (SIGTERM, then kill) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        if ready_url:
            try:
                wait_http(ready_url, proc)
            except Exception as exc:
                raise RuntimeError(f"{exc}\n--- log ---\n{log.read_text(errors='replace')[-4000:]}") from exc
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "docingest.cli.main", *args]


@contextmanager
def api_server(settings: Settings, log_dir: Path) -> Iterator[str]:
    """``docingest serve`` on ``settings.api_port``; yields its base URL."""
    base = f"http://127.0.0.1:{settings.api_port}"
    with process(
        cli("serve", "--host", "127.0.0.1", "--port", str(settings.api_port)),
        _env(settings),
        log_dir / "api.log",
        f"{base}/health",
    ):
        yield base


@contextmanager
def worker(settings: Settings, log_dir: Path, concurrency: int = 2) -> Iterator[subprocess.Popen[bytes]]:
    with process(
        cli("worker", "--concurrency", str(concurrency)), _env(settings), log_dir / "worker.log"
    ) as proc:
        yield proc


@contextmanager
def storage_server(settings: Settings, log_dir: Path) -> Iterator[str]:
    """``docingest storage`` alone; yields its ``/storage/v1`` base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with process(
        cli("storage", "--host", "127.0.0.1", "--port", str(port)),
        _env(settings),
        log_dir / "storage.log",
        f"{base}/health",
    ):
        yield f"{base}/storage/v1"


@contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """moto in server mode on loopback; yields its endpoint URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with process(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        _env(None),
        log_dir / "moto.log",
        f"{base}/moto-api/",
    ):
        yield base
