"""PDF parse stage vs raw pypdfium2 text extraction on ``source2e.pdf`` (1,221 pages).

Raw: open the PDF with pypdfium2 and read each page's text (``get_text_range``),
nothing else. Stage: the worker's ``parse_queued`` handler (``ParseDocument``)
on the same file in local storage: sniffed kind, PDFium under the process lock,
page map, CR/LF folding, the parsed artifact (text + page map) written to
storage. The two alternate; each figure is the best of ``repeats`` runs.
Target: stage speed >= 0.8x raw (``raw_s / stage_s``).

    python -m bench parse [--quick]
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import SOURCE2E, Figure, StageCtx, scratch_dir, stored_document


def raw_extract(path: Path) -> tuple[int, int]:
    """``(pages, characters)`` read with plain pypdfium2."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    chars = 0
    try:
        for i in range(len(pdf)):
            page = pdf[i]
            text_page = page.get_textpage()
            chars += len(text_page.get_text_range())
            text_page.close()
            page.close()
        return len(pdf), chars
    finally:
        pdf.close()


def run(quick: bool = False) -> list[Figure]:
    from docingest.providers.parsing import parse_file
    from docingest.providers.storage.local import LocalStorage
    from docingest.stages.parse import ParseDocument

    storage = LocalStorage(scratch_dir("docingest-bench-parse-"))
    document = stored_document(storage, SOURCE2E)
    handler = ParseDocument(storage, parse_file)
    raw_times, stage_times = [], []
    pages = chars = 0
    result = None
    for _ in range(1 if quick else 3):
        started = time.perf_counter()
        pages, chars = raw_extract(SOURCE2E)
        raw_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = handler.run(StageCtx(document, {"detected_kind": "pdf"}))  # type: ignore[arg-type]
        stage_times.append(time.perf_counter() - started)
    assert result is not None and result.progress.pages_total == pages
    raw_s, stage_s = min(raw_times), min(stage_times)
    return [
        Figure("parse", "source2e.pdf pages", pages),
        Figure("parse", "raw pypdfium2", round(raw_s, 3), "s"),
        Figure("parse", "parse stage", round(stage_s, 3), "s"),
        Figure("parse", "raw pypdfium2 pages/s", round(pages / raw_s, 1), "page/s"),
        Figure("parse", "parse stage pages/s", round(pages / stage_s, 1), "page/s"),
        Figure("parse", "stage speed / raw", round(raw_s / stage_s, 3), "x", ">= 0.8"),
        Figure("parse", "stage chars / raw chars", round((result.progress.chars or 0) / chars, 3), "x"),
    ]
