"""Passages of search context, without a database: which windows of ordinals are read around the
hits, and how their chunks are joined into one text to paste."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from docingest.providers.chunking.chunker import Chunker, load_tokenizer
from docingest.providers.embedding.local import model_dir
from docingest.services.search import SearchHit, attach_passages, context_windows, join_chunks


def _hit(document: str, ordinal: int, rank: int) -> SearchHit:
    return SearchHit(
        document_id=document,
        filename=f"{document}.md",
        page=None,
        score=0.5,
        text=f"{document} {ordinal}",
        chunk_id=f"{document}-{ordinal}",
        ordinal=ordinal,
        rank=rank,
    )


def _spans(windows: list) -> list[tuple[str, int, int, list[int]]]:
    return [(w.document_id, w.first, w.last, [h.rank for h in w.hits]) for w in windows]


def test_no_windows_without_context() -> None:
    assert context_windows([_hit("a", 3, 1)], 0) == []


def test_windows_start_at_ordinal_zero_and_merge_when_they_overlap_or_touch() -> None:
    hits = [_hit("b", 9, 1), _hit("a", 1, 2), _hit("a", 4, 3), _hit("a", 9, 4), _hit("a", 7, 5)]
    # a: 0-2 and 3-5 touch; 6-8 and 8-10 overlap; 3-5 and 6-8 touch too: one run 0-10.
    assert _spans(context_windows(hits, 1)) == [("a", 0, 10, [2, 3, 5, 4]), ("b", 8, 10, [1])]
    hits = [_hit("a", 1, 1), _hit("a", 5, 2)]
    assert _spans(context_windows(hits, 1)) == [("a", 0, 2, [1]), ("a", 4, 6, [2])]  # 3 between
    assert _spans(context_windows(hits, 2)) == [("a", 0, 7, [1, 2])]  # 0-3 and 3-7 overlap


def test_the_best_hit_of_a_window_carries_its_passage() -> None:
    hits = [_hit("a", 5, 1), _hit("a", 3, 2), _hit("a", 20, 3)]
    windows = context_windows(hits, 1)
    rows = [
        {"chunk_id": f"a-{o}", "document_id": "a", "ordinal": o, "text": f"chunk {o}", "meta": {}}
        for o in (20, 2, 3, 4, 5, 6, 19)  # any order; 21 is past the document's end
    ]
    attach_passages(windows, rows)
    first, second, third = hits
    assert first.passage is not None and second.passage is None and third.passage is not None
    assert [h.passage_rank for h in hits] == [1, 1, 3]
    assert first.passage.ordinals == [2, 3, 4, 5, 6] and first.passage.hit_ranks == [1, 2]
    assert [c.hit_rank for c in first.passage.chunks] == [None, 2, None, 1, None]
    assert third.passage.ordinals == [19, 20]
    assert first.passage.text == "\n\n".join(f"chunk {o}" for o in range(2, 7))  # no offsets known


def test_chunks_are_joined_by_the_whitespace_they_were_cut_at() -> None:
    document = "Alpha one.\n\nBeta two. Gamma three.Delta"
    pieces = [("Alpha one.", 0, 10), ("Beta two.", 12, 21), ("Gamma three.", 22, 34), ("Delta", 34, 39)]
    text, spans = join_chunks(pieces)
    # two characters apart: a blank line; one: a newline; touching: nothing.
    assert text == "Alpha one.\n\nBeta two.\nGamma three.Delta"
    assert [text[a:b] for a, b in spans] == [p for p, _, _ in pieces]
    assert document.split() == text.split()


def test_text_shared_by_overlapping_chunks_appears_once() -> None:
    document = "one two three four five six"
    pieces = [("one two three", 0, 13), ("three four five", 8, 23), ("five six", 19, 27)]
    text, spans = join_chunks(pieces)
    assert text == document
    assert spans == [(0, 13), (8, 23), (19, 27)]


def test_unknown_or_inconsistent_offsets_fall_back_to_a_blank_line() -> None:
    text, spans = join_chunks([("first", None, None), ("second", 3, 9)])
    assert text == "first\n\nsecond" and [text[a:b] for a, b in spans] == ["first", "second"]
    # Claimed overlap whose text does not match what precedes: appended whole, not cut.
    text, spans = join_chunks([("abcdef", 0, 6), ("XYZ tail", 3, 11)])
    assert text == "abcdef\n\nXYZ tail" and [text[a:b] for a, b in spans] == ["abcdef", "XYZ tail"]


@pytest.mark.parametrize("overlap", [0, 24])
def test_the_real_chunkers_chunks_join_back_into_the_document(overlap: int) -> None:
    """Every non-space character of the parsed text, once and in order, and each chunk's span."""
    rng = random.Random(overlap)
    words = ["tide", "moon", "harbour", "lens", "fog", "signal", "rope", "loop", "keel", "mast"]
    sections = []
    for s in range(12):
        paragraphs = [
            " ".join(rng.choice(words) for _ in range(rng.randint(20, 140))) + "." for _ in range(3)
        ]
        sections.append(f"## Section {s}\n\n" + "\n\n".join(paragraphs))
    document = "# Sea\n\n" + "\n\n".join(sections) + "\n"
    chunker = Chunker(
        load_tokenizer(str(model_dir() / "tokenizer.json")), max_tokens=64, overlap_tokens=overlap
    )
    chunks = chunker.chunk(document, markdown=True)
    assert len(chunks) > 10
    text, spans = join_chunks([(c.text, c.start, c.end) for c in chunks])
    assert [text[a:b] for a, b in spans] == [c.text for c in chunks]
    assert re.sub(r"\s+", "", text) == re.sub(r"\s+", "", document)
    if overlap:
        assert any(b.start < a.end for a, b in itertools.pairwise(chunks)), "the chunks overlap"
