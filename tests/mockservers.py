"""Start ``docingest mock openai|llamaparse`` as real processes on loopback, for tests and bench."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import httpx

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this environment) with this worktree's code first on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(SRC.parent), env.get("PYTHONPATH", "")])
    return env


def docingest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from docingest.cli.main import main; main()", *args]


class MockServer:
    """A running mock; ``url`` is its root, ``stats()`` its ledger; ``stop()`` ends it."""

    def __init__(self, kind: str, *flags: str, log_dir: Path | None = None) -> None:
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log = log_dir / f"mock-{kind}-{self.port}.log" if log_dir else None
        with (
            log.open("wb") if log else contextlib.nullcontext(subprocess.DEVNULL) as out
        ):  # the child keeps it
            self.proc = subprocess.Popen(
                docingest_cmd("mock", kind, "--port", str(self.port), *flags),
                env=child_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mock {kind} did not start (exit {self.proc.poll()})")
            time.sleep(0.1)

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_mock/stats", timeout=10).json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def openai_settings(mock: MockServer, **extra: Any) -> dict[str, Any]:
    """Settings overrides for the OpenAI mock (384 dimensions, as the test database)."""
    return {
        "embedding_provider": "openai",
        "openai_base_url": f"{mock.url}/v1",
        "openai_api_key": "test-key",
        "embedding_model": "text-embedding-3-small",
        "embedding_dimensions": 384,
        **extra,
    }


def llamaparse_settings(mock: MockServer, **extra: Any) -> dict[str, Any]:
    return {
        "parser": "llamaparse",
        "llamaparse_url": mock.url,
        "llamaparse_api_key": "llx-test",
        "llamaparse_poll_seconds": 0.2,
        "llamaparse_poll_max_seconds": 0.5,
        **extra,
    }


def max_in_window(times: list[float], window: float) -> int:
    """Most events in any half-open window of ``window`` seconds."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
