"""Changing the embedding model without downtime (issue 17, item 5): an index built by one
generation (the hashing embedder at 256 dimensions) is re-embedded by another (the local model,
384) in the background; searches keep answering from the old generation until a user's chunks
are all covered, then from the new one; a query embedder of neither is refused."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from docingest.domain import EMBEDDED_CONTEXT, embedding_input
from docingest.errors import EmbeddingGenerationMismatch
from docingest.runtime import Runtime
from docingest.services.ingest import ingest
from docingest.services.reembed import coverage, reembed
from docingest.services.search import SearchConfig, Searcher
from tests.conftest import make_settings
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration

DOCS = {
    "tides.md": "# Tides\n\nSpring tides follow the new and the full moon.\n\n## Neap\n\nNeap tides are weak.\n",
    "lights.md": "# Lighthouses\n\nA fog signal sounds when the light cannot be seen.\n",
    "knots.md": "# Knots\n\nA bowline makes a fixed loop at the end of a rope.\n",
}
QUESTION = "when do spring tides happen?"


@pytest.fixture
def built(db_url: str, tmp_path: Path) -> dict[str, Any]:
    """Two users' documents embedded by the hashing embedder at 256 dimensions."""
    old = Runtime(make_settings(db_url, tmp_path / "data", embedding_dimensions=256), migrate=False)
    for name, text in DOCS.items():
        (tmp_path / "docs" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "docs" / name).write_text(text)
    for user in ("ana", "bo"):
        assert ingest(old, [tmp_path / "docs"], user_id=user, concurrency=1, poll_seconds=0.1).complete == 3
    new = Runtime(
        make_settings(db_url, tmp_path / "data", embedding_provider="local", embedding_backend="torch"),
        migrate=False,
    )
    yield {"old": old, "new": new}
    old.close()
    new.close()


def _generations(rt: Runtime, user: str) -> set[int]:
    found = rows(
        rt, "SELECT DISTINCT generation_id FROM upload_pipeline.document_chunks WHERE user_id = %s", (user,)
    )
    return {r["generation_id"] for r in found}


def test_a_model_change_re_embeds_in_the_background_and_switches_at_once(built: dict[str, Any]) -> None:
    old, new = built["old"], built["new"]
    before = old.searcher().search(QUESTION, user_id="ana", k=3)
    assert before and before[0].source == "tides.md"
    old_generation = old.generation()
    chunks_before = rows(
        new, "SELECT count(*) AS n FROM upload_pipeline.document_chunks WHERE user_id = 'ana'"
    )

    # Configured for the new model, searches still answer from the generation serving the index.
    assert [h.chunk_id for h in new.searcher().search(QUESTION, user_id="ana", k=3)] == [
        h.chunk_id for h in before
    ]

    answers: list[list[str]] = []
    stop = threading.Event()

    def search_loop() -> None:
        searcher = new.searcher()
        while not stop.is_set():
            answers.append([h.chunk_id for h in searcher.search(QUESTION, user_id="ana", k=3)])

    thread = threading.Thread(target=search_loop)
    thread.start()
    try:
        summary = reembed(new, user_id="ana", concurrency=1, poll_seconds=0.1)
    finally:
        stop.set()
        thread.join(30)
    assert (summary.queued, summary.complete, summary.failed, summary.switched_users) == (3, 3, 0, 1)
    assert answers and all(len(a) == 3 for a in answers)  # never an empty answer meanwhile

    new_generation = new.generation()
    assert new_generation.generation_id != old_generation.generation_id
    assert _generations(new, "ana") == {new_generation.generation_id}
    assert _generations(new, "bo") == {old_generation.generation_id}  # another user: not asked
    assert (
        rows(new, "SELECT count(*) AS n FROM upload_pipeline.document_chunks WHERE user_id = 'ana'")
        == chunks_before
    )
    assert rows(new, "SELECT count(*) AS n FROM upload_pipeline.chunk_embeddings_next") == [{"n": 0}]
    # Each chunk's vector is now the local model's embedding of its text and context.
    stored = rows(
        new,
        "SELECT text, meta, embedding FROM upload_pipeline.document_chunks WHERE user_id = 'ana' ORDER BY chunk_id",
    )
    expected = new.embedder().embed(
        [embedding_input(r["text"], {EMBEDDED_CONTEXT: r["meta"].get(EMBEDDED_CONTEXT)}) for r in stored]
    )
    got = np.stack([np.asarray(r["embedding"].to_numpy(), dtype=np.float32) for r in stored])
    assert got.shape == (len(stored), 384)
    assert np.allclose(got, expected, atol=1e-4)

    after = new.searcher().search(QUESTION, user_id="ana", k=3)
    assert after[0].source == "tides.md"
    # The old configuration still searches the switched user: by the new generation's model.
    assert [h.chunk_id for h in old.searcher().search(QUESTION, user_id="ana", k=3)] == [
        h.chunk_id for h in after
    ]

    lines = {c.label: c for c in coverage(new.database, new.repo, None)}
    assert lines[new_generation.label].serving_users == 1 and lines[old_generation.label].serving_users == 1
    assert lines[new_generation.label].share == pytest.approx(0.5)

    # Nothing left to do: a second run queues nothing and switches nobody.
    again = reembed(new, user_id="ana", concurrency=1, poll_seconds=0.1)
    assert (again.queued, again.switched_users) == (0, 0)


def test_a_query_embedder_of_another_generation_is_refused(built: dict[str, Any]) -> None:
    old, new = built["old"], built["new"]
    strict = Searcher(new.database, new.repo, new.query_embedder, SearchConfig.from_settings(new.settings))
    with pytest.raises(EmbeddingGenerationMismatch, match="hashing/hashing-bow-v1/256"):
        strict.search(QUESTION, user_id="ana")
    assert old.searcher().search(QUESTION, user_id="ana")  # its own generation answers


def test_documents_ingested_during_a_migration_wait_for_the_switch(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """A document the new model embeds while the user is still served by the old one is
    searchable at the switch, with the others (never compared across models)."""
    new = built["new"]
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "anchors.md").write_text(
        "# Anchors\n\nA kedge anchor is carried out by a boat to move a ship.\n"
    )
    summary = ingest(new, [extra], user_id="ana", concurrency=1, poll_seconds=0.1)
    assert summary.complete == 1
    [warning] = [w["message"] for w in summary.warnings]
    assert "local/all-MiniLM-L6-v2/384" in warning and "`docingest reembed`" in warning
    hits = new.searcher().search("kedge anchor", user_id="ana", k=5)
    assert "anchors.md" not in {h.source for h in hits}  # served by the old generation still
    summary = reembed(new, user_id="ana", concurrency=1, poll_seconds=0.1)
    assert summary.queued == 3 and summary.switched_users == 1
    assert new.searcher().search("kedge anchor", user_id="ana", k=1)[0].source == "anchors.md"


def test_a_run_interrupted_part_way_is_finished_by_the_next(built: dict[str, Any]) -> None:
    """Jobs an interrupted run left queued are waited for by the next run, and documents it
    re-embedded already are not queued again: one job per document, one switch."""
    from docingest.services.reembed import queue

    new = built["new"]
    _, queued = queue(new, user_id="ana")
    assert len(queued) == 3
    assert new.worker(concurrency=1).run_once()  # one document done, two left queued (interrupted)
    summary = reembed(new, user_id="ana", concurrency=1, poll_seconds=0.1)
    assert (summary.queued, summary.complete, summary.switched_users, summary.remaining) == (2, 2, 1, 0)
    jobs = rows(new, "SELECT count(*) AS n FROM upload_pipeline.upload_jobs WHERE kind = 'reembed'")
    assert jobs == [{"n": 3}]
    assert _generations(new, "ana") == {new.generation().generation_id}
