"""Parsers of every format, side by side: pages (slides, sheets, chapters ...) per second, and
OCR seconds per page against the PDF text path, on documents written here from one text.

Each document is written with its format's own library from the same paragraphs, so the
figures compare parsers, not contents. Each parse runs in this process (no sandbox: the
sandbox's cost is the same for every kind, see ``bench parse``); each figure is the best of
``repeats`` runs. The OCR figure parses an image-only PDF (its pages rendered from the text
PDF at 300 dpi by pypdfium2, then saved as images by Pillow) with OCR on, and is compared
with the text PDF of the same pages: ``OCR s/page / text s/page``.

    python -m bench formats [--quick]
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from bench.common import Figure, scratch_dir

_WORDS = [
    "harbour",
    "tide",
    "lantern",
    "orchard",
    "ledger",
    "copper",
    "meadow",
    "signal",
    "quarry",
    "violet",
    "basalt",
    "timber",
    "compass",
    "glacier",
    "saffron",
    "beacon",
    "cobalt",
    "thistle",
    "falcon",
    "marble",
    "canyon",
    "ember",
    "willow",
]


def _paragraphs(n: int, rng: random.Random) -> list[str]:
    return [" ".join(rng.choice(_WORDS) for _ in range(60)).capitalize() + "." for _ in range(n)]


def _pptx(path: Path, units: int, rng: random.Random) -> None:
    from pptx import Presentation

    deck = Presentation()
    for i in range(units):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide {i + 1}: {rng.choice(_WORDS)}"
        body = slide.placeholders[1].text_frame
        for j, paragraph in enumerate(_paragraphs(3, rng)):
            (body.paragraphs[0] if j == 0 else body.add_paragraph()).text = paragraph
        slide.notes_slide.notes_text_frame.text = _paragraphs(1, rng)[0]
    deck.save(str(path))


def _xlsx(path: Path, units: int, rng: random.Random, rows: int = 2000) -> None:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    for s in range(units):
        sheet = book.create_sheet(f"Sheet {s + 1}")
        sheet.append(["order", "customer", "fruit", "amount", "note"])
        for r in range(rows):
            sheet.append(
                [r, f"Customer {r}", rng.choice(_WORDS), round(rng.random() * 100, 2), rng.choice(_WORDS)]
            )
    book.save(str(path))


def _csv(path: Path, units: int, rng: random.Random, rows: int = 2000) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["order", "customer", "fruit", "amount", "note"])
        for r in range(units * rows):
            out.writerow(
                [r, f"Customer {r}", rng.choice(_WORDS), round(rng.random() * 100, 2), rng.choice(_WORDS)]
            )


def _json(path: Path, units: int, rng: random.Random, rows: int = 2000) -> None:
    records = [
        {"order": r, "customer": {"name": f"Customer {r}", "fruit": rng.choice(_WORDS)}, "amount": r * 1.5}
        for r in range(units * rows)
    ]
    path.write_text(json.dumps({"orders": records}), encoding="utf-8")


def _epub(path: Path, units: int, rng: random.Random) -> None:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("bench-formats")
    book.set_title("Bench book")
    book.set_language("en")
    chapters = []
    for i in range(units):
        chapter = epub.EpubHtml(title=f"Chapter {i + 1}", file_name=f"ch{i + 1}.xhtml", lang="en")
        body = "".join(f"<p>{p}</p>" for p in _paragraphs(12, rng))
        chapter.content = f"<h1>Chapter {i + 1}</h1>{body}"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.spine = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    epub.write_epub(str(path), book)


def _odt(path: Path, units: int, rng: random.Random) -> None:
    from odfdo import Document, Header, Paragraph

    document = Document("text")
    body = document.body
    for i in range(units):
        body.append(Header(1, f"Section {i + 1}"))
        for p in _paragraphs(12, rng):
            body.append(Paragraph(p))
    document.save(str(path))


def _rtf(path: Path, units: int, rng: random.Random) -> None:
    parts = [r"{\rtf1\ansi\deff0{\fonttbl{\f0 Times;}}"]
    for i in range(units):
        parts.append(r"{\b Section " + str(i + 1) + r"}\par ")
        parts += [p + r"\par " for p in _paragraphs(12, rng)]
    path.write_text("".join(parts) + "}", encoding="ascii")


def _eml(path: Path, units: int, rng: random.Random) -> None:
    message = EmailMessage()
    message["From"] = "Ada <ada@example.org>"
    message["To"] = "Bob <bob@example.org>"
    message["Subject"] = "Quarterly notes"
    message.set_content("\n\n".join(_paragraphs(12 * units, rng)))
    path.write_bytes(bytes(message))


def _text_pdf(path: Path, units: int, rng: random.Random) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for _ in range(units):
        pdf.add_page()
        pdf.multi_cell(0, 7, "\n\n".join(_paragraphs(4, rng)))
    pdf.output(str(path))


def _scanned_pdf(text_pdf: Path, path: Path, dpi: int = 300) -> None:
    """``text_pdf``'s pages rendered at ``dpi`` and saved as an image-only PDF."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(text_pdf)
    try:
        images = [pdf[i].render(scale=dpi / 72).to_pil().convert("L") for i in range(len(pdf))]
    finally:
        pdf.close()
    images[0].save(path, save_all=True, append_images=images[1:], resolution=dpi)


#: kind -> (what a unit is, how many a writer's step writes, writer, steps in a full run, steps in
#: a quick run). A sheet is 2,000 rows of 5 columns; a chapter or section 12 paragraphs of 60
#: words; a slide a title, 3 paragraphs and notes; a PDF page 4 paragraphs.
WRITERS: dict[str, tuple[str, int, Callable[[Path, int, random.Random], None], int, int]] = {
    "pdf": ("page", 1, _text_pdf, 60, 6),
    "pptx": ("slide", 1, _pptx, 60, 6),
    "xlsx": ("sheet", 1, _xlsx, 10, 2),
    "csv": ("row", 2000, _csv, 10, 2),
    "json": ("record", 2000, _json, 10, 2),
    "epub": ("chapter", 1, _epub, 40, 4),
    "odt": ("section", 1, _odt, 40, 4),
    "rtf": ("section", 1, _rtf, 40, 4),
    "eml": ("paragraph", 12, _eml, 40, 4),
}
_SUFFIX = {"eml": "eml", "csv": "csv", "json": "json"}


def _best(parse: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        parse()
        times.append(time.perf_counter() - started)
    return min(times)


def run(quick: bool = False) -> list[Figure]:
    from docingest.providers.parsing import DEFAULT_OPTIONS, ParseOptions, detect, parse_file
    from docingest.providers.parsing.options import ocr_status

    rng = random.Random(19)
    root = scratch_dir("docingest-bench-formats-")
    repeats = 1 if quick else 3
    figures: list[Figure] = []
    pdf_pages_per_s = 0.0
    for kind, (unit, per_step, write, full, small) in WRITERS.items():
        steps = small if quick else full
        path = root / f"bench.{_SUFFIX.get(kind, kind)}"
        write(path, steps, rng)
        detected = detect(path)
        assert detected.kind == kind, (kind, detected)
        seconds = _best(lambda path=path, kind=kind: parse_file(path, kind, options=DEFAULT_OPTIONS), repeats)
        units, mb = steps * per_step, path.stat().st_size / 1e6
        rate = units / seconds
        pdf_pages_per_s = pdf_pages_per_s or rate  # the PDF text path runs first
        figures += [
            Figure(
                "formats", f"{kind}: {unit}s/s ({units:,} {unit}s, {mb:.1f} MB)", round(rate, 1), f"{unit}/s"
            ),
            Figure("formats", f"{kind}: MB/s", round(mb / seconds, 2), "MB/s"),
        ]
        if kind != "pdf":
            figures.append(
                Figure("formats", f"{kind}: {unit}s/s / PDF pages/s", round(rate / pdf_pages_per_s, 2), "x")
            )
    status = ocr_status()
    if not status.available:
        raise RuntimeError(f"OCR is not available here: {status.reason}")
    pages = 2 if quick else 6
    text_pdf, scanned = root / "ocr-text.pdf", root / "ocr-scanned.pdf"
    _text_pdf(text_pdf, pages, rng)
    _scanned_pdf(text_pdf, scanned)
    options = ParseOptions(ocr="auto", tessdata=status.tessdata)
    text_s = _best(lambda: parse_file(text_pdf, "pdf", options=options), repeats) / pages
    ocr_s = _best(lambda: parse_file(scanned, "pdf", options=options), 1) / pages
    doc = parse_file(scanned, "pdf", options=options)
    assert len(doc.ocr_pages) == pages, "the scanned pages were not OCRed"
    figures += [
        Figure("formats", "OCR s/page (300 dpi, scanned PDF)", round(ocr_s, 3), "s/page"),
        Figure("formats", "PDF text path s/page (same pages)", round(text_s, 5), "s/page"),
        Figure("formats", "OCR / text path", round(ocr_s / text_s, 1), "x"),
        Figure(
            "formats",
            "OCR mean confidence",
            round(sum(p.confidence for p in doc.ocr_pages) / len(doc.ocr_pages), 1),
            "%",
        ),
    ]
    return figures
