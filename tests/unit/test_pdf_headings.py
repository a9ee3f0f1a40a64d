"""Headings recovered from PDFs (outline, else fonts) and carried into chunks' heading paths.

The small PDFs are written here with fpdf2 (a dev dependency) in the standard Helvetica
faces: headings larger and bold, or, for the outline case, in the body font so that only
the outline can tell them apart. The text is chunked as the chunk stage does it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from fpdf import FPDF

from docingest.providers.chunking.chunker import Chunk, Chunker, headings, load_tokenizer
from docingest.providers.embedding.local import model_dir
from docingest.providers.parsing import ParsedDocument, parse_file
from docingest.stages.chunk import MARKDOWN_KINDS
from tests.conftest import CORPUS

#: (outline level, title) of the test document's sections, in order.
SECTIONS = [
    (0, "1 Introduction"),
    (1, "1.1 Background"),
    (1, "1.2 Scope"),
    (0, "2 Design"),
    (1, "2.1 Storage"),
    (2, "2.1.1 Files on disk"),
]
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]  # one marker word per section
#: Font (size, style) of a heading by outline level, for the PDF without an outline.
HEADING_FONTS = {0: (20, "B"), 1: (15, "B"), 2: (11, "B")}


@cache
def chunker() -> Chunker:
    return Chunker(load_tokenizer(str(model_dir() / "tokenizer.json")), max_tokens=256)


def chunk(doc: ParsedDocument) -> list[Chunk]:
    """What the chunk stage makes of a parsed document."""
    pages = [p for p in doc.pages if not p.empty] or doc.pages
    return chunker().chunk(
        doc.markdown,
        markdown=doc.kind in MARKDOWN_KINDS,
        page_starts=[p.start for p in pages],
        page_numbers=[p.number for p in pages],
    )


def paragraphs(word: str) -> list[str]:
    """Three paragraphs of about 130 words, every sentence naming the section's marker word."""
    return [
        " ".join(f"In part {word} sentence {p}.{i} tells of item {i} in some detail." for i in range(12))
        for p in range(3)
    ]


def write_pdf(path: Path, *, outline: bool, body_lines: tuple[str, ...] = ()) -> Path:
    """The :data:`SECTIONS` document; with ``outline`` its headings are in the body font."""
    pdf = FPDF()
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    for (level, title), word in zip(SECTIONS, WORDS, strict=True):
        if outline:
            pdf.start_section(title, level=level)
            pdf.set_font("Helvetica", "", 11)
        else:
            size, style = HEADING_FONTS[level]
            pdf.set_font("Helvetica", style, size)
        pdf.multi_cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        for text in paragraphs(word):
            pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
    for line in body_lines:
        pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


def expected_paths() -> dict[str, list[str]]:
    """Marker word -> the heading path of its section."""
    out: dict[str, list[str]] = {}
    path: list[tuple[int, str]] = []
    for (level, title), word in zip(SECTIONS, WORDS, strict=True):
        path = [p for p in path if p[0] < level] + [(level, title)]
        out[word] = [t for _, t in path]
    return out


def assert_paths_follow_sections(chunks: list[Chunk]) -> None:
    """Every chunk carries the heading path of the section its first sentence is in."""
    expected = expected_paths()
    assert len(chunks) >= len(SECTIONS)
    seen = set()
    for c in chunks:
        word = re.search(r"In part (\w+)", c.text)
        assert word is not None, f"chunk without body text: {c.text!r}"
        assert c.heading_path == expected[word.group(1)], c.text[:80]
        seen.add(word.group(1))
    assert seen == set(WORDS)


def assert_marked_only(marked: str, raw: str) -> None:
    """``marked`` is PDFium's ``raw`` page text with headings marked and nothing else changed.

    A heading line is ``#``*n, a space and one or more raw lines joined by spaces; a body line
    that starts like a heading or a fence gets a backslash; every other line is the raw line.
    """
    raw_lines = raw.split("\n")
    k = 0
    for line in marked.split("\n"):
        heading = re.fullmatch(r"#{1,6} (.*)", line)
        if heading:
            span = next((s for s in range(1, 6) if " ".join(raw_lines[k : k + s]) == heading.group(1)), None)
            assert span is not None, f"heading {line!r} is not raw lines {raw_lines[k : k + 3]!r}"
            k += span
        else:
            assert line in (raw_lines[k], "\\" + raw_lines[k]), (line, raw_lines[k])
            assert line == raw_lines[k] or re.match(r"#{1,6}[ \t]|```|~~~", raw_lines[k])
            k += 1
    assert k == len(raw_lines)


def test_pdf_outline_gives_heading_lines_and_paths(tmp_path: Path) -> None:
    doc = parse_file(write_pdf(tmp_path / "outline.pdf", outline=True), "pdf")
    found = [(level - 1, title) for _, level, title in headings(doc.markdown)]
    assert found == SECTIONS  # levels from the outline: every title is body text here
    chunks = chunk(doc)
    assert_paths_follow_sections(chunks)
    assert all(c.page is not None and 1 <= c.page <= c.page_end <= len(doc.pages) for c in chunks)


def test_pdf_without_outline_gets_headings_from_fonts(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "fonts.pdf", outline=False, body_lines=("# not a heading",))
    doc = parse_file(path, "pdf")
    found = [(level - 1, title) for _, level, title in headings(doc.markdown)]
    assert found == SECTIONS  # 20 pt bold, 15 pt bold, 11 pt bold over an 11 pt body
    assert "\n\\# not a heading" in doc.markdown  # body text that looks like a heading is escaped
    assert_paths_follow_sections(chunk(doc))


def test_pdf_outline_title_missing_from_its_page_starts_that_page(tmp_path: Path) -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", "", 11)
    pdf.add_page()
    pdf.start_section("Overview")
    pdf.multi_cell(0, 6, "Overview\nThe first page says what follows.", new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()
    pdf.start_section("Appendix notes", level=1)  # a bookmark whose title is not printed
    pdf.multi_cell(0, 6, "Odds and ends of the appendix.", new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(tmp_path / "missing.pdf"))
    doc = parse_file(tmp_path / "missing.pdf", "pdf")
    first, second = (doc.markdown[p.start : p.end] for p in doc.pages)
    assert first == "# Overview\nThe first page says what follows."
    assert second == "## Appendix notes\nOdds and ends of the appendix."
    assert [(level, title) for _, level, title in headings(doc.markdown)] == [
        (1, "Overview"),
        (2, "Appendix notes"),
    ]


def test_pdf_outline_title_missing_from_its_page_goes_where_its_destination_is(tmp_path: Path) -> None:
    """A bookmark whose title is not printed lands at its destination's height, not first; one
    whose destination is below the page's last line (a page break fell between the destination
    and its heading, as fpdf2 and LaTeX do) is looked for on the next page."""
    pdf = FPDF()
    pdf.set_auto_page_break(True, margin=20)
    pdf.set_font("Helvetica", "", 11)
    pdf.add_page()
    pdf.start_section("Overview")
    pdf.multi_cell(0, 6, "Overview\nThe first page says what follows.", new_x="LMARGIN", new_y="NEXT")
    pdf.start_section("Unprinted aside", level=1)  # mid-page, its title not printed
    pdf.multi_cell(0, 6, "An aside in the middle of the page.", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(pdf.h - 22)  # the next destination sits below the last line that fits
    pdf.start_section("Later part")
    pdf.multi_cell(0, 6, "Later part\n" + "The later part begins on the next page. " * 8)
    pdf.output(str(tmp_path / "break.pdf"))
    doc = parse_file(tmp_path / "break.pdf", "pdf")
    first, second = (doc.markdown[p.start : p.end] for p in doc.pages)
    assert first.startswith("# Overview\nThe first page says what follows.\n## Unprinted aside\nAn aside")
    assert "Later part" not in first
    assert second.startswith("# Later part\n"), second[:80]


@pytest.mark.shared_corpus
@pytest.mark.parametrize(
    ("name", "subsection"),
    [("hyperref.pdf", "4.1 Save catcodes"), ("usrguide.pdf", "2.2 Describing argument types")],
)
def test_corpus_pdf_with_an_outline_has_heading_paths(name: str, subsection: str) -> None:
    doc = parse_file(CORPUS / "docs" / "pdf" / name, "pdf")
    chunks = chunk(doc)
    with_path = [c for c in chunks if c.heading_path]
    assert len(with_path) >= 0.9 * len(chunks), f"{len(with_path)} of {len(chunks)}"
    # a subsection of the outline, one level under its section
    assert any(len(c.heading_path) == 2 and c.heading_path[-1] == subsection for c in chunks)


@pytest.mark.shared_corpus
def test_corpus_pdf_without_an_outline_has_heading_paths_from_fonts() -> None:
    doc = parse_file(CORPUS / "docs" / "pdf" / "lamport-manual.pdf", "pdf")
    chunks = chunk(doc)
    assert all(c.heading_path for c in chunks)
    assert chunks[0].heading_path[0] == "Errata to the Second Edition of the LATEX Manual"  # 17 pt
    assert ["Errata to the Second Edition of the LATEX Manual", "Errors Corrected in the First Printing"] == (
        chunks[1].heading_path[:2]
    )
