"""Presentations -> Markdown-ish text, one page per slide: PowerPoint (PPTX) via python-pptx,
OpenDocument (ODP) via odfdo.

A slide is written as its title as a ``#`` heading (``# Slide N`` when it has none), then
its shapes in reading order (top to bottom, then left to right; a group's shapes in their
own order at the group's place): text frames as paragraphs (bulleted paragraphs and the
body placeholders' as ``- `` items, two spaces of indent per level), tables as pipe tables
(first row the header); then the speaker notes under ``## Notes``. Pictures and charts have
no text here, nor have the footer, date and slide-number placeholders (the same on every
slide). Hidden slides are skipped with a warning (their page kept, empty), as hidden sheets
are: they are what the author chose not to show. A slide whose XML is damaged is skipped
with a warning and the other slides kept.
"""

from __future__ import annotations

import gc
import re
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import odfdo
from lxml import etree
from pptx.enum.shapes import PP_PLACEHOLDER
from pptx.exc import PackageNotFoundError, PythonPptxError
from pptx.package import Package
from pptx.parts.presentation import PresentationPart
from pptx.shapes.group import GroupShape

from docingest.errors import DocumentCorrupt, UnsupportedType, scrub_paths
from docingest.providers.parsing.archive import ZIP_ERRORS, check_archive, core_metadata
from docingest.providers.parsing.base import (
    DEFAULT_OPTIONS,
    PAGE_SEPARATOR,
    PageJoiner,
    PageProgress,
    ParsedDocument,
    ParsedPage,
    ParseOptions,
)
from docingest.providers.parsing.opendocument import (
    children,
    document_metadata,
    escape_markdown,
    inline_text,
    open_document,
    pipe_table,
    render_blocks,
)

#: Text put between two non-empty slides in ``ParsedDocument.markdown`` (as between PDF pages).
SLIDE_SEPARATOR = PAGE_SEPARATOR
#: The heading the speaker notes are written under, one level below the slide's title.
NOTES_HEADING = "## Notes"

_MAX_LISTED = 10
_LINE_BREAKS = re.compile(r"[ \t]*[\r\n\t\v]+[ \t]*")
# What python-pptx / zipfile / lxml raise on a damaged package, part or shape.
_LIBRARY_ERRORS = (
    *ZIP_ERRORS,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    PythonPptxError,
    etree.LxmlError,
)
#: Placeholders whose paragraphs are bullets unless a paragraph says ``buNone``.
_BULLETED_PLACEHOLDERS = frozenset({PP_PLACEHOLDER.BODY, PP_PLACEHOLDER.OBJECT})
#: Placeholders that repeat on every slide (footer, date, slide number): left out.
_FURNITURE_PLACEHOLDERS = frozenset(
    {PP_PLACEHOLDER.FOOTER, PP_PLACEHOLDER.DATE, PP_PLACEHOLDER.SLIDE_NUMBER, PP_PLACEHOLDER.HEADER}
)
#: The same in ODP (``presentation:class``).
_FURNITURE_CLASSES = frozenset({"footer", "date-time", "page-number", "header"})
#: A slide or notes part of a PPTX package (the parts replaced when their XML is damaged).
_SLIDE_PART = re.compile(r"ppt/(?:slides/slide|notesSlides/notesSlide)[^/]*\.xml", re.IGNORECASE)
_NS = (
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"'
)
_EMPTY_TREE = (
    '<p:cSld><p:spTree><p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr>'
    "<p:grpSpPr/></p:spTree></p:cSld>"
)
#: Stand-ins for a damaged slide or notes part, so python-pptx can open the rest.
_EMPTY_SLIDE = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><p:sld {_NS}>{_EMPTY_TREE}</p:sld>'
_EMPTY_NOTES = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><p:notes {_NS}>{_EMPTY_TREE}</p:notes>'
)


class PptxParser:
    """Converts a PowerPoint (OOXML) presentation to Markdown-ish text, one page per slide."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the PPTX at ``path``; ``on_progress(slides_read, slides_total)`` after each slide.

        Returns:
            A ``ParsedDocument`` of kind ``'pptx'``: one ``ParsedPage`` per slide (``number``
            its 1-based position, hidden slides counted), ``markdown[p.start:p.end]`` being the
            slide's text as the module docstring says, non-empty slides joined by
            :data:`SLIDE_SEPARATOR`; a slide without text (or hidden, or unreadable) is
            ``empty``. ``metadata`` from the core properties (``Title``, ``Author``,
            ``Subject``, ``Keywords``, ``LastModifiedBy``, ``CreationDate``/``ModDate`` as ISO
            8601), empty ones left out. A presentation without slides has empty ``markdown``
            (the parse stage then fails ``no_text``) and a warning.

        Raises:
            DocumentCorrupt: not a readable ZIP, a missing or malformed part other than a
                slide's (a damaged slide is a warning).
            ArchiveTooLarge: it unpacks to more than ``options.max_unpacked_bytes``.
            UnsupportedType: an OOXML package whose main part is not a presentation (``.pptx``,
                ``.pptm``, ``.potx`` and ``.ppsx`` are read).
            FileNotFoundError: ``path`` is not a file.
        """
        if not path.is_file():
            raise FileNotFoundError(path)
        check_archive(path, options.max_unpacked_bytes, what="PPTX")
        warnings: list[str] = []
        presentation, damaged = _open_pptx(path)
        try:
            slide_ids = _slide_ids(presentation)
            metadata = _core_metadata(presentation)
        except _LIBRARY_ERRORS as exc:
            raise DocumentCorrupt(
                f"the PPTX is malformed ({type(exc).__name__}: {_cause(exc)}); re-save it"
            ) from exc
        texts: list[str | None] = []
        hidden: list[int] = []
        unreadable: list[int] = []
        position = _Positions()
        total = len(slide_ids)
        for number, r_id in enumerate(slide_ids, 1):
            text: str | None = None
            try:
                slide = presentation.part.related_slide(r_id)  # KeyError: the slide part is missing
                if str(slide.part.partname).lstrip("/") in damaged:
                    unreadable.append(number)
                elif slide._element.get("show") in ("0", "false"):
                    hidden.append(number)
                else:
                    text = _pptx_slide(slide, number, damaged, position)
            except (RecursionError, *_LIBRARY_ERRORS):
                unreadable.append(number)
            texts.append(text)
            if on_progress is not None:
                on_progress(number, total)
        _slide_warnings(warnings, total, hidden, unreadable)
        markdown, pages = assemble_slides(texts)
        return ParsedDocument(
            markdown=markdown, kind="pptx", pages=pages, metadata=metadata, warnings=warnings
        )


class OdpParser:
    """Converts an OpenDocument presentation (``.odp``) to Markdown-ish text, one page per slide."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the ODP at ``path``; ``on_progress(slides_read, slides_total)`` after each slide.

        Returns:
            A ``ParsedDocument`` of kind ``'odp'``, shaped as :meth:`PptxParser.parse`'s: the
            title frame (``presentation:class="title"``) as the ``#`` heading, frames, shapes
            and groups in reading order (by ``svg:y``, then ``svg:x``), lists, tables, the
            notes under ``## Notes``; slides hidden (``presentation:visibility="hidden"``)
            skipped with a warning. ``metadata`` from ``meta.xml`` as for ODT.

        Raises:
            DocumentCorrupt, DocumentEncrypted, ArchiveTooLarge, UnsupportedType,
                FileNotFoundError: as :meth:`opendocument.OdtParser.parse` says.
        """
        document = open_document(path, options, what="ODP", mimetype=odfdo.const.ODF_PRESENTATION)
        warnings: list[str] = []
        try:
            pages = [p for p in children(document.body) if p.tag == "draw:page"]
            hidden_styles = _hidden_page_styles(document)
        except _LIBRARY_ERRORS as exc:
            raise DocumentCorrupt(
                f"the ODP content is malformed ({type(exc).__name__}: {_cause(exc)}); re-save it"
            ) from exc
        texts: list[str | None] = []
        hidden: list[int] = []
        unreadable: list[int] = []
        total = len(pages)
        for number, page in enumerate(pages, 1):
            if (
                page.get_attribute("presentation:visibility") == "hidden"
                or page.get_attribute("draw:style-name") in hidden_styles
            ):
                hidden.append(number)
                texts.append(None)
            else:
                try:
                    texts.append(_odp_slide(page, number))
                except (RecursionError, *_LIBRARY_ERRORS):
                    unreadable.append(number)
                    texts.append(None)
            if on_progress is not None:
                on_progress(number, total)
        _slide_warnings(warnings, total, hidden, unreadable)
        markdown, parsed_pages = assemble_slides(texts)
        metadata = document_metadata(document, warnings)
        return ParsedDocument(
            markdown=markdown, kind="odp", pages=parsed_pages, metadata=metadata, warnings=warnings
        )


def assemble_slides(texts: list[str | None]) -> tuple[str, list[ParsedPage]]:
    """The document text and one page per slide from each slide's text (None or blank: an empty
    page), non-empty slides joined by :data:`SLIDE_SEPARATOR`."""
    joiner = PageJoiner()
    for number, text in enumerate(texts, 1):
        joiner.add(number, text)
    return joiner.markdown, joiner.pages


def slide_text(number: int, title: str, body: list[str], notes: list[str]) -> str:
    """One slide's Markdown: ``# title`` (``# Slide N`` when blank), the body blocks, the notes
    under :data:`NOTES_HEADING`; '' when the slide has no text at all."""
    title = _LINE_BREAKS.sub(" ", title).strip()
    if not (title or body or notes):
        return ""
    blocks = ["# " + (title or f"Slide {number}"), *body]
    if notes:
        blocks += [NOTES_HEADING, *notes]
    return "\n\n".join(blocks)


def _slide_warnings(warnings: list[str], total: int, hidden: list[int], unreadable: list[int]) -> None:
    if total == 0:
        warnings.append("the presentation has no slides")
    if hidden:
        warnings.append(f"skipped {len(hidden)} hidden slide(s): {_list_slides(hidden)}")
    if unreadable:
        warnings.append(
            f"{len(unreadable)} of {total} slide(s) could not be read (damaged or missing) and were "
            f"skipped: {_list_slides(unreadable)}"
        )


def _list_slides(numbers: list[int]) -> str:
    """``'slides 3, 4, 9'``, with at most ten numbers shown."""
    shown = ", ".join(str(n) for n in numbers[:_MAX_LISTED])
    more = f" and {len(numbers) - _MAX_LISTED} more" if len(numbers) > _MAX_LISTED else ""
    return f"slide{'s' if len(numbers) > 1 else ''} {shown}{more}"


def _cause(exc: BaseException) -> str:
    """A library error's text for a user: without the server path of the file."""
    return scrub_paths(str(exc))[:300]


# ------------------------------------------------------------------------------------ PPTX


def _open_pptx(path: Path) -> tuple[Any, set[str]]:
    """The python-pptx presentation, and the package members of damaged slides or notes that
    were replaced by empty ones to open it (a member name like ``ppt/slides/slide3.xml``)."""
    try:
        try:
            return _load_pptx(str(path)), set()
        except etree.XMLSyntaxError:
            damaged = _damaged_slide_parts(path)
            if not damaged:
                raise
        # The failed attempt's members (all read into memory by python-pptx) are held by a
        # reference cycle through the traceback: free them before reading the copy.
        gc.collect()
        # python-pptx reads every member into memory when it opens a package: the copy is
        # not needed afterwards.
        with tempfile.TemporaryFile() as copy:
            _write_repaired(path, damaged, copy)
            copy.seek(0)
            return _load_pptx(copy), damaged
    except (FileNotFoundError, PermissionError):
        raise
    except UnsupportedType:
        raise
    except PackageNotFoundError as exc:  # its text is "Package not found at '<server path>'"
        raise DocumentCorrupt(
            "the PPTX is damaged (not a readable ZIP package: truncated, or not a PPTX); "
            "re-save it in PowerPoint or LibreOffice"
        ) from exc
    except _LIBRARY_ERRORS as exc:
        raise DocumentCorrupt(
            f"the PPTX is damaged ({type(exc).__name__}: {_cause(exc)}); re-save it in PowerPoint "
            "or LibreOffice"
        ) from exc


def _slide_ids(presentation: Any) -> list[str]:
    """The relationship ids of the slides, in presentation order (``p:sldIdLst``): read here,
    not through ``presentation.slides``, so a slide whose part is missing fails alone."""
    id_list = presentation._element.sldIdLst
    return [] if id_list is None else [sld_id.rId for sld_id in id_list.sldId_lst]


def _load_pptx(source: str | IO[bytes]) -> Any:
    """The presentation of a package whose main part is a presentation, a macro-enabled one, a
    template or a slide show (``pptx.Presentation`` refuses the last two; their parts are the
    same)."""
    main = Package.open(source).main_document_part
    if not isinstance(main, PresentationPart):
        raise UnsupportedType(
            f"the package's main part is not a PowerPoint presentation ({main.content_type[:100]}); "
            "save it as .pptx"
        )
    return main.presentation


def _damaged_slide_parts(path: Path) -> set[str]:
    """Slide and notes members of the package whose XML does not parse."""
    parser = etree.XMLParser(resolve_entities=False, huge_tree=False)
    damaged: set[str] = set()
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if _SLIDE_PART.fullmatch(name):
                try:
                    etree.fromstring(zf.read(name), parser)
                except etree.XMLSyntaxError:
                    damaged.add(name)
    return damaged


def _write_repaired(path: Path, damaged: set[str], target: IO[bytes]) -> None:
    """Copy the package into ``target`` with each damaged slide or notes part emptied; members
    are stored, not compressed again (a deck of photos would take seconds to deflate)."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
        for info in source.infolist():
            if info.filename in damaged:
                stand_in = _EMPTY_NOTES if "notesSlides/" in info.filename else _EMPTY_SLIDE
                data = stand_in.encode()
            else:
                data = source.read(info)
            out.writestr(zipfile.ZipInfo(info.filename, info.date_time), data)


def _pptx_slide(slide: Any, number: int, damaged: set[str], position: _Positions) -> str:
    """One slide's Markdown (see :func:`slide_text`)."""
    title_shape = slide.shapes.title
    title = title_shape.text_frame.text if title_shape is not None and title_shape.has_text_frame else ""
    skip = title_shape.shape_id if title_shape is not None else None
    body: list[str] = []
    _pptx_shapes(slide.shapes, skip, body, position)
    notes: list[str] = []
    if slide.has_notes_slide:
        notes_slide = slide.notes_slide
        placeholder = None
        if str(notes_slide.part.partname).lstrip("/") not in damaged:
            placeholder = notes_slide.notes_placeholder
        if placeholder is not None and placeholder.has_text_frame:
            text = _pptx_text_frame(placeholder.text_frame, bulleted=False)
            if text:
                notes.append(text)
    return slide_text(number, title, body, notes)


class _Positions:
    """(top, left) of shapes in EMU, for sorting them into reading order; 0 for a shape with no
    position of its own nor from its layout. A placeholder without its own position takes its
    layout's (python-pptx looks it up on every access, the costliest step of a parse: the
    answer is kept per layout and placeholder index)."""

    def __init__(self) -> None:
        self.inherited: dict[tuple[str, int], tuple[int, int]] = {}

    def __call__(self, shape: Any) -> tuple[int, int]:
        element = shape._element
        top, left = getattr(element, "y", None), getattr(element, "x", None)
        if (top is not None and left is not None) or not shape.is_placeholder:
            return (top or 0, left or 0)
        key = (str(shape.part.partname), shape.placeholder_format.idx)
        layout = getattr(shape.part, "slide_layout", None)
        if layout is not None:
            key = (str(layout.part.partname), key[1])
        found = self.inherited.get(key)
        if found is None:
            found = self.inherited[key] = (shape.top or 0, shape.left or 0)
        return (top if top is not None else found[0], left if left is not None else found[1])


def _pptx_shapes(shapes: Iterable[Any], skip: int | None, blocks: list[str], position: _Positions) -> None:
    """Append the blocks of ``shapes`` in reading order; the shape ``skip`` (the title) left out."""
    for shape in sorted(shapes, key=position):
        if shape.is_placeholder and (
            shape.shape_id == skip or shape.placeholder_format.type in _FURNITURE_PLACEHOLDERS
        ):
            continue
        if isinstance(shape, GroupShape):
            _pptx_shapes(shape.shapes, None, blocks, position)
        elif shape.has_table:
            table = pipe_table([[_pptx_cell(cell) for cell in row.cells] for row in shape.table.rows])
            if table:
                blocks.append(table)
        elif shape.has_text_frame:
            bulleted = shape.is_placeholder and shape.placeholder_format.type in _BULLETED_PLACEHOLDERS
            text = _pptx_text_frame(shape.text_frame, bulleted=bulleted)
            if text:
                blocks.append(text)


def _pptx_cell(cell: Any) -> str:
    if cell.is_spanned:
        return ""
    return _LINE_BREAKS.sub(" ", cell.text).strip().replace("|", "\\|")


def _pptx_text_frame(frame: Any, *, bulleted: bool) -> str:
    """The paragraphs of a text frame, one per line: bullets (by the paragraph's own ``buChar``
    or ``buAutoNum``, or ``bulleted`` unless it says ``buNone``) as ``- `` items indented by
    level, the others as plain lines (escaped when they look like Markdown headings)."""
    lines: list[str] = []
    for paragraph in frame.paragraphs:
        text = paragraph.text.replace("\v", "\n")
        if not text.strip():
            continue
        if _has_bullet(paragraph, bulleted):
            lines.append("  " * paragraph.level + "- " + _LINE_BREAKS.sub(" ", text).strip())
        else:
            lines.append(escape_markdown(text.strip()))
    return "\n".join(lines)


def _has_bullet(paragraph: Any, default: bool) -> bool:
    p_pr = paragraph._p.pPr
    if p_pr is not None:
        for child in p_pr:
            name = etree.QName(child).localname if isinstance(child.tag, str) else ""
            if name == "buNone":
                return False
            if name in ("buChar", "buAutoNum", "buBlip"):
                return True
    return default


def _core_metadata(presentation: Any) -> dict[str, str]:
    return core_metadata(presentation.core_properties)


# ------------------------------------------------------------------------------------- ODP

_UNITS_MM = {"mm": 1.0, "cm": 10.0, "in": 25.4, "pt": 25.4 / 72, "pc": 25.4 / 6, "px": 25.4 / 96}
_LENGTH = re.compile(r"\s*(-?[\d.]+(?:[eE][-+]?\d+)?)\s*([a-z]*)\s*")


def _hidden_page_styles(document: odfdo.Document) -> set[str]:
    """Names of the drawing-page styles that hide a slide (``presentation:visibility``)."""
    names: set[str] = set()
    for props in document.content.root.get_elements("//style:drawing-page-properties"):
        if props.get_attribute("presentation:visibility") == "hidden":
            style = props.parent
            name = style.get_attribute("style:name") if style is not None else None
            if isinstance(name, str):
                names.add(name)
    return names


def _length_mm(value: Any) -> float | None:
    """An ODF length (``2.5cm``, ``12pt`` ...) in millimetres; None when absent or unknown."""
    if not isinstance(value, str):
        return None
    match = _LENGTH.fullmatch(value)
    if match is None or match.group(2) not in _UNITS_MM:
        return None
    try:
        return float(match.group(1)) * _UNITS_MM[match.group(2)]
    except ValueError:
        return None


def _odp_position(shape: odfdo.Element) -> tuple[float, float]:
    """(y, x) of a shape in millimetres; a group's is its first child's in reading order."""
    y, x = _length_mm(shape.get_attribute("svg:y")), _length_mm(shape.get_attribute("svg:x"))
    if y is not None and x is not None:
        return (y, x)
    inner = [_odp_position(c) for c in children(shape) if c.tag.startswith("draw:")]
    return min(inner) if inner else (y or 0.0, x or 0.0)


def _odp_slide(page: odfdo.Element, number: int) -> str:
    """One slide's Markdown (see :func:`slide_text`)."""
    title = ""
    shapes: list[odfdo.Element] = []
    notes: list[str] = []
    for child in children(page):
        if child.tag == "presentation:notes":
            for shape in sorted(_shapes(child), key=_odp_position):
                if shape.get_attribute("presentation:class") == "notes":
                    render_blocks(shape, notes)
        elif child.tag.startswith("draw:"):
            if not title and child.get_attribute("presentation:class") == "title":
                title = " ".join(t for t in (inline_text(p) for p in _text_of(child)) if t)
            else:
                shapes.append(child)
    body: list[str] = []
    _odp_shapes(shapes, body)
    return slide_text(number, title, body, notes)


def _shapes(element: odfdo.Element) -> list[odfdo.Element]:
    return [c for c in children(element) if c.tag.startswith("draw:")]


def _text_of(shape: odfdo.Element) -> list[odfdo.Element]:
    """The paragraphs and headings of a shape (its text box's, or a custom shape's own)."""
    found: list[odfdo.Element] = []

    def walk(element: odfdo.Element) -> None:
        for child in children(element):
            if child.tag in ("text:p", "text:h"):
                found.append(child)
            elif child.tag in ("draw:text-box", "text:list", "text:list-item", "text:section"):
                walk(child)

    walk(shape)
    return found


def _odp_shapes(shapes: list[odfdo.Element], blocks: list[str]) -> None:
    """Append the blocks of the slide's shapes in reading order (groups descended into, each
    in its own reading order): text boxes, tables, custom shapes' text."""
    for shape in sorted(shapes, key=_odp_position):
        if shape.get_attribute("presentation:class") in _FURNITURE_CLASSES:
            continue
        if shape.tag == "draw:g":
            _odp_shapes(_shapes(shape), blocks)
        else:
            render_blocks(shape, blocks)
