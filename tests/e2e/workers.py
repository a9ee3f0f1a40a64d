"""Start ``docingest worker`` processes for end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docingest.settings import Settings
from tests.conftest import settings_env


def start_worker(
    settings: Settings,
    log_dir: Path,
    name: str,
    *,
    concurrency: int = 2,
    args: tuple[str, ...] = (),
    **env_overrides: str,
) -> subprocess.Popen[bytes]:
    env = settings_env(settings)
    env.update(env_overrides)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = (log_dir / f"{name}.log").open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "docingest.cli.main",
            "worker",
            "--concurrency",
            str(concurrency),
            "-v",
            *args,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.3) -> Any:
    """Poll ``predicate`` until truthy; raise ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout} s")


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
