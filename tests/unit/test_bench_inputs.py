"""The generated inputs of the scaling benchmarks: Markdown notes (bench/common.py) and the
large PDF (bench/bigpdf.py)."""

from __future__ import annotations

from pathlib import Path

import pypdfium2
from bench.bigpdf import make_pdf
from bench.common import note_markdown


def test_notes_are_distinct_small_markdown_with_headings() -> None:
    notes = [note_markdown(i) for i in range(200)]
    assert len(set(notes)) == 200
    text = notes[7].decode()
    assert text.startswith("# Note 7\n")
    assert text.count("\n## Section ") == 3
    assert 1000 < len(notes[7]) < 3000


def test_the_generated_pdf_has_the_pages_asked_with_text_and_headings(tmp_path: Path) -> None:
    path = tmp_path / "big.pdf"
    size = make_pdf(path, 12)
    assert size == path.stat().st_size
    pdf = pypdfium2.PdfDocument(path)
    try:
        assert len(pdf) == 12
        first = pdf[0].get_textpage().get_text_range()
        eleventh = pdf[10].get_textpage().get_text_range()
        second = pdf[1].get_textpage().get_text_range()
    finally:
        pdf.close()
    assert "Chapter 1:" in first and "Chapter 2:" in eleventh and "Chapter" not in second
    assert "Page 2, line 12:" in second
