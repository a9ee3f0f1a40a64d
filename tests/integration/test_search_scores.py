"""Every search hit carries a score a person can read: its cosine similarity to the question, in
both modes; ``rank`` orders the answer, ``rrf_score`` says what ordered a hybrid one, and
``min_score`` drops weak hits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from docingest.runtime import Runtime
from docingest.services.ingest import ingest

pytestmark = pytest.mark.integration

DOCS = {
    "tides.md": "# Tides\n\nSpring tides follow the new and the full moon.\n\n## Neap\n\nNeap tides are weak.\n",
    "lights.md": "# Lighthouses\n\nA fog signal sounds when the light cannot be seen.\n\n"
    "## Lenses\n\nFresnel lenses focus the lamp.\n",
    "knots.md": "# Knots\n\nA bowline makes a fixed loop at the end of a rope.\n",
}
QUESTION = "when do spring tides happen?"


@pytest.fixture
def searched(runtime: Runtime, tmp_path: Path) -> Runtime:
    for name, text in DOCS.items():
        (tmp_path / name).write_text(text)
    summary = ingest(runtime, [tmp_path], concurrency=1, poll_seconds=0.1)
    assert summary.complete == len(DOCS)
    return runtime


def _cosines(rt: Runtime, question: str) -> dict[str, float]:
    """Every chunk's cosine similarity to ``question``, computed here from the stored vectors."""
    query = rt.query_embedder().embed([question])[0].astype(np.float64)
    with rt.pool().connection() as conn:
        rows = conn.execute("SELECT chunk_id, embedding FROM upload_pipeline.document_chunks").fetchall()
    out = {}
    for row in rows:
        v = np.asarray(row["embedding"].to_numpy(), dtype=np.float64)
        out[str(row["chunk_id"])] = float(v @ query / (np.linalg.norm(v) * np.linalg.norm(query)))
    return out


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_every_hit_has_its_cosine_as_score_and_a_rank(searched: Runtime, mode: str) -> None:
    cosines = _cosines(searched, QUESTION)
    hits = searched.searcher().search(QUESTION, user_id="local", k=5, mode=mode)  # type: ignore[arg-type]
    assert hits, "the question matches the tides document"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    for h in hits:
        assert -1.0 <= h.score <= 1.0
        assert h.score == pytest.approx(cosines[h.chunk_id], abs=1e-5)
    if mode == "vector":
        assert all(h.rrf_score is None for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    else:
        fused = [h.rrf_score for h in hits]
        assert all(s is not None and 0 < s < 1 for s in fused)
        assert fused == sorted(fused, reverse=True)  # type: ignore[type-var]


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_min_score_drops_weak_hits(searched: Runtime, mode: str) -> None:
    everything = searched.searcher().search(QUESTION, user_id="local", k=10, mode=mode)  # type: ignore[arg-type]
    assert len(everything) >= 3
    floor = sorted(h.score for h in everything)[len(everything) // 2]
    strong = searched.searcher().search(QUESTION, user_id="local", k=10, mode=mode, min_score=floor)  # type: ignore[arg-type]
    assert strong and all(h.score >= floor for h in strong)
    assert {h.chunk_id for h in strong} == {h.chunk_id for h in everything if h.score >= floor}
    assert [h.rank for h in strong] == list(range(1, len(strong) + 1))
    perfect = searched.searcher().search(QUESTION, user_id="local", k=10, mode=mode, min_score=1.0)  # type: ignore[arg-type]
    assert all(h.score >= 1.0 for h in perfect)
    with pytest.raises(ValueError, match="between -1 and 1"):
        searched.searcher().search(QUESTION, user_id="local", k=3, mode=mode, min_score=1.5)  # type: ignore[arg-type]


def test_a_hit_names_the_first_and_last_page_of_its_chunk(runtime: Runtime, tmp_path: Path) -> None:
    from tests.fixtures.pdfgen import PdfBuilder

    pdf = PdfBuilder()
    for line in (
        b"Walruses haul out on the ice floes.",
        b"Puffins nest in burrows.",
        b"The golden hamster hoards seeds.",
    ):
        pdf.add_text_page([line])
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "animals.pdf").write_bytes(pdf.build())
    summary = ingest(runtime, [tmp_path / "in"], user_id="u", concurrency=1, poll_seconds=0.1)
    assert summary.complete == 1
    (hit,) = runtime.searcher().search("golden hamster hoards seeds", user_id="u", k=1)
    assert (hit.page, hit.page_end) == (1, 3)  # three short pages, one chunk
    assert hit.to_dict()["page_end"] == 3
