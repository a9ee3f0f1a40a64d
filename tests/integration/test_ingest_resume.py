"""An interrupted ``docingest ingest`` says so, and running it again resumes (counted ``resumed``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from docingest.runtime import Runtime
from docingest.services.ingest import IngestInterrupted, ingest
from tests.fixtures import pipeline
from tests.integration.helpers import register, write_docs

pytestmark = pytest.mark.integration


def test_documents_registered_but_never_processed_count_as_resumed(runtime: Runtime, tmp_path: Path) -> None:
    paths = write_docs(tmp_path / "in", 4)
    register(runtime, paths[:3], user_id="u")  # as an ingest interrupted before its worker ran
    summary = ingest(runtime, [tmp_path / "in"], user_id="u", concurrency=2, poll_seconds=0.1)
    assert (summary.documents, summary.new, summary.resumed, summary.duplicates) == (4, 1, 3, 0)
    assert summary.complete == 4
    again = ingest(runtime, [tmp_path / "in"], user_id="u", concurrency=1, poll_seconds=0.1)
    assert (again.new, again.resumed, again.duplicates, again.complete) == (0, 0, 4, 4)


def test_an_interrupt_reports_the_unfinished_documents_and_a_rerun_finishes_them(
    runtime: Runtime, tmp_path: Path
) -> None:
    write_docs(tmp_path / "in", 3)

    def interrupt(jobs: list[dict[str, Any]]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(IngestInterrupted) as info:
        ingest(runtime, [tmp_path / "in"], user_id="u", concurrency=1, on_progress=interrupt)
    unfinished = sum(j["state"] not in pipeline.TERMINAL for j in pipeline.latest_jobs(runtime).values())
    assert info.value.unfinished == 3 and unfinished >= 1  # the first poll saw none finished
    summary = ingest(runtime, [tmp_path / "in"], user_id="u", concurrency=2, poll_seconds=0.1)
    assert summary.complete == 3 and summary.new == 0
    assert summary.resumed == unfinished and summary.duplicates == 3 - unfinished
