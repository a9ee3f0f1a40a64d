"""The full-text leg of hybrid search: any word of the question matches (a question in natural
language rarely has all its words in one chunk), and a chunk's context (its document's title
and heading path, migration 007) is searched with its text and weighs most."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from docingest.runtime import Runtime
from docingest.services.ingest import ingest

pytestmark = pytest.mark.integration

PAGES = {
    "maintenance.html": (
        "<html><head><title>Routine Vacuuming</title></head><body><h1>Routine Vacuuming</h1>"
        "<p>Dead row versions are reclaimed so that their space can be used again.</p></body></html>"
    ),
    "tides.md": "# Tides\n\nSpring tides follow the new and the full moon; vacuuming is not involved.\n",
    "knots.md": "# Knots\n\nA bowline makes a fixed loop at the end of a rope.\n",
}


@pytest.fixture
def searched(runtime: Runtime, tmp_path: Path) -> Runtime:
    for name, text in PAGES.items():
        (tmp_path / name).write_text(text)
    summary = ingest(runtime, [tmp_path], concurrency=1, poll_seconds=0.1)
    assert summary.complete == len(PAGES), summary.failures
    return runtime


def _fulltext(rt: Runtime, query: str) -> list[str]:
    with rt.pool().connection() as conn:
        rows = rt.repo.search_fulltext(
            conn, user_id="local", query=query, embedding=np.zeros(384, dtype=np.float32) + 0.05, limit=10
        )
    return [r["filename"] for r in rows]


def test_any_word_of_a_question_matches(searched: Runtime) -> None:
    # no chunk holds every word: an AND of them would find nothing
    assert _fulltext(searched, "which knot makes a fixed loop in a lighthouse?") == ["knots.md"]
    assert _fulltext(searched, "the of and") == []  # stop words only: nothing to match
    assert _fulltext(searched, "a & b | !c ' :: \\ <-> :*") == []  # query syntax is only words


def test_the_title_is_searched_and_outranks_a_mention_in_the_text(searched: Runtime) -> None:
    # "vacuuming" is in maintenance.html's title only, and in the text of tides.md
    assert _fulltext(searched, "routine vacuuming") == ["maintenance.html", "tides.md"]


def test_hybrid_search_returns_the_titled_document_first(searched: Runtime) -> None:
    hits = searched.searcher().search("how does routine vacuuming work?", user_id="local", k=3, mode="hybrid")
    assert hits[0].filename == "maintenance.html"
