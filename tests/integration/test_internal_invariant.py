"""A broken internal invariant fails the job at once (``internal_invariant``), never retried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from docingest.domain import Stage
from docingest.runtime import Runtime
from docingest.stages.base import StageResult
from docingest.worker.loop import BaseWorker
from tests.integration.helpers import register, rows, write_docs

pytestmark = pytest.mark.integration


class LoseOneVector:
    """The real finalize handler, run after one buffered vector of the document was deleted:
    the state a bug in the embed stage would leave (a chunk without its vector)."""

    stage = Stage.EMBEDDINGS_STORED

    def __init__(self, runtime: Runtime, real: Any) -> None:
        self.runtime, self.real, self.calls = runtime, real, 0

    def run(self, ctx: Any) -> StageResult:
        self.calls += 1
        rows(
            self.runtime,
            "DELETE FROM upload_pipeline.document_vector_buffer WHERE chunk_id = "
            "(SELECT chunk_id FROM upload_pipeline.document_vector_buffer "
            " WHERE document_id = %s ORDER BY chunk_id LIMIT 1) RETURNING chunk_id",
            (ctx.document.document_id,),
        )
        return self.real.run(ctx)  # type: ignore[no-any-return]


def test_a_broken_finalize_invariant_fails_the_job_at_once(runtime: Runtime, tmp_path: Path) -> None:
    register(runtime, write_docs(tmp_path / "in", 1, words=600))
    handlers = runtime.handlers()
    finalize = LoseOneVector(runtime, handlers[Stage.EMBEDDINGS_STORED])
    handlers[Stage.EMBEDDINGS_STORED] = finalize
    w = BaseWorker(runtime.settings, runtime.pool(), handlers, concurrency=1)
    for _ in range(runtime.settings.max_retries + 2):  # a retried job would be claimed again
        rows(
            runtime,
            "UPDATE upload_pipeline.upload_jobs SET next_attempt_at = now() "
            "WHERE state = 'retryable' RETURNING job_id",
        )
        if not w.run_once():
            break
    job = rows(runtime, "SELECT * FROM upload_pipeline.upload_jobs")[0]
    assert (job["state"], job["stage"]) == ("failed", "embeddings_stored")
    assert job["error_code"] == "internal_invariant" and job["retry_count"] == 0, job["error_message"]
    assert (
        job["error_message"].startswith("bug: finalize found ")
        and "nothing was moved" in job["error_message"]
    )
    assert finalize.calls == 1
    assert rows(runtime, "SELECT * FROM upload_pipeline.events WHERE type = 'retry_scheduled'") == []
    kept = rows(
        runtime,
        "SELECT (SELECT count(*) FROM upload_pipeline.document_chunks) AS final, "
        "(SELECT count(*) FROM upload_pipeline.document_chunk_buffer) AS buffered",
    )[0]
    assert kept["final"] == 0 and kept["buffered"] > 1  # nothing was moved
