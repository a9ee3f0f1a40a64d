"""Shared shapes of the parsing stage: what every parser returns.

A parser turns one stored file into a :class:`ParsedDocument`: the whole document
as Markdown-ish text plus, for paged formats (PDF), the character span of every
page inside that text. Parsers never clean text: NUL characters and lone
surrogates are kept as found (the validation stage counts and removes them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

#: Every kind a parser exists for, in sniffing order of specificity.
KINDS: tuple[str, ...] = ("pdf", "docx", "html", "markdown", "text")

#: ``on_progress(pages_parsed, pages_total)``: called by a paged parser (PDF) after each
#: page it reads, ``1 <= pages_parsed <= pages_total``; it must be cheap (throttle inside).
PageProgress = Callable[[int, int], None]


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


@dataclass
class ParsedDocument:
    """A parsed document.

    Attributes:
        markdown: the whole document as Markdown-ish text (headings as ``#``,
            ``##`` ...; pages of a PDF joined by a blank line).
        kind: ``'pdf' | 'docx' | 'html' | 'markdown' | 'text'``.
        pages: one :class:`ParsedPage` per page, in order; empty for formats
            without pages.
        metadata: document properties, all values ``str``; keys are
            capitalised like PDF's Info dictionary (``Title``, ``Author``,
            ``Producer`` ...; ``Encoding`` for text formats). Empty values are
            left out.
        warnings: human-readable notes about lossy steps (replaced bytes,
            pages without text, skipped navigation tables ...).
        front_matter: a Markdown file's YAML front matter keys, JSON values (taken out of
            ``markdown``; merged into the document's metadata, whose own keys win); empty for
            other kinds.
    """

    markdown: str
    kind: str
    pages: list[ParsedPage] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    front_matter: dict[str, Any] = field(default_factory=dict)


class KindParser(Protocol):
    """The parser of one kind (``parsing.PARSERS`` holds one per kind)."""

    def parse(self, path: Path) -> ParsedDocument:
        """Parse the file at ``path``; raise a ``docingest.errors`` class on bad input."""
        ...


class Parser(Protocol):
    """What the parse stage calls: ``parser(path, kind, on_progress=None)``.

    ``parsing.parse_file`` (in this process) and ``parsing.sandbox.SandboxedParser`` (in a
    bounded child process) both satisfy it.
    """

    def __call__(self, path: Path, kind: str, on_progress: PageProgress | None = None) -> ParsedDocument:
        """Parse the file at ``path`` as ``kind`` (``KINDS``).

        ``on_progress(pages_parsed, pages_total)`` is called after each page of a paged kind.

        Raises:
            UnsupportedType: no parser for ``kind``.
            PdfEncrypted, PdfCorrupt, DocumentCorrupt, EmptyFile: bad input (permanent).
            ParseTimeout, ParseCrashed, ParseOutOfMemory: the sandbox's limits (transient).
        """
        ...
