"""PDF -> text with per-page offsets and Markdown headings, via pypdfium2 (PDFium).

Pages are opened, read and closed one at a time, so memory stays bounded by one
page plus the accumulated text, even on documents of thousands of pages.
PDFium is not thread-safe, and the worker runs stages in threads: every use of
PDFium here holds :data:`PDFIUM_LOCK`, so PDFs are parsed one at a time per
process (run more worker processes for PDF throughput).

Headings are written the way the chunker reads them in every other kind: ATX
Markdown lines (``## 4.1 Save catcodes``). They come from the document outline
(bookmarks) when the PDF has one, and otherwise from the fonts of the text layer.

A page without a text layer (a scan) is rendered and read by OCR (``ocr.py``) when
``ParseOptions.ocr`` allows it.
"""

from __future__ import annotations

import bisect
import ctypes
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from docingest.errors import PdfCorrupt, PdfEncrypted
from docingest.providers.parsing.base import (
    DEFAULT_OPTIONS,
    OcrPage,
    PageJoiner,
    PageProgress,
    ParsedDocument,
    ParseOptions,
    escape_markdown,
    numbers_text,
)

#: Serialises all PDFium calls of this process (PDFium keeps global state).
PDFIUM_LOCK = threading.Lock()

#: Deepest Markdown heading level written (``######``); deeper outline levels are clamped to it.
MAX_HEADING_LEVEL = 6
#: Without an outline: a line whose font is at least this many times the body size is a heading.
LARGE_FONT_RATIO = 1.15
#: Without an outline: the body size is the largest size carrying at least this share of the
#: characters (prose beside denser code listings in a smaller font is still the body).
BODY_SHARE = 0.1
#: Without an outline: a bold line is a heading only when at most this many characters long.
MAX_FONT_HEADING_CHARS = 120

_PASSWORD_ERRORS = {pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY}
#: Font names of bold faces (PostScript names: ``Helvetica-Bold``, ``CMBX10``, ``Arial,Bold`` ...).
_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demi|cmbx|cmssbx|-bd\b|\bbd\b", re.IGNORECASE)
#: FontDescriptor weight at and above which a face is bold (the CSS/OpenType scale: 700 = bold).
_BOLD_WEIGHT = 600
_REGULAR_WEIGHT = 500  # under it a face is regular whatever its name
#: A letter (a word character that is neither a digit nor ``_``).
_LETTER = re.compile(r"[^\W\d_]")
_MAX_LARGE_RUN = 3  # lines of one large heading wrapped over several lines
_MAX_BOLD_RUN = 2  # more consecutive bold lines are a bold paragraph, not a heading
_FONT_NAME_BUFFER = 128


class PdfParser:
    """Extracts the text layer of a PDF, page by page, with its headings as Markdown lines."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the PDF at ``path``; ``on_progress(pages_parsed, pages_total)`` after each page.

        Returns:
            A ``ParsedDocument`` of kind ``'pdf'``: one ``ParsedPage`` per PDF page
            (1-based ``number``), ``markdown[p.start:p.end]`` being that page's
            text (see below); non-empty pages are joined by :data:`PAGE_SEPARATOR`;
            pages with only whitespace are ``empty`` with ``start == end``.
            ``metadata`` holds the non-empty Info entries (``Title``, ``Author``,
            ``Subject``, ``Keywords``, ``Creator``, ``Producer``, ``CreationDate``,
            ``ModDate``). A PDF with only an owner password (empty user password)
            opens normally.

            A page's text is PDFium's text layer, ``\\r\\n`` turned into ``\\n``, with
            headings marked as ATX Markdown lines: a heading line gets ``#`` (one per
            level, at most :data:`MAX_HEADING_LEVEL`) and a space in front, and the
            lines of a heading wrapped over several lines are joined by spaces into one.
            Headings come from the outline (bookmarks) when the PDF has one: each
            entry's title is looked for at a line start on its destination page
            (letters and digits compared case-insensitively, anything else between
            them ignored; among several places, the one nearest the destination's
            vertical position); an entry not found there is written as its own
            heading line at the start of that page. Outline level 0 is ``#``.
            Without an outline, a line is a heading when its font is at least
            :data:`LARGE_FONT_RATIO` times the body size (the largest size carrying
            at least :data:`BODY_SHARE` of the characters) or when it is bold (its first and last character in a bold
            face), at least body size and at most :data:`MAX_FONT_HEADING_CHARS`
            characters; levels rank the distinct (size, bold) styles, largest first.
            A body line that starts like a heading or a code fence (``# ``, three
            backticks, ``~~~``) gets a ``\\`` in front so it is not read as one.

            OCR (``options.ocr``): with ``'auto'`` a page without a text layer (only
            whitespace) is rendered by PDFium at ``options.ocr_dpi`` (greyscale) and read by
            Tesseract; ``'always'`` does so for every page, its text layer ignored; ``'off'``
            never. An OCRed page's text is Tesseract's (paragraphs separated by a blank line),
            its outline entries placed as above (by title, else at the page's start), and
            one :class:`OcrPage` per OCRed page is in ``ocr_pages``; a warning names the pages
            read with low confidence (their text is kept).

        Raises:
            PdfEncrypted: the PDF needs a user password (or uses an unsupported
                security handler).
            PdfCorrupt: PDFium cannot load it (damaged, truncated, not a PDF, no
                pages), or no page at all could be read.
            OcrFailed: Tesseract cannot load its language data or fails on a page.
            OSError: the file cannot be opened.
        """
        with PDFIUM_LOCK:
            try:
                pdf = pdfium.PdfDocument(path)
            except pdfium.PdfiumError as exc:
                raise _translate_load_error(exc, path) from exc
            try:
                return _extract(pdf, on_progress, options=options)
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


@dataclass(frozen=True)
class _Bookmark:
    """One outline entry: ``level`` 1-based (clamped), ``y`` the destination's top in PDF points."""

    title: str
    level: int
    y: float | None


@dataclass
class _Page:
    """One page's lines (split at PDFium's ``\\r\\n``) and the headings found among them.

    ``marks`` maps a line index to ``(level, lines)``: that line and the ``lines - 1``
    following ones form one heading. ``inserted`` holds ``(line index, level, title)`` of the
    outline headings not found in the text, written before that line (where the destination's
    height falls; the first line when it names none). ``styles`` (font path only) holds
    ``(line index, size in points, bold)`` of the lines that could be headings.
    """

    lines: list[str]
    marks: dict[int, tuple[int, int]] = field(default_factory=dict)
    inserted: list[tuple[int, int, str]] = field(default_factory=list)
    styles: list[tuple[int, float, bool]] = field(default_factory=list)

    def text(self) -> str:
        """The page's text with headings marked (see :meth:`PdfParser.parse`)."""
        before: dict[int, list[str]] = {}
        for at, level, title in self.inserted:
            before.setdefault(min(at, len(self.lines)), []).append(f"{'#' * level} {' '.join(title.split())}")
        out: list[str] = []
        lines, k = self.lines, 0
        for stop in sorted(set(self.marks) | set(before)):
            if k < stop:
                out.append(escape_markdown("\n".join(lines[k:stop])))
                k = stop
            out.extend(before.get(stop, []))
            if stop in self.marks and stop >= k:
                level, span = self.marks[stop]
                out.append("#" * level + " " + " ".join(lines[stop : stop + span]))
                k = stop + span
        if k < len(lines) or not lines:
            out.append(escape_markdown("\n".join(lines[k:])))
        return "\n".join(out)


def _outline(pdf: pdfium.PdfDocument, warnings: list[str]) -> dict[int, list[_Bookmark]]:
    """The outline's entries by 0-based destination page index; ``{}`` when there is none."""
    by_page: dict[int, list[_Bookmark]] = {}
    try:
        for item in pdf.get_toc():
            title = " ".join(item.get_title().split())
            dest = item.get_dest()
            index = dest.get_index() if dest is not None else None
            if not title or index is None:
                continue
            by_page.setdefault(index, []).append(
                _Bookmark(title, min(item.level + 1, MAX_HEADING_LEVEL), _dest_top(dest))
            )
    except (pdfium.PdfiumError, ValueError) as exc:  # a damaged outline costs the headings only
        warnings.append(f"the PDF outline could not be read: {exc}")
    return by_page


def _dest_top(dest: pdfium.PdfDest) -> float | None:
    """The vertical position a destination shows at the top of the window, when it names one."""
    mode, pos = dest.get_view()
    if mode == pdfium_c.PDFDEST_VIEW_XYZ and len(pos) >= 2 and pos[1]:
        return float(pos[1])
    if mode in (pdfium_c.PDFDEST_VIEW_FITH, pdfium_c.PDFDEST_VIEW_FITBH) and pos and pos[0]:
        return float(pos[0])
    return None


def _title_pattern(title: str, loose: bool) -> re.Pattern[str] | None:
    """A title at a line start and ending a word: its words (``loose``: its letters and digits)."""
    parts = [c for c in title if c.isalnum()] if loose else re.findall(r"\w+", title)
    if not parts:
        return None
    glue = r"\W*" if loose else r"\W+"
    return re.compile(r"^[ \t]*" + glue.join(map(re.escape, parts)) + r"(?!\w)", re.IGNORECASE | re.MULTILINE)


def _place_bookmarks(
    page: _Page, text: str, bookmarks: list[_Bookmark], textpage: pdfium.PdfTextPage | None
) -> list[_Bookmark]:
    """Mark each bookmark's title on the page (``text`` is ``"\\n".join(page.lines)``).

    A title not found on the page is inserted before the first line at or below its
    destination's height. Returns the bookmarks not found whose destination lies below the
    page's last line: a page break that fell between the destination and its heading (fpdf2 and
    LaTeX both do this) moved the heading to the next page, where the caller looks for them.
    Without a ``textpage`` (text read by OCR: no character positions), heights are unknown: a
    title found several times takes its first place, and one not found goes to the page's start.
    """
    starts = [0]
    for line in page.lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    carried: list[_Bookmark] = []
    tops: list[float] | None = None
    for mark in bookmarks:
        spans = _find_title(text, mark.title)
        y = mark.y if textpage is not None else None
        if len(spans) > 1 and y is not None:
            spans.sort(key=lambda span: abs(_char_top(textpage, text, span[0]) - y))
        for start, end in spans:
            first = _line_of(starts, start)
            last = _line_of(starts, max(start, end - 1))
            if any(k <= last and first < k + span for k, (_, span) in page.marks.items()):
                continue  # an earlier entry holds this line
            page.marks[first] = (mark.level, last - first + 1)
            break
        else:
            if y is None or textpage is None:
                page.inserted.append((0, mark.level, mark.title))
                continue
            if tops is None:  # the height of each line's first character, top to bottom
                tops = [
                    _char_top(textpage, text, start) if page.lines[i].strip() else math.inf
                    for i, start in enumerate(starts)
                ]
            below = [i for i, top in enumerate(tops) if top != math.inf and top <= y + 1.0]
            if below:
                page.inserted.append((below[0], mark.level, mark.title))
            else:
                carried.append(mark)
    return carried


def _find_title(text: str, title: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every place where ``title`` starts a line of ``text`` and ends a word.

    Tried in turn until one finds something: the title as it is; its words with anything
    but letters and digits between them (quotes, dashes, line breaks); its letters and
    digits alone (``LaTeX2ε`` against ``LATEX 2ε``), case-insensitively for the last two.
    """
    spans = []
    at = text.find(title)
    while at >= 0:
        end = at + len(title)
        if (at == 0 or text[at - 1] == "\n") and not (end < len(text) and text[end].isalnum()):
            spans.append((at, end))
        at = text.find(title, at + 1)
    if spans:
        return spans
    for loose in (False, True):
        pattern = _title_pattern(title, loose)
        if pattern is not None:
            spans = [m.span() for m in pattern.finditer(text)]
            if spans:
                return spans
    return []


def _line_of(starts: list[int], offset: int) -> int:
    """Index of the line holding ``offset`` (``starts`` ascending, ``starts[0] == 0``)."""
    return bisect.bisect_right(starts, offset) - 1


def _char_top(textpage: pdfium.PdfTextPage, text: str, offset: int) -> float:
    """Top of the character at ``offset`` of the ``\\n``-joined text, in PDF points (inf if unknown)."""
    index = offset + text.count("\n", 0, offset)  # PDFium counts \r\n as two characters
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    if not pdfium_c.FPDFText_GetCharBox(textpage.raw, index, left, right, bottom, top):
        return math.inf
    return top.value


class _FontSampler:
    """Font size and boldness of single characters of one text page (raw PDFium calls)."""

    def __init__(self, textpage: pdfium.PdfTextPage) -> None:
        self.raw = textpage.raw
        self.matrix = pdfium_c.FS_MATRIX()
        self.name = ctypes.create_string_buffer(_FONT_NAME_BUFFER)
        self.flags = ctypes.c_int()

    def size(self, index: int) -> float:
        """Effective size in points: the font size times the character matrix's scale."""
        size = pdfium_c.FPDFText_GetFontSize(self.raw, index)
        if pdfium_c.FPDFText_GetMatrix(self.raw, index, self.matrix):
            m = self.matrix
            size *= math.sqrt(abs(m.a * m.d - m.b * m.c))
        return round(size, 1)

    def bold(self, index: int) -> bool:
        """True for a bold face: by its FontDescriptor weight, or by its name when that is unclear.

        A weight of :data:`_BOLD_WEIGHT` or more is bold and one under :data:`_REGULAR_WEIGHT` is
        not (one call); in between, or with no weight (the standard 14 fonts have no
        descriptor), the face's name decides (``CMBX12`` weighs 545, ``Helvetica-Bold`` nothing).
        """
        weight = pdfium_c.FPDFText_GetFontWeight(self.raw, index)
        if weight >= _BOLD_WEIGHT:
            return True
        if 0 < weight < _REGULAR_WEIGHT:
            return False
        n = pdfium_c.FPDFText_GetFontInfo(self.raw, index, self.name, _FONT_NAME_BUFFER, self.flags)
        return n > 1 and _BOLD_NAME.search(self.name.value.decode("latin-1")) is not None


def _sample_fonts(page: _Page, textpage: pdfium.PdfTextPage, body: Counter[float]) -> None:
    """Add each line's size to ``body`` (weighted by characters); keep heading candidates' styles.

    One line costs two or three PDFium calls (its first character's size; the face of
    short lines; the last character's face when the first is bold), not one per character.
    """
    sampler = _FontSampler(textpage)
    index = 0  # PDFium's index of the line's first character (\r\n counts two)
    for k, line in enumerate(page.lines):
        stripped = line.strip()
        if stripped:
            first = index + len(line) - len(line.lstrip())
            size = sampler.size(first)
            body[size] += len(stripped)
            if len(stripped) <= MAX_FONT_HEADING_CHARS and _LETTER.search(stripped):
                last = index + len(line.rstrip()) - 1
                bold = sampler.bold(first) and sampler.bold(last)
                page.styles.append((k, size, bold))
        index += len(line) + 2


def _mark_by_fonts(pages: list[_Page], body: Counter[float]) -> None:
    """Turn the candidates of every page into headings once the body size is known."""
    if not body:
        return
    total = sum(body.values())
    body_size = max(size for size, chars in body.items() if chars >= BODY_SHARE * total)
    runs: list[tuple[_Page, int, int, tuple[float, bool]]] = []  # page, first line, lines, style
    for page in pages:
        previous: tuple[int, tuple[float, bool]] | None = None
        for k, size, bold in page.styles:
            large = size >= body_size * LARGE_FONT_RATIO
            if not (large or (bold and size >= body_size * 0.95)):
                previous = None
                continue
            key = (size, bold)
            if previous is not None and previous == (k - 1, key) and runs and runs[-1][0] is page:
                _, start, n, _ = runs[-1]
                runs[-1] = (page, start, n + 1, key)
            else:
                runs.append((page, k, 1, key))
            previous = (k, key)
    runs = [
        r
        for r in runs
        if r[2] <= (_MAX_LARGE_RUN if r[3][0] >= body_size * LARGE_FONT_RATIO else _MAX_BOLD_RUN)
    ]
    ranks = {key: i for i, key in enumerate(sorted({r[3] for r in runs}, key=lambda s: (-s[0], not s[1])))}
    for page, start, n, key in runs:
        page.marks[start] = (min(ranks[key] + 1, MAX_HEADING_LEVEL), n)


def _read_page(
    pdf: pdfium.PdfDocument, index: int, bookmarks: list[_Bookmark] | None, body: Counter[float] | None
) -> tuple[_Page, list[_Bookmark]]:
    """Lines of page ``index`` (0-based) with its bookmarks placed or its fonts sampled, and
    the bookmarks to look for on the next page (see :func:`_place_bookmarks`)."""
    carried: list[_Bookmark] = []
    page = pdf.get_page(index)
    try:
        textpage = page.get_textpage()
        try:
            # surrogatepass: keep lone UTF-16 surrogates for the validation stage.
            raw = textpage.get_text_range(errors="surrogatepass")
            result = _Page(raw.split("\r\n"))
            if raw.strip():
                if bookmarks:
                    carried = _place_bookmarks(result, "\n".join(result.lines), bookmarks, textpage)
                if body is not None and len(raw) == textpage.count_chars():
                    _sample_fonts(result, textpage, body)
            elif bookmarks:  # a page without text: its headings go on to the next page
                carried = list(bookmarks)
        finally:
            textpage.close()
    finally:
        page.close()
    return result, carried


def _ocr_page(
    pdf: pdfium.PdfDocument,
    index: int,
    bookmarks: list[_Bookmark],
    options: ParseOptions,
    warnings: list[str],
) -> tuple[_Page, OcrPage]:
    """Page ``index`` (0-based) rendered at ``options.ocr_dpi`` in greyscale and read by OCR.

    A page too large for ``options.max_image_pixels`` at that resolution is rendered at the
    highest resolution within it (a warning says so). Its bookmarks' titles are looked for at
    line starts of the text read; one not found is put at the page's start.
    """
    from docingest.providers.parsing.ocr import ocr_image  # tesserocr only when OCR runs

    started = time.monotonic()
    page = pdf.get_page(index)
    try:
        width, height = page.get_size()
        scale = options.ocr_dpi / 72
        pixels = width * scale * height * scale
        if pixels > options.max_image_pixels:
            scale *= math.sqrt(options.max_image_pixels / pixels) * 0.999
            warnings.append(
                f"page {index + 1} ({width / 72:.0f} x {height / 72:.0f} inches) was OCRed at "
                f"{scale * 72:.0f} dpi instead of {options.ocr_dpi}: at that resolution it would pass "
                f"{options.max_image_pixels:,} pixels (UPLOAD_PIPELINE_MAX_IMAGE_PIXELS)"
            )
        bitmap = page.render(scale=scale, grayscale=True)
        try:
            text, ocr = ocr_image(bitmap.to_pil(), index + 1, options, dpi=round(scale * 72), started=started)
        finally:
            bitmap.close()
    finally:
        page.close()
    result = _Page(text.split("\n"))
    _place_bookmarks(result, text, bookmarks, None)
    return result, ocr


def _extract(
    pdf: pdfium.PdfDocument,
    on_progress: PageProgress | None = None,
    *,
    use_outline: bool = True,
    options: ParseOptions = DEFAULT_OPTIONS,
) -> ParsedDocument:
    """The document of an open PDF (see :meth:`PdfParser.parse`); ``use_outline=False`` forces fonts."""
    warnings: list[str] = []
    try:
        metadata = {k: str(v) for k, v in pdf.get_metadata_dict(skip_empty=True).items()}
    except pdfium.PdfiumError as exc:
        metadata = {}
        warnings.append(f"PDF metadata could not be read: {exc}")
    outline = _outline(pdf, warnings) if use_outline else {}
    body: Counter[float] | None = None if outline else Counter()

    total = len(pdf)
    read: list[tuple[int, _Page | None]] = []
    ocr_pages: list[OcrPage] = []
    carried: list[_Bookmark] = []  # headings whose destination fell at the end of the page before
    for index in range(total):
        if on_progress is not None and index:
            on_progress(index, total)  # pages read so far
        # A carried heading's height was the previous page's: here it is looked for, else first.
        marks = [replace(b, y=None) for b in carried] + outline.get(index, [])
        try:
            page_read: _Page | None = None
            if options.ocr != "always":
                page_read, carried = _read_page(pdf, index, marks, body)
            if options.ocr == "always" or (
                options.ocr == "auto" and page_read is not None and not "".join(page_read.lines).strip()
            ):
                page_read, ocr = _ocr_page(pdf, index, marks, options, warnings)
                ocr_pages.append(ocr)
                carried = []
            read.append((index + 1, page_read))
        except pdfium.PdfiumError:
            read.append((index + 1, None))
            carried = []
    last = next((p for _, p in reversed(read) if p is not None), None)
    if carried and last is not None:  # the outline points past the last line of the document
        last.inserted.extend((len(last.lines), b.level, b.title) for b in carried)
    if body is not None:
        _mark_by_fonts([p for _, p in read if p is not None], body)

    joiner = PageJoiner()
    empty: list[int] = []
    unreadable: list[int] = []
    for number, parsed in read:
        text = parsed.text() if parsed is not None else None
        if joiner.add(number, text).empty:
            (unreadable if parsed is None else empty).append(number)

    if unreadable and len(unreadable) == total:
        raise PdfCorrupt(f"none of the {total} pages of the PDF could be read; re-export or repair it")
    if unreadable:
        warnings.append(f"{len(unreadable)} of {total} pages could not be read: {_list_pages(unreadable)}")
    if empty and options.ocr == "off":
        warnings.append(
            f"{len(empty)} of {total} pages have no text layer (scanned images?): {_list_pages(empty)}"
        )
    elif empty:
        warnings.append(
            f"{len(empty)} of {total} pages have no text, by their text layer or by OCR "
            f"(blank, or too faint to read): {_list_pages(empty)}"
        )
    if ocr_pages:
        from docingest.providers.parsing.ocr import low_confidence_warning

        low = low_confidence_warning(ocr_pages, options)
        if low:
            warnings.append(low)
    return ParsedDocument(
        markdown=joiner.markdown,
        kind="pdf",
        pages=joiner.pages,
        metadata=metadata,
        warnings=warnings,
        ocr_pages=ocr_pages,
    )


def _list_pages(numbers: list[int]) -> str:
    """``'pages 3, 4, 9'``, with at most ten numbers shown."""
    return f"pages {numbers_text(numbers)}"
