"""``context``: each hit comes back with the chunks around it in its own document, in order, with
overlapping or touching windows merged into one passage, under the search's user scope.

The chunks are written straight into ``document_chunks``, each with its own basis vector, and
the query is embedded by a test embedder as a weighted sum of the basis vectors of the chunks it
names: the hits, their order and the passages are then known in advance, through the real SQL.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from docingest.api.app import create_app
from docingest.api.auth import mint_token
from docingest.db.repository import Repository
from docingest.domain import MAX_CONTEXT
from docingest.providers.embedding import Embedder
from docingest.runtime import Runtime
from docingest.services.ingest import ingest
from docingest.services.search import SearchConfig, Searcher, SearchHit
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration
DIM = 384


class BasisQueries(Embedder):
    """Embeds a query ``"7 3"`` as ``1.0 * e_7 + 0.9 * e_3`` (normalised): chunk 7 ranks first,
    chunk 3 second, every other chunk (cosine 0) after them."""

    model = "basis"
    dimensions = DIM

    def _embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for i, index in enumerate(text.split()):
                out[row, int(index)] = 1.0 - 0.1 * i
        return out


class Corpus:
    """Documents of consecutive chunks; chunk ``n`` (counted over every document inserted) has
    basis vector ``e_n`` and the text ``"<filename> chunk <ordinal>."``."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.next_basis = 0
        self.basis: dict[tuple[str, int], int] = {}  # (filename, ordinal) -> basis index

    def add(self, user: str, filename: str, chunks: int, *, pages: bool = False) -> uuid.UUID:
        doc = uuid.uuid4()
        rows = []
        offset = 0
        for ordinal in range(chunks):
            text = f"{filename} chunk {ordinal}."
            meta = {
                "start": offset,
                "end": offset + len(text),
                "page": ordinal // 2 + 1 if pages else None,
                "page_end": ordinal // 2 + 1 if pages else None,
                "heading_path": [filename, f"part {ordinal // 3}"],
            }
            offset += len(text) + 2  # a blank line between chunks in the parsed text
            vector = np.zeros(DIM, dtype=np.float32)
            vector[self.next_basis] = 1.0
            self.basis[(filename, ordinal)] = self.next_basis
            self.next_basis += 1
            rows.append((uuid.uuid4(), doc, user, ordinal, text, json.dumps(meta), vector))
        with self.rt.pool().connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO upload_pipeline.documents (document_id, user_id, filename, mime, bytes_len,"
                " file_sha256, raw_path) VALUES (%s, %s, %s, 'text/markdown', 1, %s, 'x')",
                (doc, user, filename, hashlib.sha256(str(doc).encode()).hexdigest()),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO upload_pipeline.document_chunks (chunk_id, document_id, user_id, ordinal,"
                    " text, meta, token_count, embedding, embed_model) VALUES (%s, %s, %s, %s, %s, %s, 1,"
                    " %s, 'basis')",
                    rows,
                )
        return doc

    def query(self, *chunks: tuple[str, int]) -> str:
        """The query whose hits are ``chunks`` (``(filename, ordinal)``), in that order."""
        return " ".join(str(self.basis[c]) for c in chunks)


def _searcher(rt: Runtime, *, row_security: bool = False) -> Searcher:
    embedder = BasisQueries()
    return Searcher(
        rt.database,
        rt.repo,
        lambda: embedder,
        SearchConfig.from_settings(rt.settings),
        row_security=row_security,
    )


def _search(
    rt: Runtime, corpus: Corpus, hits: Sequence[tuple[str, int]], context: int, **kw: Any
) -> list[SearchHit]:
    found = _searcher(rt, **kw).search(
        corpus.query(*hits), user_id="u1", k=len(hits), mode="vector", context=context
    )
    assert [(h.filename, h.ordinal) for h in found] == list(hits)  # the hits the query names
    return found


def _passages(hits: list[SearchHit]) -> list[tuple[str, list[int], list[int]]]:
    """``(filename, ordinals, hit ranks)`` of each passage, in the order of the hits carrying them."""
    return [(h.filename, h.passage.ordinals, h.passage.hit_ranks) for h in hits if h.passage is not None]


@pytest.fixture
def corpus(runtime: Runtime) -> Corpus:
    c = Corpus(runtime)
    c.add("u1", "a.md", 10)
    c.add("u1", "b.md", 10)
    c.add("u1", "paged.pdf", 6, pages=True)
    c.add("u2", "other.md", 10)
    return c


def test_each_hit_gets_its_neighbours_in_order_with_the_hit_marked(runtime: Runtime, corpus: Corpus) -> None:
    (hit,) = _search(runtime, corpus, [("a.md", 5)], context=2)
    p = hit.passage
    assert p is not None and hit.passage_rank == 1
    assert p.ordinals == [3, 4, 5, 6, 7] == [c.ordinal for c in p.chunks]
    assert p.hit_ranks == [1]
    assert [c.hit_rank for c in p.chunks] == [None, None, 1, None, None]
    assert p.text == "\n\n".join(f"a.md chunk {o}." for o in range(3, 8))  # gaps of 2: a blank line
    for c in p.chunks:
        assert p.text[c.start : c.end] == f"a.md chunk {c.ordinal}."
        assert c.heading_path == ["a.md", f"part {c.ordinal // 3}"]
    assert p.chunks[2].chunk_id == hit.chunk_id
    assert p.page is None and p.page_end is None


def test_windows_are_clipped_at_the_first_and_the_last_chunk(runtime: Runtime, corpus: Corpus) -> None:
    first, last = _search(runtime, corpus, [("a.md", 1), ("b.md", 9)], context=3)
    assert _passages([first, last]) == [("a.md", [0, 1, 2, 3, 4], [1]), ("b.md", [6, 7, 8, 9], [2])]


def test_overlapping_windows_merge_without_duplicates(runtime: Runtime, corpus: Corpus) -> None:
    hits = _search(runtime, corpus, [("a.md", 6), ("a.md", 4), ("a.md", 5)], context=2)
    # One passage, carried by the best hit; the others point at it.
    assert _passages(hits) == [("a.md", [2, 3, 4, 5, 6, 7, 8], [1, 2, 3])]
    assert [h.passage_rank for h in hits] == [1, 1, 1]
    p = hits[0].passage
    assert p is not None
    assert [c.hit_rank for c in p.chunks] == [None, None, 2, 3, 1, None, None]
    assert len({c.chunk_id for c in p.chunks}) == len(p.chunks) == 7
    assert p.text.count("a.md chunk 5.") == 1


def test_touching_windows_merge_and_separate_ones_do_not(runtime: Runtime, corpus: Corpus) -> None:
    # context 1: windows 0-2 and 3-5 touch (one passage); 8-9 is apart.
    hits = _search(runtime, corpus, [("a.md", 4), ("a.md", 9), ("a.md", 1)], context=1)
    assert _passages(hits) == [("a.md", [0, 1, 2, 3, 4, 5], [1, 3]), ("a.md", [8, 9], [2])]
    assert [h.passage_rank for h in hits] == [1, 2, 1]
    assert hits[2].passage is None


def test_neighbours_come_from_the_hits_own_document_only(runtime: Runtime, corpus: Corpus) -> None:
    # Same ordinals in two documents: two passages, each of its own document's chunks.
    hits = _search(runtime, corpus, [("b.md", 0), ("a.md", 0)], context=1)
    assert _passages(hits) == [("b.md", [0, 1], [1]), ("a.md", [0, 1], [2])]
    for h in hits:
        assert h.passage is not None
        assert all(f"{h.filename} chunk" in h.passage.text[c.start : c.end] for c in h.passage.chunks)
        assert "other.md" not in h.passage.text


def test_no_context_no_passage(runtime: Runtime, corpus: Corpus) -> None:
    hits = _search(runtime, corpus, [("a.md", 4), ("a.md", 5)], context=0)
    assert all(h.passage is None and h.passage_rank is None for h in hits)
    assert all(h.to_dict()["passage"] is None for h in hits)


def test_a_passage_spans_its_chunks_pages(runtime: Runtime, corpus: Corpus) -> None:
    (hit,) = _search(runtime, corpus, [("paged.pdf", 3)], context=2)
    p = hit.passage
    assert p is not None and p.ordinals == [1, 2, 3, 4, 5]
    assert (p.page, p.page_end) == (1, 3)
    assert [c.page for c in p.chunks] == [1, 2, 2, 3, 3]


def test_row_security_scopes_the_neighbours_query(runtime: Runtime, corpus: Corpus) -> None:
    """The API's searcher runs the neighbours' query as ``docingest_api`` scoped to the user."""
    hits = _search(runtime, corpus, [("a.md", 4), ("a.md", 6)], context=1, row_security=True)
    assert _passages(hits) == [("a.md", [3, 4, 5, 6, 7], [1, 2])]


def test_the_neighbours_query_never_reads_another_users_document(runtime: Runtime, corpus: Corpus) -> None:
    """Handed another user's document, the query returns nothing: by its own user filter (the
    CLI, no row security) and by row security (the API)."""
    repo: Repository = runtime.repo
    with runtime.pool().connection() as conn:
        (other,) = (
            conn.execute("SELECT document_id FROM upload_pipeline.documents WHERE user_id = 'u2'")
            .fetchone()
            .values()
        )
    with runtime.database.transaction() as conn:
        assert repo.chunk_windows(conn, user_id="u1", windows=[(other, 0, 9)]) == []
        assert len(repo.chunk_windows(conn, user_id="u2", windows=[(other, 0, 9)])) == 10  # it exists
    with runtime.database.user_transaction("u1") as conn:
        assert repo.chunk_windows(conn, user_id="u2", windows=[(other, 0, 9)]) == []  # policy


def test_one_statement_fetches_every_hits_neighbours(
    runtime: Runtime, corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five hits in four windows cost one more statement than the search without context, not
    one per hit or per window (no N+1)."""
    from docingest.db import repository

    sent: list[str] = []
    for name in ("_one", "_all"):
        real = getattr(repository, name)
        monkeypatch.setattr(
            repository,
            name,
            lambda conn, query, params, real=real: sent.append(query) or real(conn, query, params),
        )
    five = [("a.md", 1), ("b.md", 5), ("a.md", 8), ("b.md", 6), ("paged.pdf", 0)]
    _search(runtime, corpus, five, context=0)
    without = list(sent)
    sent.clear()
    hits = _search(runtime, corpus, five, context=1)
    assert sent == [*without, "chunk_windows"]
    assert len(_passages(hits)) == 4  # a.md 0-2, a.md 7-9, b.md 4-7, paged.pdf 0-1


@pytest.mark.parametrize("context", [-1, MAX_CONTEXT + 1])
def test_context_outside_its_range_is_refused(runtime: Runtime, corpus: Corpus, context: int) -> None:
    with pytest.raises(ValueError, match=f"context must be between 0 and {MAX_CONTEXT}"):
        _searcher(runtime).search("1", user_id="u1", k=1, context=context)


def test_the_api_returns_passages_of_ingested_text(runtime: Runtime, tmp_path: Path) -> None:
    """``GET /search?context=1`` over a real ingest: every passage is a run of consecutive
    ordinals around its hits, no chunk is in two passages, and each chunk's span of the passage's
    text is that chunk's text; another user's search sees none of it."""
    paras = " ".join(f"the tide table {i} lists spring and neap tides at the harbour" for i in range(12))
    sections = [f"## Part {s}\n\n{paras} part {s}.\n" for s in range(8)]
    (tmp_path / "tides.md").write_text("# Tides\n\n" + "\n".join(sections))
    assert ingest(runtime, [tmp_path], user_id="alice", concurrency=1, poll_seconds=0.1).complete == 1
    token = mint_token(runtime.settings.jwt_secret, user_id="alice")
    with TestClient(create_app(runtime, sweep=False), headers={"Authorization": f"Bearer {token}"}) as client:
        reply = client.get(
            "/api/v2/search", params={"q": "spring tides at the harbour", "k": 4, "context": 1}
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        other = mint_token(runtime.settings.jwt_secret, user_id="mallory")
        theirs = client.get(
            "/api/v2/search",
            params={"q": "spring tides at the harbour", "context": 1},
            headers={"Authorization": f"Bearer {other}"},
        )
    assert theirs.status_code == 200 and theirs.json()["results"] == []
    assert body["context"] == 1 and len(body["results"]) == 4
    chunks = rows(runtime, "SELECT ordinal, text FROM upload_pipeline.document_chunks ORDER BY ordinal")
    assert len(chunks) >= 8
    text_of = {r["ordinal"]: r["text"] for r in chunks}
    seen: list[int] = []
    for hit in body["results"]:
        carrier = body["results"][hit["passage_rank"] - 1]
        passage = carrier["passage"]
        assert hit["ordinal"] in passage["ordinals"] and hit["rank"] in passage["hit_ranks"]
        if carrier is not hit:
            assert hit["passage"] is None and hit["rank"] > carrier["rank"]
            continue
        first, last = passage["ordinals"][0], passage["ordinals"][-1]
        assert passage["ordinals"] == list(range(first, last + 1))
        assert first == max(0, min(body["results"][r - 1]["ordinal"] for r in passage["hit_ranks"]) - 1)
        assert last == min(
            len(chunks) - 1, max(body["results"][r - 1]["ordinal"] for r in passage["hit_ranks"]) + 1
        )
        for c in passage["chunks"]:
            assert passage["text"][c["start"] : c["end"]] == text_of[c["ordinal"]]
            assert c["heading_path"][0] == "Tides"
        seen += passage["ordinals"]
    assert len(seen) == len(set(seen)), "a chunk came back in two passages"
