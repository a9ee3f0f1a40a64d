"""The chunker: token limit, no empty chunks, exact offsets, pages and heading paths."""

from __future__ import annotations

import base64
import itertools
import json
import random
from functools import cache

import pytest

from docingest.providers.chunking.chunker import Chunker, chunk_id, headings, load_tokenizer
from docingest.providers.embedding.local import model_dir
from tests.conftest import CORPUS


@cache
def chunker(overlap: int = 0) -> Chunker:
    return Chunker(
        load_tokenizer(str(model_dir() / "tokenizer.json")), max_tokens=256, overlap_tokens=overlap
    )


def assert_well_formed(text: str, chunks: list) -> None:
    assert chunks, "no chunk produced"
    counts = chunker().count_tokens([c.text for c in chunks])
    for c, n in zip(chunks, counts):
        assert c.text.strip(), "empty or whitespace-only chunk"
        assert text[c.start : c.end] == c.text, "offsets do not give the chunk back"
        assert n == c.token_count <= 256
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_tokenizer_counts_are_not_capped_at_128() -> None:
    tok = load_tokenizer(str(model_dir() / "tokenizer.json"))
    assert len(tok.encode("word " * 400).ids) > 400


@pytest.mark.shared_corpus
def test_corpus_markdown_chunks_fit_and_keep_headings() -> None:
    text = (CORPUS / "docs/md/repeatable-installs.md").read_text()
    chunks = chunker().chunk(text, markdown=True)
    assert_well_formed(text, chunks)
    # the path in effect where each chunk starts: a later chunk sits under "# Repeatable Installs"
    assert all(c.heading_path[0] == "Repeatable Installs" for c in chunks[1:])
    assert any(c.heading_path == ["Repeatable Installs", "Hash-checking"] for c in chunks)


@pytest.mark.parametrize("name", ["base64", "cjk", "minified_json"])
def test_text_without_whitespace_is_cut_within_the_limit(name: str) -> None:
    rng = random.Random(7)
    if name == "base64":
        blob = base64.b64encode(rng.randbytes(150_000)).decode()
        text = f"# Image\n\n![x](data:image/png;base64,{blob[:200_000]})\n"
    elif name == "cjk":
        text = "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(40_000))
    else:
        text = json.dumps(
            [{"k": rng.random(), "v": "x" * rng.randint(1, 40)} for _ in range(2500)], separators=(",", ":")
        )
    chunks = chunker().chunk(text, markdown=True)
    assert_well_formed(text, chunks)


def test_pages_are_attributed_by_offset() -> None:
    pages = ["alpha " * 300, "beta " * 300, "gamma " * 300]
    text = "\n\n".join(pages)
    starts = [0, len(pages[0]) + 2, len(pages[0]) + len(pages[1]) + 4]
    chunks = chunker().chunk(text, markdown=False, page_starts=starts, page_numbers=[1, 2, 3])
    assert_well_formed(text, chunks)
    for c in chunks:
        first_word = c.text.split()[0]
        assert c.page == {"alpha": 1, "beta": 2, "gamma": 3}[first_word]
        assert c.page <= c.page_end


def test_overlap_repeats_text_between_neighbours() -> None:
    text = " ".join(f"word{i}" for i in range(3000))
    chunks = chunker(overlap=32).chunk(text, markdown=False)
    assert_well_formed(text, chunks)
    # overlap applies inside each first-level piece (at most piece_chars long); piece
    # boundaries fall on section/paragraph breaks, where neighbours do not share text
    overlapping = sum(b.start < a.end for a, b in itertools.pairwise(chunks))
    assert overlapping >= 0.7 * (len(chunks) - 1)


def test_whitespace_only_text_gives_no_chunk() -> None:
    assert chunker().chunk(" \n\t\n  ", markdown=True) == []


def test_headings_inside_code_fences_are_ignored() -> None:
    text = "# Top\n\n```\n# not a heading\n```\n\n## Sub\n"
    assert [(lvl, t) for _, lvl, t in headings(text)] == [(1, "Top"), (2, "Sub")]


def test_chunk_ids_are_deterministic() -> None:
    import uuid

    doc = uuid.uuid4()
    assert chunk_id(doc, 3) == chunk_id(doc, 3) != chunk_id(doc, 4)
    assert chunk_id(doc, 3) != chunk_id(uuid.uuid4(), 3)


def test_overlap_must_be_below_capacity() -> None:
    with pytest.raises(ValueError):
        Chunker(load_tokenizer(str(model_dir() / "tokenizer.json")), overlap_tokens=300)
