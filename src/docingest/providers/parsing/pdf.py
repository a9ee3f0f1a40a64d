"""PDF -> text with per-page offsets, via pypdfium2 (PDFium).

Pages are opened, read and closed one at a time, so memory stays bounded by one
page plus the accumulated text, even on documents of thousands of pages.
PDFium is not thread-safe, and the worker runs stages in threads: every use of
PDFium here holds :data:`PDFIUM_LOCK`, so PDFs are parsed one at a time per
process (run more worker processes for PDF throughput).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from docingest.errors import PdfCorrupt, PdfEncrypted
from docingest.providers.parsing.base import PageProgress, ParsedDocument, ParsedPage

#: Text put between two non-empty pages in ``ParsedDocument.markdown``.
PAGE_SEPARATOR = "\n\n"

#: Serialises all PDFium calls of this process (PDFium keeps global state).
PDFIUM_LOCK = threading.Lock()

_PASSWORD_ERRORS = {pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY}
_MAX_LISTED_PAGES = 10


class PdfParser:
    """Extracts the text layer of a PDF, page by page."""

    def parse(self, path: Path, on_progress: PageProgress | None = None) -> ParsedDocument:
        """Parse the PDF at ``path``; ``on_progress(pages_parsed, pages_total)`` after each page.

        Returns:
            A ``ParsedDocument`` of kind ``'pdf'``: one ``ParsedPage`` per PDF page
            (1-based ``number``), ``markdown[p.start:p.end]`` being that page's
            text with ``\\r\\n`` turned into ``\\n``; non-empty pages are joined by
            :data:`PAGE_SEPARATOR`; pages with only whitespace are ``empty`` with
            ``start == end``. ``metadata`` holds the non-empty Info entries
            (``Title``, ``Author``, ``Subject``, ``Keywords``, ``Creator``,
            ``Producer``, ``CreationDate``, ``ModDate``). No heading structure is
            recovered. A PDF with only an owner password (empty user password)
            opens normally.

        Raises:
            PdfEncrypted: the PDF needs a user password (or uses an unsupported
                security handler).
            PdfCorrupt: PDFium cannot load it (damaged, truncated, not a PDF, no
                pages), or no page at all could be read.
            OSError: the file cannot be opened.
        """
        with PDFIUM_LOCK:
            try:
                pdf = pdfium.PdfDocument(path)
            except pdfium.PdfiumError as exc:
                raise _translate_load_error(exc, path) from exc
            try:
                return _extract(pdf, on_progress)
            finally:
                pdf.close()


def _translate_load_error(exc: pdfium.PdfiumError, path: Path) -> Exception:
    """Map a PDFium load failure to the docingest error for it."""
    code = exc.err_code
    if code in _PASSWORD_ERRORS:
        return PdfEncrypted(
            f"the PDF is encrypted and needs a password to open ({exc}); "
            "remove the password, e.g. `qpdf --decrypt in.pdf out.pdf`, and upload again"
        )
    if code == pdfium_c.FPDF_ERR_FILE:
        return OSError(f"PDFium could not open the file: {exc}")  # no server path: it is shown to users
    return PdfCorrupt(
        f"the PDF cannot be loaded ({exc}); it may be truncated or damaged: "
        "re-export it, or repair it with `qpdf in.pdf out.pdf`, and upload again"
    )


def _page_text(pdf: pdfium.PdfDocument, index: int) -> str:
    """Text of page ``index`` (0-based), ``\\r\\n`` normalised; closes what it opens."""
    page = pdf.get_page(index)
    try:
        textpage = page.get_textpage()
        try:
            # surrogatepass: keep lone UTF-16 surrogates for the validation stage.
            text = textpage.get_text_range(errors="surrogatepass")
        finally:
            textpage.close()
    finally:
        page.close()
    return text.replace("\r\n", "\n")


def _extract(pdf: pdfium.PdfDocument, on_progress: PageProgress | None = None) -> ParsedDocument:
    warnings: list[str] = []
    try:
        metadata = {k: str(v) for k, v in pdf.get_metadata_dict(skip_empty=True).items()}
    except pdfium.PdfiumError as exc:
        metadata = {}
        warnings.append(f"PDF metadata could not be read: {exc}")

    total = len(pdf)
    chunks: list[str] = []
    pages: list[ParsedPage] = []
    empty: list[int] = []
    unreadable: list[int] = []
    offset = 0
    for index in range(total):
        number = index + 1
        if on_progress is not None and index:
            on_progress(index, total)  # pages read so far
        try:
            text = _page_text(pdf, index)
        except pdfium.PdfiumError:
            unreadable.append(number)
            pages.append(ParsedPage(number, offset, offset, True))
            continue
        if not text.strip():
            empty.append(number)
            pages.append(ParsedPage(number, offset, offset, True))
            continue
        if chunks:
            chunks.append(PAGE_SEPARATOR)
            offset += len(PAGE_SEPARATOR)
        chunks.append(text)
        pages.append(ParsedPage(number, offset, offset + len(text), False))
        offset += len(text)

    if unreadable and len(unreadable) == total:
        raise PdfCorrupt(f"none of the {total} pages of the PDF could be read; re-export or repair it")
    if unreadable:
        warnings.append(f"{len(unreadable)} of {total} pages could not be read: {_list_pages(unreadable)}")
    if empty:
        warnings.append(
            f"{len(empty)} of {total} pages have no text layer (scanned images?): {_list_pages(empty)}"
        )
    return ParsedDocument(
        markdown="".join(chunks), kind="pdf", pages=pages, metadata=metadata, warnings=warnings
    )


def _list_pages(numbers: list[int]) -> str:
    """``'pages 3, 4, 9'``, with at most ten numbers shown."""
    shown = ", ".join(str(n) for n in numbers[:_MAX_LISTED_PAGES])
    more = f" and {len(numbers) - _MAX_LISTED_PAGES} more" if len(numbers) > _MAX_LISTED_PAGES else ""
    return f"pages {shown}{more}"
