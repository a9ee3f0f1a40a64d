"""DOCX -> Markdown-ish text via python-docx, walking the body in document order.

Paragraph styles carry the structure: ``Title`` and ``Heading N`` become ``#``
headings, list paragraphs (``List*`` styles or numbering) become ``- `` items,
code styles (pandoc's ``Source Code``) become fenced blocks; tables become pipe
tables. Navigation tables (a row with "Prev" and "Next" cells, as in manual pages
converted from HTML) are skipped with a warning.
"""

from __future__ import annotations

import re
from pathlib import Path

import docx
from docx.document import Document as DocxDocument
from docx.opc.exceptions import OpcError, PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml import etree

from docingest.errors import DocumentCorrupt, UnsupportedType, scrub_paths
from docingest.providers.parsing.archive import ZIP_ERRORS, check_archive, core_metadata
from docingest.providers.parsing.base import DEFAULT_OPTIONS, PageProgress, ParsedDocument, ParseOptions

_HEADING = re.compile(r"heading ([1-9])", re.IGNORECASE)
_CODE_STYLES = {"source code", "code", "html preformatted", "plain text", "macro text"}
_NAV_CELLS = {"prev", "next"}
_LINE_BREAKS = re.compile(r"[ \t]*[\r\n\t]+[ \t]*")
# What python-docx / zipfile / lxml raise on a damaged package or part.
_LIBRARY_ERRORS = (
    *ZIP_ERRORS,  # OSError: e.g. EINVAL when a damaged directory points before the file start
    KeyError,
    AttributeError,
    OpcError,
    etree.LxmlError,
)


class DocxParser:
    """Converts a Word (OOXML) document to Markdown-ish text."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the DOCX at ``path``.

        Returns:
            A ``ParsedDocument`` of kind ``'docx'``, blocks separated by a blank
            line, no pages; ``metadata`` from the core properties (``Title``,
            ``Author``, ``Subject``, ``Keywords``, ``LastModifiedBy``,
            ``CreationDate``/``ModDate`` as ISO 8601), empty ones left out.

        Raises:
            DocumentCorrupt: not a ZIP, a missing or malformed part, bad XML.
            ArchiveTooLarge: the package unpacks to more than ``options.max_unpacked_bytes``.
            UnsupportedType: an OOXML package that is not a plain Word document
                (e.g. macro-enabled ``.docm`` or a template).
            FileNotFoundError: ``path`` is not a file.
        """
        if not path.is_file():
            raise FileNotFoundError(path)
        check_archive(path, options.max_unpacked_bytes, what="DOCX")
        warnings: list[str] = []
        try:
            document = docx.Document(str(path))
        except (FileNotFoundError, PermissionError):
            raise
        except ValueError as exc:
            if "not a Word file" in str(exc):
                raise UnsupportedType(
                    f"the package is not a plain Word document ({_cause(exc)}); save it as .docx"
                ) from exc
            raise DocumentCorrupt(f"the DOCX cannot be opened ({_cause(exc)}); re-save it") from exc
        except PackageNotFoundError as exc:  # its text is "Package not found at '<server path>'"
            raise DocumentCorrupt(
                "the DOCX is damaged (not a readable ZIP package: truncated, or not a DOCX); "
                "re-save it in Word or LibreOffice"
            ) from exc
        except _LIBRARY_ERRORS as exc:
            raise DocumentCorrupt(
                f"the DOCX is damaged ({type(exc).__name__}: {_cause(exc)}); re-save it in Word or LibreOffice"
            ) from exc
        try:
            blocks = _render_blocks(document, warnings)
            metadata = _metadata(document)
        except _LIBRARY_ERRORS as exc:
            raise DocumentCorrupt(
                f"the DOCX content is malformed ({type(exc).__name__}: {_cause(exc)}); re-save it"
            ) from exc
        return ParsedDocument(
            markdown="\n\n".join(blocks), kind="docx", pages=[], metadata=metadata, warnings=warnings
        )


def _cause(exc: BaseException) -> str:
    """A library error's text for a user: without the server path of the file."""
    return scrub_paths(str(exc))


def _render_blocks(document: DocxDocument, warnings: list[str]) -> list[str]:
    """Markdown blocks of the body, in order; empty paragraphs dropped."""
    blocks: list[str] = []
    skipped_nav = 0
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            block = _render_paragraph(item)
        elif _is_navigation(item):
            skipped_nav += 1
            continue
        else:
            block = _render_table(item)
        if block:
            blocks.append(block)
    if skipped_nav:
        warnings.append(f"skipped {skipped_nav} navigation table(s) (Prev/Next links)")
    return blocks


def _style_name(paragraph: Paragraph) -> str:
    style = paragraph.style
    return (style.name or "") if style is not None else ""


def _render_paragraph(paragraph: Paragraph) -> str:
    """One paragraph as a heading, list item, fenced code block or plain text ('' if blank)."""
    text = paragraph.text
    if not text.strip():
        return ""
    style = _style_name(paragraph)
    level = 1 if style.lower() == "title" else None
    match = _HEADING.fullmatch(style)
    if match:
        level = int(match.group(1))
    if level is not None:
        return "#" * level + " " + _LINE_BREAKS.sub(" ", text).strip(" ")
    if style.lower() in _CODE_STYLES:
        return f"```\n{text}\n```"
    p_pr = paragraph._p.pPr
    num_pr = p_pr.numPr if p_pr is not None else None
    if num_pr is not None or style.lower().startswith("list"):
        ilvl = getattr(num_pr, "ilvl", None)  # python-docx types numPr loosely
        depth = ilvl.val if ilvl is not None else 0
        return "  " * depth + "- " + text.strip()
    return text


def _unique_cells(row) -> list:
    """Cells of a row, a horizontally merged cell counted once."""
    cells, seen = [], set()
    for cell in row.cells:
        if id(cell._tc) not in seen:
            seen.add(id(cell._tc))
            cells.append(cell)
    return cells


def _cell_text(cell) -> str:
    """Text of a cell (nested tables flattened), fit for one pipe-table cell."""
    parts: list[str] = []
    for item in cell.iter_inner_content():
        if isinstance(item, Paragraph):
            parts.append(item.text)
        else:
            parts.extend(_cell_text(c) for row in item.rows for c in _unique_cells(row))
    return _LINE_BREAKS.sub(" ", " ".join(parts)).strip().replace("|", "\\|")


def _is_navigation(table: Table) -> bool:
    """True for a Prev/Up/Next navigation table."""
    for row in table.rows:
        labels = {cell.text.strip().lower() for cell in _unique_cells(row)}
        if _NAV_CELLS <= labels:
            return True
    return False


def _render_table(table: Table) -> str:
    """A pipe table; the first row is the header row."""
    rows = [[_cell_text(c) for c in _unique_cells(row)] for row in table.rows]
    rows = [r for r in rows if any(r)]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    lines = ["| " + " | ".join(r + [""] * (width - len(r))) + " |" for r in rows]
    lines.insert(1, "|" + " --- |" * width)
    return "\n".join(lines)


def _metadata(document: DocxDocument) -> dict[str, str]:
    return core_metadata(document.core_properties)
