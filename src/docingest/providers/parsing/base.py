"""Shared shapes of the parsing stage: what every parser returns.

A parser turns one stored file into a :class:`ParsedDocument`: the whole document
as Markdown-ish text plus, for paged formats (PDF), the character span of every
page inside that text. Parsers never clean text: NUL characters and lone
surrogates are kept as found (the validation stage counts and removes them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

#: Every kind a parser exists for, in sniffing order of specificity.
KINDS: tuple[str, ...] = (
    "pdf",
    "docx",
    "pptx",
    "xlsx",
    "epub",
    "odt",
    "ods",
    "odp",
    "rtf",
    "eml",
    "msg",
    "image",
    "csv",
    "json",
    "html",
    "markdown",
    "text",
)

#: ``on_progress(pages_parsed, pages_total)``: called by a paged parser (PDF) after each
#: page it reads, ``1 <= pages_parsed <= pages_total``; it must be cheap (throttle inside).
PageProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class ParseOptions:
    """What a parse may do, from the settings; sent with every parse to the bounded child.

    Attributes:
        ocr: ``'always'`` OCRs every page (a PDF's text layer is replaced by what Tesseract
            reads) and every image; ``'auto'`` OCRs images and the PDF pages without a text
            layer; ``'off'`` never runs Tesseract. Already resolved: not ``'off'`` only when
            Tesseract and its language data were found (``options.resolve_ocr``).
        ocr_languages: Tesseract language codes joined by ``+`` (``eng``, ``eng+deu``).
        ocr_dpi: resolution, dots per inch, a PDF page is rendered at before OCR.
        ocr_low_confidence: a page whose mean word confidence (0-100) is below this is kept
            but flagged (:attr:`OcrPage.low_confidence`).
        ocr_seconds_per_page: the parse's wall-time limit grows by this for every page OCRed.
        tessdata: the directory holding ``<lang>.traineddata`` (None: Tesseract's default).
        max_spreadsheet_cells: the most non-empty cells a spreadsheet (all its sheets) may
            hold; over it the parse fails ``spreadsheet_too_large``.
        max_unpacked_bytes: the most bytes the members of a ZIP-based document (DOCX, PPTX,
            XLSX, EPUB, OpenDocument) may unpack to; over it ``archive_too_large``.
        max_image_pixels: the most pixels (width x height) an image or a rendered page may
            have; over it ``image_too_large``.
    """

    ocr: str = "off"
    ocr_languages: str = "eng"
    ocr_dpi: int = 300
    ocr_low_confidence: float = 50.0
    ocr_seconds_per_page: float = 30.0
    tessdata: str | None = None
    max_spreadsheet_cells: int = 5_000_000
    max_unpacked_bytes: int = 1024 * 1024 * 1024
    max_image_pixels: int = 200_000_000


#: The options of a parse that names none (tests, the LlamaParse mock).
DEFAULT_OPTIONS = ParseOptions()


@dataclass(frozen=True)
class OcrPage:
    """What OCR read on one page (a PDF page without a text layer, an image, a TIFF frame).

    Attributes:
        number: 1-based page (or frame) number, as in :class:`ParsedPage`.
        confidence: Tesseract's mean word confidence, 0-100 (0 when no word was read).
        words: words read.
        seconds: wall time of the page's OCR, rendering included.
        low_confidence: ``confidence < ParseOptions.ocr_low_confidence``: the text is kept
            but flagged (an event and a warning name the page).
        rotation: degrees counter-clockwise the page was turned to be read (a page scanned on
            its side: 90, 180, 270), found by Tesseract's orientation detection; 0 when read as
            stored.
    """

    number: int
    confidence: float
    words: int
    seconds: float
    low_confidence: bool
    rotation: int = 0


@dataclass(frozen=True)
class Attachment:
    """A file attached to an e-mail message (``eml``, ``msg``), ingested as its own document.

    Attributes:
        filename: the attachment's file name as the message gives it (may be empty).
        mime: the MIME type the message declares for it.
        data: its bytes.
    """

    filename: str
    mime: str
    data: bytes


@dataclass(frozen=True)
class ParsedPage:
    """One page of a paged document.

    Attributes:
        number: 1-based page number (page index + 1, not the printed label).
        start: offset, in characters (Python ``str`` indices), of the page's
            text in ``ParsedDocument.markdown``.
        end: exclusive end offset; ``markdown[start:end]`` is the page's text.
        empty: True when the page had no text layer or only whitespace; then
            ``start == end``.
    """

    number: int
    start: int
    end: int
    empty: bool


#: What joins the texts of two non-empty pages (PDF pages, slides, sheets, image frames).
PAGE_SEPARATOR = "\n\n"


class PageJoiner:
    """A paged document's text and page map, built a page at a time: non-empty pages joined by
    :data:`PAGE_SEPARATOR`, an empty one (no text, or only whitespace) recorded with
    ``start == end`` where it stands.

    Use: ``joiner.add(number, text)`` for each page in order, then ``joiner.markdown`` and
    ``joiner.pages``.
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._offset = 0
        self.pages: list[ParsedPage] = []

    def add(self, number: int, text: str | None) -> ParsedPage:
        """Append page ``number`` (1-based) with ``text`` (None: unreadable, as empty); its page."""
        if text is None or not text.strip():
            page = ParsedPage(number, self._offset, self._offset, True)
        else:
            if self._parts:
                self._parts.append(PAGE_SEPARATOR)
                self._offset += len(PAGE_SEPARATOR)
            self._parts.append(text)
            page = ParsedPage(number, self._offset, self._offset + len(text), False)
            self._offset += len(text)
        self.pages.append(page)
        return page

    @property
    def markdown(self) -> str:
        """The text of the pages added so far."""
        return "".join(self._parts)


#: A line the chunker would read as a heading or a code fence (``# x``, three backticks, ``~~~``).
_MARKDOWN_LOOKALIKE = re.compile(r"^(?:#{1,6}[ \t]|```|~~~)", re.MULTILINE)


def escape_markdown(text: str) -> str:
    """``text`` with a ``\\`` before every line that would read as a heading or a code fence, so
    body text (a PDF's, OCR's, a JSON value's) is never taken for structure."""
    if "#" not in text and "``" not in text and "~~" not in text:
        return text
    return _MARKDOWN_LOOKALIKE.sub(r"\\\g<0>", text)


def numbers_text(numbers: list[int], most: int = 10) -> str:
    """``'3, 4, 9'``: at most ``most`` numbers, then ``' and N more'``."""
    shown = ", ".join(str(n) for n in numbers[:most])
    return shown + (f" and {len(numbers) - most} more" if len(numbers) > most else "")


@dataclass
class ParsedDocument:
    """A parsed document.

    Attributes:
        markdown: the whole document as Markdown-ish text (headings as ``#``,
            ``##`` ...; pages of a PDF joined by a blank line).
        kind: one of :data:`KINDS`.
        pages: one :class:`ParsedPage` per page, in order: PDF pages, slides (PPTX, ODP),
            sheets (XLSX, ODS: ``number`` is the sheet's position in the workbook, hidden
            sheets counted), image frames; empty for formats without pages.
        metadata: document properties, all values ``str``; keys are
            capitalised like PDF's Info dictionary (``Title``, ``Author``,
            ``Producer`` ...; ``Encoding`` for text formats). Empty values are
            left out.
        warnings: human-readable notes about lossy steps (replaced bytes,
            pages without text, skipped navigation tables, hidden sheets ...).
        front_matter: a Markdown file's YAML front matter keys, JSON values (taken out of
            ``markdown``; merged into the document's metadata, whose own keys win); empty for
            other kinds.
        ocr_pages: one :class:`OcrPage` per page whose text OCR read, in page order.
        attachments: an e-mail's attached files, each ingested as its own document.
    """

    markdown: str
    kind: str
    pages: list[ParsedPage] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    front_matter: dict[str, Any] = field(default_factory=dict)
    ocr_pages: list[OcrPage] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


class KindParser(Protocol):
    """The parser of one kind (``parsing.PARSERS`` holds one per kind)."""

    def parse(
        self, path: Path, options: ParseOptions, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the file at ``path``; raise a ``docingest.errors`` class on bad input.

        ``on_progress(pages_parsed, pages_total)`` after each page, slide or sheet of a paged
        kind (never called by the others)."""
        ...


class Parser(Protocol):
    """What the parse stage calls: ``parser(path, kind, on_progress=None)``.

    ``parsing.parse_file`` (in this process) and ``parsing.sandbox.SandboxedParser`` (in a
    bounded child process) both satisfy it.
    """

    def __call__(
        self,
        path: Path,
        kind: str,
        on_progress: PageProgress | None = None,
        options: ParseOptions = DEFAULT_OPTIONS,
    ) -> ParsedDocument:
        """Parse the file at ``path`` as ``kind`` (``KINDS``) with ``options``.

        ``on_progress(pages_parsed, pages_total)`` is called after each page of a paged kind.

        Raises:
            UnsupportedType: no parser for ``kind``.
            PdfEncrypted, PdfCorrupt, DocumentCorrupt, EmptyFile: bad input (permanent).
            ParseTimeout, ParseCrashed, ParseOutOfMemory: the sandbox's limits (transient).
        """
        ...
