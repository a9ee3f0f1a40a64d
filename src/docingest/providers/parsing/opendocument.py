"""OpenDocument text (ODT) -> Markdown-ish text via odfdo, walking the body in document order;
the ODF helpers the ODP parser (``presentation.py``) shares.

``text:h`` headings become ATX headings by their outline level (numbered ones too, which sit
in a list; a paragraph in the ``Title`` style is a ``#`` heading), ``text:list`` items ``- ``
items (two spaces of indent per nesting level), ``table:table`` pipe tables (first row the
header), and sections, text boxes and frames are read in place. Generated indexes (tables
of contents, alphabetical indexes ...) are skipped: they repeat the document's own headings.
Comments (``office:annotation``) and tracked deletions are left out; footnotes and
endnotes are kept in place, in parentheses.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import odfdo
from lxml import etree
from odfdo import security as odf_security

from docingest.errors import ArchiveTooLarge, DocumentCorrupt, DocumentEncrypted, UnsupportedType, scrub_paths
from docingest.providers.parsing.archive import ZIP_ERRORS, check_archive
from docingest.providers.parsing.base import DEFAULT_OPTIONS, PageProgress, ParsedDocument, ParseOptions

#: Deepest ATX heading level written; deeper outline levels are clamped to it.
MAX_HEADING_LEVEL = 6
#: odfdo's per-member compression-ratio limit, lifted (deflate never passes about 1032:1).
_NO_RATIO_LIMIT = 1 << 31
#: How many parent styles are followed to find a paragraph's ``Title`` style.
_MAX_STYLE_DEPTH = 10
#: How many times a repeated table row or cell (``table:number-*-repeated``) is written at most.
MAX_REPEATED = 100

# What odfdo / zipfile / lxml raise on a damaged package or part.
_LIBRARY_ERRORS = (
    *ZIP_ERRORS,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    etree.LxmlError,
)
#: A line the chunker would read as a heading or a code fence; escaped with ``\\`` in body text.
_MARKDOWN_LOOKALIKE = re.compile(r"^(?:#{1,6}(?:[ \t]|$)|```|~~~)", re.MULTILINE)
_SPACES = re.compile(r"[ \t\r\n]+")
_LINE_BREAKS = re.compile(r"[ \t]*[\r\n\t\v]+[ \t]*")
#: Elements whose content is not the document's text (generated, hidden or bookkeeping).
_SKIPPED = frozenset(
    {
        "office:annotation",
        "office:annotation-end",
        "office:forms",
        "text:tracked-changes",
        "text:sequence-decls",
        "text:variable-decls",
        "text:user-field-decls",
        "text:dde-connection-decls",
        "table:named-expressions",
        "table:database-ranges",
        "table:calculation-settings",
        "table:content-validations",
        "table:label-ranges",
        "text:table-of-content",
        "text:alphabetical-index",
        "text:illustration-index",
        "text:table-index",
        "text:object-index",
        "text:user-index",
        "text:bibliography",
        "text:note-citation",
        "text:soft-page-break",
        "draw:image",
        "draw:object",
        "draw:object-ole",
        "draw:page-thumbnail",
        "svg:title",
        "svg:desc",
        "presentation:notes",
    }
)
_TABLE_ROW_HOLDERS = frozenset({"table:table-header-rows", "table:table-rows", "table:table-row-group"})
_META_KEYS = ("Title", "Author", "Subject", "Keywords", "CreationDate", "ModDate")


class OdtParser:
    """Converts an OpenDocument text (``.odt``) to Markdown-ish text."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the ODT at ``path``.

        Returns:
            A ``ParsedDocument`` of kind ``'odt'``: blocks (headings, paragraphs, lists, pipe
            tables) separated by a blank line, no pages; ``metadata`` from ``meta.xml``
            (``Title``, ``Author`` (the initial creator, else the last one), ``Subject``,
            ``Keywords`` (comma-separated), ``CreationDate``/``ModDate`` as ISO 8601), empty
            ones left out.

        Raises:
            DocumentCorrupt: not a readable ZIP, no or malformed ``content.xml``.
            DocumentEncrypted: the document is saved with a password.
            ArchiveTooLarge: it unpacks to more than ``options.max_unpacked_bytes``.
            UnsupportedType: an OpenDocument package that is not a text document.
            FileNotFoundError: ``path`` is not a file.
        """
        document = open_document(path, options, what="ODT", mimetype=odfdo.const.ODF_TEXT)
        warnings: list[str] = []
        try:
            blocks: list[str] = []
            render_blocks(document.body, blocks, title_styles(document))
        except RecursionError as exc:
            raise DocumentCorrupt("the ODT nests its content too deeply to read; re-save it") from exc
        except _LIBRARY_ERRORS as exc:
            raise DocumentCorrupt(
                f"the ODT content is malformed ({type(exc).__name__}: {scrub_paths(str(exc))}); re-save it"
            ) from exc
        return ParsedDocument(
            markdown="\n\n".join(blocks),
            kind="odt",
            pages=[],
            metadata=document_metadata(document, warnings),
            warnings=warnings,
        )


def open_document(path: Path, options: ParseOptions, *, what: str, mimetype: str) -> odfdo.Document:
    """Open the OpenDocument package at ``path`` with odfdo, its ``content.xml`` parsed.

    Args:
        path: the file.
        options: the parse's limits (``max_unpacked_bytes``).
        what: the format's name for messages (``'ODT'``, ``'ODP'``).
        mimetype: the ``mimetype`` member the package must declare.

    Raises:
        DocumentCorrupt, DocumentEncrypted, ArchiveTooLarge, UnsupportedType: as
            :meth:`OdtParser.parse` says.
        FileNotFoundError: ``path`` is not a file.
    """
    if not path.is_file():
        raise FileNotFoundError(path)
    members = check_archive(path, options.max_unpacked_bytes, what=what)
    _refuse_encrypted(path, members, what)
    # odfdo's own zip-bomb guard follows the service's limit (check_archive has applied it to
    # the declared sizes, which zipfile enforces); each parse sets it, so a child that parses
    # many documents applies each parse's options. Its per-member compression-ratio check
    # (200:1) is lifted: a plain repetitive document passes it (a checklist of 30,000 lines
    # compresses 290:1), and the unpacked total, not the ratio, is what bounds memory.
    odf_security.security.max_uncompressed_size = options.max_unpacked_bytes
    odf_security.security.max_compression_ratio = _NO_RATIO_LIMIT
    try:
        document = odfdo.Document(path)
        found = document.mimetype
        if found != mimetype:
            raise UnsupportedType(
                f"the package is an OpenDocument of type {found[:80]!r}, not the {what} it was "
                "detected as; save it in the matching format"
            )
        document.body  # parses content.xml: a damaged one fails here  # noqa: B018
    except odf_security.SecurityError as exc:
        raise ArchiveTooLarge(
            f"the {what} looks like a zip bomb ({scrub_paths(str(exc))}); re-save it, or split it"
        ) from exc
    except (FileNotFoundError, PermissionError):
        raise
    except _LIBRARY_ERRORS as exc:
        raise DocumentCorrupt(
            f"the {what} is damaged ({type(exc).__name__}: {scrub_paths(str(exc))[:300]}); "
            "re-save it in LibreOffice"
        ) from exc
    return document


def _refuse_encrypted(path: Path, members: list[zipfile.ZipInfo], what: str) -> None:
    """Raise DocumentEncrypted when the manifest declares encrypted members."""
    if not any(m.filename == "META-INF/manifest.xml" for m in members):
        return
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = zf.read("META-INF/manifest.xml")
    except _LIBRARY_ERRORS:
        return  # odfdo reports the damage when it opens the package
    if b"encryption-data" in manifest:
        raise DocumentEncrypted(
            f"the {what} is protected by a password; save a copy without it (File > Properties > "
            "Security, or Save As without 'Save with password') and upload that"
        )


def document_metadata(document: odfdo.Document, warnings: list[str]) -> dict[str, str]:
    """``meta.xml``'s properties (see :meth:`OdtParser.parse`); an unreadable one is a warning."""
    try:
        meta = document.meta
        values: dict[str, Any] = {
            "Title": meta.get_title(),
            "Author": meta.get_initial_creator() or meta.get_creator(),
            "Subject": meta.get_subject(),
            "Keywords": meta.get_keywords(),
            "CreationDate": meta.get_creation_date(),
            "ModDate": meta.get_modification_date(),
        }
    except (*_LIBRARY_ERRORS, odf_security.SecurityError) as exc:
        warnings.append(f"the document properties (meta.xml) could not be read ({type(exc).__name__})")
        return {}
    metadata: dict[str, str] = {}
    for key in _META_KEYS:
        value = values[key]
        if isinstance(value, (datetime, date)):
            text = value.isoformat()
        elif isinstance(value, (list, tuple)):
            text = ", ".join(str(v).strip() for v in value if str(v).strip())
        else:
            text = "" if value is None else str(value).strip()
        if text:
            metadata[key] = text
    return metadata


def children(element: odfdo.Element) -> Iterator[odfdo.Element]:
    """The child elements of ``element`` (comments and processing instructions left out)."""
    for child in element.children:
        if isinstance(child.tag, str):
            yield child


def inline_text(element: odfdo.Element) -> str:
    """The text of a paragraph or heading as ODF renders it: runs of white space collapsed to
    one space, ``text:s`` spaces kept, tabs and line breaks as ``\\t`` and ``\\n``, footnotes in
    parentheses, comments and frames (images, text boxes) left out; ends stripped."""
    parts: list[str] = []
    _inline(element, parts)
    return "".join(parts).strip(" ")


def _inline(element: odfdo.Element, parts: list[str]) -> None:
    if element.text:
        parts.append(_SPACES.sub(" ", element.text))
    for child in children(element):
        tag = child.tag
        if tag == "text:s":
            parts.append(" " * min(_int(child.get_attribute("text:c"), 1), 1000))
        elif tag == "text:tab":
            parts.append("\t")
        elif tag == "text:line-break":
            parts.append("\n")
        elif tag == "text:note":
            body = child.get_element("text:note-body")
            note = " ".join(t for t in (inline_text(p) for p in _paragraphs(body)) if t) if body else ""
            if note:
                spaced = bool(parts) and parts[-1].endswith(" ")
                parts.append(f"({note})" if spaced else f" ({note})")
        elif tag in _SKIPPED or tag == "draw:frame" or tag.startswith("draw:"):
            pass  # frames and shapes anchored in the paragraph: read as blocks after it
        else:
            _inline(child, parts)
        if child.tail:
            parts.append(_SPACES.sub(" ", child.tail))


def _paragraphs(element: odfdo.Element) -> Iterator[odfdo.Element]:
    """``text:p`` and ``text:h`` under ``element``, in order (not inside anchored frames)."""
    for child in children(element):
        if child.tag in ("text:p", "text:h"):
            yield child
        elif child.tag not in _SKIPPED:
            yield from _paragraphs(child)


def render_blocks(
    element: odfdo.Element, blocks: list[str], title_styles: frozenset[str] = frozenset()
) -> None:
    """Append the Markdown blocks of ``element``'s children to ``blocks``, in document order:
    headings (``text:h``, and paragraphs of a style in ``title_styles`` as ``#``), paragraphs,
    lists, pipe tables; sections, text boxes and frames are descended into; :data:`_SKIPPED`
    elements left out."""
    for child in children(element):
        tag = child.tag
        if tag in _SKIPPED:
            continue
        if tag == "text:h":
            _heading(child, blocks)
            _anchored(child, blocks)
        elif tag == "text:p":
            text = inline_text(child)
            if text.strip():
                if child.get_attribute("text:style-name") in title_styles:
                    blocks.append("# " + _LINE_BREAKS.sub(" ", text).strip())
                else:
                    blocks.append(escape_markdown(text))
            _anchored(child, blocks)
        elif tag == "text:list":
            lines: list[str] = []
            _list_lines(child, 0, lines, blocks)
            if lines:
                blocks.append("\n".join(lines))
        elif tag == "table:table":
            table = pipe_table(_table_rows(child))
            if table:
                blocks.append(table)
        else:  # text:section, draw:frame, draw:text-box, draw:g, text:index-body ...
            render_blocks(child, blocks, title_styles)


def _heading(element: odfdo.Element, blocks: list[str]) -> None:
    """A ``text:h`` as an ATX heading of its outline level (clamped to 1-6); nothing if blank."""
    text = _LINE_BREAKS.sub(" ", inline_text(element)).strip()
    if text:
        level = min(max(_int(element.get_attribute("text:outline-level"), 1), 1), MAX_HEADING_LEVEL)
        blocks.append("#" * level + " " + text)


def title_styles(document: odfdo.Document) -> frozenset[str]:
    """Names of the paragraph styles that are, or derive from, the ``Title`` style (automatic
    styles of ``content.xml`` and common styles of ``styles.xml``, followed through
    ``style:parent-style-name``)."""
    parents: dict[str, str] = {}
    for part in (document.content, document.styles):
        for style in part.root.get_elements("//style:style[@style:family='paragraph']"):
            name = style.get_attribute("style:name")
            parent = style.get_attribute("style:parent-style-name")
            if isinstance(name, str) and isinstance(parent, str):
                parents.setdefault(name, parent)
    found: set[str] = set()
    for name in parents:
        current: str | None = name
        for _ in range(_MAX_STYLE_DEPTH):
            if current is None:
                break
            if current.lower() == "title":
                found.add(name)
                break
            current = parents.get(current)
    found.add("Title")
    return frozenset(found)


def _anchored(paragraph: odfdo.Element, blocks: list[str]) -> None:
    """Blocks of the frames (text boxes) anchored inside a paragraph, after it."""
    for child in children(paragraph):
        if child.tag.startswith("draw:") and child.tag not in _SKIPPED:
            render_blocks(child, blocks)
        elif child.tag in ("text:span", "text:a", "text:meta"):
            _anchored(child, blocks)


def _list_lines(element: odfdo.Element, depth: int, lines: list[str], blocks: list[str]) -> None:
    """``- `` items of a ``text:list`` (nested lists indented two spaces per level); a table in
    an item is written as its own block after the list's items so far."""
    indent = "  " * depth
    for item in children(element):
        if item.tag not in ("text:list-item", "text:list-header"):
            continue
        first = True
        for child in children(item):
            if child.tag == "text:h":  # a numbered heading: LibreOffice writes it in a list
                if lines:
                    blocks.append("\n".join(lines))
                    lines.clear()
                _heading(child, blocks)
            elif child.tag == "text:p":
                text = _LINE_BREAKS.sub(" ", inline_text(child)).strip()
                if text:
                    lines.append(f"{indent}- {text}" if first else f"{indent}  {text}")
                    first = False
            elif child.tag == "text:list":
                _list_lines(child, depth + 1, lines, blocks)
            elif child.tag == "table:table":
                table = pipe_table(_table_rows(child))
                if table:
                    if lines:
                        blocks.append("\n".join(lines))
                        lines.clear()
                    blocks.append(table)


def _table_rows(table: odfdo.Element) -> Iterator[list[str]]:
    """The rows of a ``table:table`` as cell texts (covered cells empty), repeats expanded up
    to :data:`MAX_REPEATED` times."""
    for child in children(table):
        if child.tag in _TABLE_ROW_HOLDERS:
            yield from _table_rows(child)
        elif child.tag == "table:table-row":
            cells: list[str] = []
            for cell in children(child):
                if cell.tag not in ("table:table-cell", "table:covered-table-cell"):
                    continue
                text = cell_text(cell) if cell.tag == "table:table-cell" else ""
                repeat = min(_int(cell.get_attribute("table:number-columns-repeated"), 1), MAX_REPEATED)
                cells.extend([text] * repeat)
            if any(cells):
                repeat = min(_int(child.get_attribute("table:number-rows-repeated"), 1), MAX_REPEATED)
                for _ in range(repeat):
                    yield cells


def cell_text(cell: odfdo.Element) -> str:
    """The text of a table cell fit for one pipe-table cell: its paragraphs (nested tables
    flattened) joined by spaces, line breaks as spaces, ``|`` escaped."""
    texts = [inline_text(p) for p in _paragraphs(cell)]
    return _LINE_BREAKS.sub(" ", " ".join(t for t in texts if t)).strip().replace("|", "\\|")


def pipe_table(rows: Iterator[list[str]] | list[list[str]]) -> str:
    """A Markdown pipe table of ``rows`` (cell texts already escaped), the first row the header:
    empty rows dropped, trailing empty columns trimmed, short rows padded; '' when no row has
    text."""
    kept = [r for r in rows if any(c.strip() for c in r)]
    if not kept:
        return ""
    width = max(max((i + 1 for i, c in enumerate(r) if c.strip()), default=0) for r in kept)
    lines = ["| " + " | ".join((r + [""] * width)[:width]) + " |" for r in kept]
    lines.insert(1, "|" + " --- |" * width)
    return "\n".join(lines)


def escape_markdown(text: str) -> str:
    """``text`` with a ``\\`` before every line that starts like a heading or a code fence, so
    body text is not read as one; wider than ``base.escape_markdown``: a line of only ``#``
    marks (an empty ATX heading to a Markdown reader) is escaped too."""
    return _MARKDOWN_LOOKALIKE.sub(lambda m: "\\" + m.group(0), text)


def _int(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default
