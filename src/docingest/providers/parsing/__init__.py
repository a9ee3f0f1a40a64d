"""Parsers: sniff what a file is, then turn it into Markdown-ish text (local parsers in a bounded
child process, or LlamaParse). Imports the foundation, observability and the rate limiter.

Typical use::

    detected = detect(path, declared_mime=mime, filename=name)
    document = parse_file(path, detected.kind)

Every parser raises the ``docingest.errors`` classes for bad input (``PdfEncrypted``,
``PdfCorrupt``, ``DocumentCorrupt``, ``EmptyFile``, ``UnsupportedType``) and keeps
NUL characters and lone surrogates for the validation stage to count and remove.
"""

from __future__ import annotations

from pathlib import Path

from docingest.errors import UnsupportedType
from docingest.providers.parsing.base import (
    KINDS,
    KindParser,
    PageProgress,
    ParsedDocument,
    ParsedPage,
    Parser,
)
from docingest.providers.parsing.docx import DocxParser
from docingest.providers.parsing.html import HtmlParser
from docingest.providers.parsing.markdown import MarkdownParser
from docingest.providers.parsing.pdf import PdfParser
from docingest.providers.parsing.sniff import DetectedType, detect, is_declared_compatible
from docingest.providers.parsing.text import TextParser

#: kind -> parser; the keys are exactly ``KINDS`` and ``DetectedType.kind`` values.
PARSERS: dict[str, KindParser] = {
    "pdf": PdfParser(),
    "docx": DocxParser(),
    "html": HtmlParser(),
    "markdown": MarkdownParser(),
    "text": TextParser(),
}
assert set(PARSERS) == set(KINDS)


def parse_file(path: Path, kind: str, on_progress: PageProgress | None = None) -> ParsedDocument:
    """Parse the file at ``path`` with the parser registered for ``kind``.

    Args:
        path: the file to parse.
        kind: ``'pdf' | 'docx' | 'html' | 'markdown' | 'text'``, normally
            ``detect(path).kind``.
        on_progress: ``(pages_parsed, pages_total)`` after each page of a paged
            kind (PDF); never called for the others.

    Returns:
        The :class:`ParsedDocument`.

    Raises:
        UnsupportedType: no parser is registered for ``kind``.
        PdfEncrypted, PdfCorrupt, DocumentCorrupt: as raised by the parser.
    """
    parser = PARSERS.get(kind)
    if parser is None:
        raise UnsupportedType(f"no parser for kind {kind!r}; known kinds: {', '.join(PARSERS)}")
    if on_progress is not None and isinstance(parser, PdfParser):
        return parser.parse(path, on_progress)
    return parser.parse(path)


__all__ = [
    "PARSERS",
    "DetectedType",
    "KindParser",
    "PageProgress",
    "ParsedDocument",
    "ParsedPage",
    "Parser",
    "detect",
    "is_declared_compatible",
    "parse_file",
]
