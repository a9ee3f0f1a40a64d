"""The worker's job outcome lines at the default level (WARNING) of `docingest worker`/`serve`:
one per completion, failure, scheduled retry and lease takeover; none for `ingest` unless -v."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from docingest.domain import Stage
from docingest.errors import EmbeddingUnavailable, PdfCorrupt
from docingest.observability import logs
from docingest.runtime import Runtime
from tests.integration.helpers import register, rows, write_docs
from tests.integration.test_worker import Failing, _worker_with, expire_leases

pytestmark = pytest.mark.integration


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    logging.getLogger().handlers.clear()
    logging.getLogger(logs.JOBS_LOGGER).setLevel(logging.NOTSET)
    structlog.reset_defaults()


def _run_outcomes(runtime: Runtime, tmp_path: Path) -> dict[str, Any]:
    """A takeover then completion, a permanent failure and a scheduled retry; their job ids."""
    register(runtime, write_docs(tmp_path / "in", 3, words=300))
    dead = runtime.worker(concurrency=1)
    held = dead.claim()
    assert held is not None
    expire_leases(runtime)
    w = runtime.worker(concurrency=1)
    assert w.run_once()  # takes the expired lease over and completes the job
    pdf = _worker_with(runtime, Failing(Stage.PARSE_QUEUED, PdfCorrupt("truncated xref")))
    assert pdf.run_once()
    slow = _worker_with(
        runtime, Failing(Stage.EMBEDDING_IN_PROGRESS, EmbeddingUnavailable("503 from provider"))
    )
    assert slow.run_once()
    by_state = {
        r["state"]: r["job_id"]
        for r in rows(runtime, "SELECT job_id, state FROM upload_pipeline.upload_jobs")
    }
    assert by_state["done"] == held[0].job_id
    return {
        "first": by_state["done"],
        "permanent": by_state["failed"],
        "transient": by_state["retryable"],
        "dead": dead.worker_id,
    }


def test_worker_logs_one_line_per_job_outcome_at_the_default_level(
    runtime: Runtime, tmp_path: Path, log_stream: io.StringIO
) -> None:
    logs.configure_logging(
        logging.WARNING, json=True, stream=log_stream, job_lines=True
    )  # `docingest worker`
    ids = _run_outcomes(runtime, tmp_path)
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    jobs = [e for e in lines if e["logger"] == logs.JOBS_LOGGER]
    assert [e["event"] for e in jobs] == [
        "lease taken over",
        "job complete",
        "job failed",
        "job retry scheduled",
    ]
    takeover, complete, failed, retry = jobs
    assert takeover["job_id"] == str(ids["first"]) and takeover["from_worker"] == ids["dead"]
    done = rows(
        runtime, "SELECT progress FROM upload_pipeline.upload_jobs WHERE job_id = %s", (ids["first"],)
    )[0]["progress"]
    assert complete["job_id"] == str(ids["first"]) and complete["file"] == "doc-0000.md"
    assert complete["pages"] == done["pages_total"]  # None: Markdown has no pages
    assert complete["chunks"] == done["chunks_total"] >= 1
    assert complete["seconds"] >= 0 and complete["level"] == "info"
    assert failed["job_id"] == str(ids["permanent"]) and failed["level"] == "warning"
    assert (failed["error_code"], failed["error_message"]) == ("pdf_corrupt", "truncated xref")
    assert retry["job_id"] == str(ids["transient"]) and retry["error_code"] == "embedding_unavailable"
    assert retry["attempt"] == 1 and retry["delay_seconds"] >= 0
    # other noise stays at its level: no INFO line of other loggers at WARNING
    assert all(e["level"] != "info" for e in lines if e["logger"] != logs.JOBS_LOGGER)


def test_ingest_keeps_job_lines_out_of_its_terminal_unless_verbose(
    runtime: Runtime, tmp_path: Path, log_stream: io.StringIO
) -> None:
    logs.configure_logging(logging.WARNING, json=True, stream=log_stream, job_lines=False)  # `ingest`
    _run_outcomes(runtime, tmp_path)
    assert not [
        line for line in log_stream.getvalue().splitlines() if json.loads(line)["logger"] == logs.JOBS_LOGGER
    ]
