"""Parsers: sniff what a file is, then turn it into Markdown-ish text (local parsers in a bounded
child process, or LlamaParse). Imports the foundation, observability and the rate limiter.

Typical use::

    detected = detect(path, declared_mime=mime, filename=name)
    document = parse_file(path, detected.kind)

Every parser raises the ``docingest.errors`` classes for bad input (``PdfEncrypted``,
``PdfCorrupt``, ``DocumentCorrupt``, ``DocumentEncrypted``, ``ArchiveTooLarge``,
``SpreadsheetTooLarge``, ``ImageTooLarge``, ``OcrFailed``, ``EmptyFile``, ``UnsupportedType``) and keeps
NUL characters and lone surrogates for the validation stage to count and remove.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from docingest.errors import UnsupportedType
from docingest.providers.parsing.base import (
    DEFAULT_OPTIONS,
    KINDS,
    Attachment,
    KindParser,
    OcrPage,
    PageProgress,
    ParsedDocument,
    ParsedPage,
    ParseOptions,
    Parser,
)
from docingest.providers.parsing.sniff import DetectedType, detect, is_declared_compatible

#: kind -> ``"module:Class"`` of its parser (under ``docingest.providers.parsing``); the keys
#: are exactly ``KINDS``. A parser's module, and the library it wraps, is imported on the
#: kind's first parse (the parse children preload them all: ``sandbox._context``).
PARSER_CLASSES: dict[str, str] = {
    "pdf": "pdf:PdfParser",
    "docx": "docx:DocxParser",
    "pptx": "presentation:PptxParser",
    "xlsx": "spreadsheet:XlsxParser",
    "epub": "epub:EpubParser",
    "odt": "opendocument:OdtParser",
    "ods": "spreadsheet:OdsParser",
    "odp": "presentation:OdpParser",
    "rtf": "rtf:RtfParser",
    "eml": "mail:EmlParser",
    "msg": "mail:MsgParser",
    "image": "ocr:ImageParser",
    "csv": "tabular:CsvParser",
    "json": "tabular:JsonParser",
    "html": "html:HtmlParser",
    "markdown": "markdown:MarkdownParser",
    "text": "text:TextParser",
}
assert set(PARSER_CLASSES) == set(KINDS)

_PARSERS: dict[str, KindParser] = {}


def parser_for(kind: str) -> KindParser:
    """The parser of ``kind`` (one instance per process, made on first use).

    Raises:
        UnsupportedType: ``kind`` is not one of ``KINDS``.
    """
    parser = _PARSERS.get(kind)
    if parser is None:
        spec = PARSER_CLASSES.get(kind)
        if spec is None:
            raise UnsupportedType(f"no parser for kind {kind!r}; known kinds: {', '.join(KINDS)}")
        module, _, name = spec.partition(":")
        parser = getattr(importlib.import_module(f"{__name__}.{module}"), name)()
        _PARSERS[kind] = parser
    return parser


def preload() -> None:
    """Import every parser module (the parse children's forkserver calls it once)."""
    for kind in KINDS:
        parser_for(kind)


def parse_file(
    path: Path,
    kind: str,
    on_progress: PageProgress | None = None,
    options: ParseOptions = DEFAULT_OPTIONS,
) -> ParsedDocument:
    """Parse the file at ``path`` with the parser registered for ``kind``.

    Args:
        path: the file to parse.
        kind: one of ``KINDS``, normally ``detect(path).kind``.
        on_progress: ``(pages_parsed, pages_total)`` after each page, slide or sheet of a
            paged kind; never called for the others.
        options: OCR and size limits (:class:`ParseOptions`).

    Returns:
        The :class:`ParsedDocument`.

    Raises:
        UnsupportedType: no parser is registered for ``kind``.
        DocingestError: what the parser raises for bad input (``PdfEncrypted``, ``PdfCorrupt``,
            ``DocumentCorrupt``, ``DocumentEncrypted``, ``SpreadsheetTooLarge`` ...).
    """
    return parser_for(kind).parse(path, options, on_progress)


__all__ = [
    "DEFAULT_OPTIONS",
    "KINDS",
    "PARSER_CLASSES",
    "Attachment",
    "DetectedType",
    "KindParser",
    "OcrPage",
    "PageProgress",
    "ParseOptions",
    "ParsedDocument",
    "ParsedPage",
    "Parser",
    "detect",
    "is_declared_compatible",
    "parse_file",
    "parser_for",
    "preload",
]
