"""A worker SIGKILLed in the middle of a re-embedding: another worker resumes it through the
queue (the lease expires, the job is taken over), and at the end every chunk has exactly its
vector of the new generation, none lost, none twice, and the user is switched."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

from docingest.domain import EMBEDDED_CONTEXT, embedding_input
from docingest.runtime import Runtime
from docingest.services.ingest import ingest
from tests.conftest import make_settings
from tests.e2e.workers import start_worker, stop_all, wait_for
from tests.integration.helpers import rows, write_docs

pytestmark = pytest.mark.e2e


def _reembed_jobs(rt: Runtime) -> dict[str, int]:
    found = rows(
        rt,
        "SELECT state, count(*) AS n FROM upload_pipeline.upload_jobs WHERE kind = 'reembed' GROUP BY state",
    )
    return {r["state"]: int(r["n"]) for r in found}


def test_a_worker_killed_mid_reembed_is_resumed_with_nothing_lost_or_doubled(
    db_url: str, tmp_path: Path
) -> None:
    old = Runtime(make_settings(db_url, tmp_path / "data", embedding_dimensions=256), migrate=False)
    write_docs(tmp_path / "docs", 12, words=300)
    assert ingest(old, [tmp_path / "docs"], user_id="kim", concurrency=2, poll_seconds=0.1).complete == 12
    chunks = rows(old, "SELECT count(*) AS n FROM upload_pipeline.document_chunks")[0]["n"]
    old_generation = old.generation()

    # The new model (the hashing embedder at 512 dimensions), slowed to 0.4 s a request.
    new_settings = make_settings(
        db_url, tmp_path / "data", embedding_dimensions=512, fault_embedding_delay_seconds=0.4
    )
    first = start_worker(new_settings, tmp_path / "logs", "first", concurrency=1, args=("--reembed",))
    procs = [first]
    try:
        wait_for(lambda: _reembed_jobs(old).get("done", 0) >= 3, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        left = _reembed_jobs(old)
        assert left.get("done", 0) < 12, "the kill came too late to interrupt anything"
        waiting = rows(old, "SELECT count(*) AS n FROM upload_pipeline.chunk_embeddings_next")[0]["n"]
        assert waiting > 0  # vectors of the new generation were stored, not yet switched
        second = start_worker(new_settings, tmp_path / "logs", "second", concurrency=2)
        procs.append(second)
        wait_for(lambda: _reembed_jobs(old) == {"done": 12}, timeout=120)
    finally:
        stop_all(procs)

    new = Runtime(new_settings, migrate=False)
    try:
        generation = new.generation()
        assert generation.generation_id != old_generation.generation_id
        stored = rows(
            new,
            "SELECT chunk_id, text, meta, embedding, generation_id FROM upload_pipeline.document_chunks"
            " ORDER BY chunk_id",
        )
        assert len(stored) == chunks  # none lost, none added
        assert {r["generation_id"] for r in stored} == {generation.generation_id}
        assert rows(new, "SELECT count(*) AS n FROM upload_pipeline.chunk_embeddings_next") == [{"n": 0}]
        with new.pool().connection() as conn:
            assert new.repo.serving_generation(conn, "kim") == generation
        expected = new.embedder().embed(
            [embedding_input(r["text"], {EMBEDDED_CONTEXT: r["meta"].get(EMBEDDED_CONTEXT)}) for r in stored]
        )
        got = np.stack([np.asarray(r["embedding"].to_numpy(), dtype=np.float32) for r in stored])
        assert np.allclose(got, expected, atol=1e-5)
        taken_over = rows(
            new, "SELECT count(*) AS n FROM upload_pipeline.events WHERE type = 'lease_taken_over'"
        )
        assert taken_over[0]["n"] >= 1  # the killed worker's job was resumed by the other
        assert new.searcher().search("doc3-word7", user_id="kim", k=1)[0].source == "doc-0003.md"
    finally:
        new.close()
        old.close()
