"""A worker slot outlives an unexpected exception; the job it held is retaken after its lease."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from docingest.runtime import Runtime
from tests.fixtures import pipeline

pytestmark = pytest.mark.integration


def test_slot_survives_an_unexpected_error(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "doc.md"
    path.write_text("# Resilience\n\nA slot must not die of one bad surprise.\n")
    reg = runtime.documents.register_file(path, user_id="u")
    worker = runtime.worker(concurrency=1)
    real = worker.process
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:  # after the claim, before any handler
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("surprise outside any handler")
        return real(*args, **kwargs)

    worker.process = flaky  # type: ignore[method-assign]
    worker.start()
    try:
        job = pipeline.wait_terminal(runtime, [reg.document.document_id], timeout=30)[
            reg.document.document_id
        ]
        assert all(t.is_alive() for t in worker._threads)
    finally:
        worker.stop()
    assert job["state"] == "done" and job["lost_leases"] == 1  # retaken after the lease expired
