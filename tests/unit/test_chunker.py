"""The chunker: token limit, no empty chunks, exact offsets, pages and heading paths."""

from __future__ import annotations

import base64
import itertools
import json
import random
from functools import cache

import pytest

from docingest.providers.chunking.chunker import Chunker, chunk_id, fragment_kind, headings, load_tokenizer
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
        assert text[c.start : c.end] == c.text[c.header_chars :], "offsets do not give the chunk back"
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


# ------------------------------------------------------- fragments join their neighbours


@cache
def small_chunker() -> Chunker:
    """A 32-token chunker: fragments appear in texts short enough to write out."""
    return Chunker(load_tokenizer(str(model_dir() / "tokenizer.json")), max_tokens=32)


def words_filling(tokens: int, stem: str = "w") -> str:
    """Words ``stem0 stem1 ...``, as many as fit in ``tokens`` (special tokens included)."""
    words: list[str] = []
    while small_chunker().count_tokens([" ".join([*words, f"{stem}{len(words)}"])])[0] <= tokens:
        words.append(f"{stem}{len(words)}")
    return " ".join(words)


def splitter_pieces(text: str) -> list[str]:
    """What the splitter alone gives, before fragments are joined."""
    ch = small_chunker()
    return [c for _, c, _ in ch._enforce_limit([(s, c) for s, c in ch._spans(text, True) if c.strip()])]


def assert_covers_without_fragments(text: str, chunks: list) -> None:
    """Every non-space character is in a chunk, each chunk fits, none is a fragment."""
    covered = bytearray(len(text))
    for c in chunks:
        assert text[c.start : c.end] == c.text and c.text.strip()
        assert c.token_count == small_chunker().count_tokens([c.text])[0] <= 32
        assert fragment_kind(c.text) is None, f"fragment chunk {c.text!r}"
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
    assert [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()] == []
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


@pytest.mark.parametrize(
    ("piece", "kind"),
    [
        ("# Title", "heading"),
        ("## A\n\n### B", "heading"),
        ("```", "fence"),
        ("```python", "fence"),
        ("```\n}\n```", "fence"),
        ("----", "punctuation"),
        ("* * *\n\n---", "punctuation"),
        ("# Title\n\nText", None),
        ("x = 1", None),
        ("2024", None),
    ],
)
def test_fragment_kinds(piece: str, kind: str | None) -> None:
    assert fragment_kind(piece) == kind
    assert fragment_kind("# Title", markdown=False) is None  # plain text has no headings


def test_heading_before_a_chunk_at_the_limit_takes_part_of_it() -> None:
    body = words_filling(32)
    text = "# Heading\n\n" + body
    assert splitter_pieces(text) == ["# Heading", body]  # the heading alone, the rest full
    chunks = small_chunker().chunk(text)
    assert_covers_without_fragments(text, chunks)
    assert chunks[0].text.startswith("# Heading\n\nw0 w1")
    assert [c.heading_path for c in chunks] == [["Heading"]] * len(chunks)


def test_heading_at_the_end_of_the_text_joins_the_chunk_before() -> None:
    body = words_filling(32)
    text = "Short intro.\n\n" + body + "\n\n## Tail"
    assert splitter_pieces(text)[-1] == "## Tail"
    chunks = small_chunker().chunk(text)
    assert_covers_without_fragments(text, chunks)
    assert chunks[-1].text.endswith(body.split()[-1] + "\n\n## Tail")


def test_heading_joins_the_chunk_after_it_even_when_the_one_before_has_room() -> None:
    text = words_filling(12, "a") + "\n\n## Next\n\n" + words_filling(20, "b") + ". " + words_filling(20, "c")
    assert splitter_pieces(text)[:2] == [words_filling(12, "a"), "## Next"]
    chunks = small_chunker().chunk(text)
    assert_covers_without_fragments(text, chunks)
    assert chunks[0].text == words_filling(12, "a") and chunks[0].heading_path == []
    assert chunks[1].text.startswith("## Next\n\nb0 b1") and chunks[1].heading_path == ["Next"]


def test_opening_fence_joins_the_code_after_it_and_closing_fence_the_code_before() -> None:
    text = "Text before code.\n\n```python\n" + "x = 1\n" * 10 + "```\n\n# After\n\n" + words_filling(32)
    assert splitter_pieces(text)[1:4:2] == ["```python", "```"]  # both fences alone
    chunks = small_chunker().chunk(text)
    assert_covers_without_fragments(text, chunks)
    assert chunks[0].text == "Text before code."
    assert chunks[1].text.startswith("```python\nx = 1\n")
    assert chunks[2].text.startswith("x = 1\n") and chunks[2].text.endswith("x = 1\n```")
    assert chunks[3].text.startswith("# After\n\nw0") and chunks[3].heading_path == ["After"]


def test_rule_at_the_end_of_a_section_joins_the_section_before() -> None:
    text = "# One\n\n" + words_filling(28) + "\n\n----\n\n# Two\n\n" + words_filling(32, "v")
    assert "----" in splitter_pieces(text)
    chunks = small_chunker().chunk(text)
    assert_covers_without_fragments(text, chunks)
    rule = next(c for c in chunks if "----" in c.text)
    assert rule.text.startswith("w") and rule.text.endswith(" w12\n\n----")  # the section's end
    assert rule.heading_path == ["One"]
    assert [c.heading_path for c in chunks if "# Two" in c.text] == [["Two"]]


def test_fragments_join_a_neighbour_whole_when_it_fits() -> None:
    text = "# Title\n\nBody text here.\n\n----\n\n## Next\n\nMore body.\n\n```"
    marks = ["# Title", "Body text here.", "----", "## Next", "More body.", "```"]
    pieces = [(text.index(m), m, small_chunker().count_tokens([m])[0]) for m in marks]
    joined = small_chunker()._absorb_fragments(text, pieces, True)
    assert [(text[s : s + len(c)] == c, c) for s, c, _ in joined] == [
        (True, "# Title\n\nBody text here.\n\n----"),  # the rule ends a section: joins back
        (True, "## Next\n\nMore body.\n\n```"),  # the closing fence at the end: joins back
    ]
    assert [n for _, _, n in joined] == small_chunker().count_tokens([c for _, c, _ in joined])


@pytest.mark.corpus  # 25-95 s on 2 busy cores: a CI step of its own (pytest -m corpus)
@pytest.mark.shared_corpus
def test_corpus_has_no_fragment_chunk_and_covers_all_text() -> None:
    """Every corpus file parsed by the real parsers and chunked as the chunk stage does it.

    The default suite checks the same on the chunks the pipeline stored
    (``tests/e2e/test_corpus.py``); this one needs no database.
    """
    from docingest.providers.parsing import detect, parse_file
    from docingest.stages.chunk import MARKDOWN_KINDS

    fragments = []
    files = sorted(p for p in (CORPUS / "docs").rglob("*") if p.is_file())
    assert len(files) >= 40
    for path in files:
        doc = parse_file(path, detect(path).kind)
        markdown = doc.kind in MARKDOWN_KINDS
        pages = [p for p in doc.pages if not p.empty] or doc.pages
        chunks = chunker().chunk(
            doc.markdown,
            markdown=markdown,
            page_starts=[p.start for p in pages],
            page_numbers=[p.number for p in pages],
        )
        assert_well_formed(doc.markdown, chunks)
        reached = 0  # chunks are in text order: what lies between them must be whitespace
        for c in chunks:
            assert not doc.markdown[reached : c.start].strip(), f"{path.name}: text at {reached} in no chunk"
            reached = max(reached, c.end)
            if fragment_kind(c.text, markdown):
                fragments.append((path.name, c.text[:60]))
        assert not doc.markdown[reached:].strip(), f"{path.name}: its end is in no chunk"
    assert fragments == []


def test_the_context_line_is_title_and_headings_within_its_budget() -> None:
    tok = load_tokenizer(str(model_dir() / "tokenizer.json"))
    c = Chunker(tok, max_tokens=256, context_tokens=16)
    assert c.capacity == 254 and c.max_tokens == 256  # chunks are sized as without a context
    assert (
        c.context("Routine  Vacuuming", ["Routine Vacuuming", "Wraparound"])
        == "Routine Vacuuming > Wraparound"
    )
    assert c.context("", ["A", "", "B"]) == "A > B"
    long_path = ["Part one of the manual", "Chapter two about setup", "Section three", "Innermost"]
    line = c.context("The Guide", long_path)
    assert line.startswith("The Guide > ") and line.endswith("> Innermost")  # outer headings dropped first
    assert len(tok.encode(line, add_special_tokens=False).ids) <= 16
    cut = c.context("word " * 50, [])
    assert len(tok.encode(cut, add_special_tokens=False).ids) == 16  # cut at a token boundary
    assert c.context_budget(200) == 16 and c.context_budget(250) == 6 and c.context_budget(256) == 0
    roomy = c.context("word " * 50, [], budget=c.context_budget(250))  # a fuller chunk leaves less room
    assert len(tok.encode(roomy, add_special_tokens=False).ids) == 6
    assert c.context("Title", ["Heading"], budget=c.context_budget(253)) == ""  # too little room: none
    assert Chunker(tok, max_tokens=256).context("Title", ["Heading"]) == ""  # no budget: no context


def test_chunks_of_long_unbroken_strings_are_named_as_unreadable() -> None:
    """WordPiece reads a word of over 100 characters as one [UNK]: such chunks embed to nearly
    the same vector and match any question, so chunking names them; prose gets no warning, nor
    does base64 (its punctuation splits it into words the tokenizer knows)."""
    import base64
    import random

    from docingest.stages.chunk import unreadable_chunks_warning

    c = chunker()
    prose = "The keeper trimmed the lamp every four hours and logged the barometer readings. " * 40
    rng = random.Random(3)
    blob = " ".join(rng.randbytes(100).hex() for _ in range(400))  # SHA-like hex runs of 200 characters
    assert unreadable_chunks_warning(c, c.chunk(prose, markdown=False)) is None
    chunks = c.chunk(prose + "\n\n" + blob, markdown=False)
    shares = c.unknown_token_shares([ch.text for ch in chunks])
    assert shares[0] == 0.0 and max(shares) == 1.0
    warning = unreadable_chunks_warning(c, chunks)
    bad = sum(share >= 0.5 for share in shares)
    assert warning is not None and warning.startswith(f"{bad} of {len(chunks)} chunks are mostly strings")
    assert "chunk " in warning  # no pages: named by chunk number
    b64 = " ".join(base64.b64encode(rng.randbytes(300)).decode() for _ in range(30))
    assert unreadable_chunks_warning(c, c.chunk(b64, markdown=False)) is None


def _sales_table(rows: int, *, long_row: int | None = None) -> tuple[str, str]:
    header = "| order | customer | fruit | amount |\n| --- | --- | --- | --- |\n"
    lines = []
    for i in range(rows):
        note = " ".join(f"word{i}x{k}" for k in range(400)) if i == long_row else f"Customer {i}"
        lines.append(f"| {i} | {note} | {['apples', 'pears', 'plums'][i % 3]} | {i * 1.5} |")
    text = "# Orders\n\nOne row per order.\n\n" + header + "\n".join(lines) + "\n\n## Totals\n\nAll paid.\n"
    return text, header


def test_a_long_table_is_cut_between_rows_and_every_part_repeats_its_header() -> None:
    text, header = _sales_table(300)
    chunks = chunker().chunk(text, markdown=True)
    assert_well_formed(text, chunks)
    table = [c for c in chunks if "| Customer " in c.text]
    assert len(table) > 5
    assert all(c.text.startswith(header) for c in table), "a table chunk without the header row"
    assert table[0].header_chars == 0 and all(c.header_chars == len(header) for c in table[1:])
    assert (
        all(c.meta()["header_chars"] == len(header) for c in table[1:])
        and "header_chars" not in table[0].meta()
    )
    # Every row is in exactly one chunk, whole: cuts fall between rows.
    rows = [line for c in table for line in c.text[c.header_chars :].splitlines() if "| Customer " in line]
    assert rows == [line for line in text.splitlines() if "| Customer " in line]
    assert all(c.heading_path == ["Orders"] for c in table)


def test_a_table_row_too_long_alone_is_split_within_the_limit() -> None:
    text, _ = _sales_table(40, long_row=20)
    chunks = chunker().chunk(text, markdown=True)
    assert_well_formed(text, chunks)
    covered = "".join(text[c.start : c.end] for c in chunks)
    assert all(f"word20x{k} " in covered for k in (0, 199, 398))


def test_a_short_table_and_a_table_in_a_code_fence_are_left_to_the_splitter() -> None:
    short, _ = _sales_table(3)
    assert all(c.header_chars == 0 for c in chunker().chunk(short, markdown=True))
    fenced_rows = _sales_table(300)[0].split("\n\n", 2)[2].rsplit("\n\n## Totals", 1)[0]
    fenced = "# Code\n\n```\n" + fenced_rows + "\n```\n"
    chunks = chunker().chunk(fenced, markdown=True)
    assert_well_formed(fenced, chunks)
    assert all(c.header_chars == 0 for c in chunks)


def test_split_pages_keeps_every_chunk_on_one_slide_even_a_title_alone() -> None:
    slides = [
        "# Tides\n\nHigh water at six.",
        "# Agenda",
        "# Harbour\n\nBoats leave at noon.",
        "# Close\n\nThanks.",
    ]
    text, starts = "", []
    for slide in slides:
        text += "\n\n" if text else ""
        starts.append(len(text))
        text += slide
    chunks = chunker().chunk(text, page_starts=starts, page_numbers=[1, 2, 3, 4], split_pages=True)
    assert_well_formed(text, chunks)
    assert [(c.page, c.page_end, c.heading_path) for c in chunks] == [
        (1, 1, ["Tides"]),
        (2, 2, ["Agenda"]),  # a title-only slide stays its own chunk: it does not join the next slide
        (3, 3, ["Harbour"]),
        (4, 4, ["Close"]),
    ]
    # without it, short slides share a chunk (as a PDF's pages do)
    assert len(chunker().chunk(text, page_starts=starts, page_numbers=[1, 2, 3, 4])) == 1


def test_a_long_table_whose_first_row_is_too_long_keeps_its_header_rows_in_a_chunk() -> None:
    text, header = _sales_table(60, long_row=0)
    chunks = chunker().chunk(text, markdown=True)
    assert_well_formed(text, chunks)
    covered = "".join(text[c.start : c.end] for c in chunks)
    assert header.split("\n")[0] in covered  # the header row itself, not only its repeats
