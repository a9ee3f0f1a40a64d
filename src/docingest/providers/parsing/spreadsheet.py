"""Spreadsheets (XLSX, XLSM, ODS) -> one Markdown heading and one pipe table per sheet, via
python-calamine (Rust; reads the cached values of formulas, never runs them or macros).

Each sheet is a page (``ParsedPage.number`` = its 1-based position in the workbook, hidden
sheets counted): ``# <sheet name>``, a blank line, then a pipe table whose header is the
sheet's first non-empty row. Empty rows are dropped, empty columns at the right trimmed.
Hidden and very hidden sheets are skipped (an empty page and a warning). Cells are written as a
person reads them: integers without ``.0``, other numbers to 15 significant digits (Excel's
own precision, so binary artefacts such as ``0.30000000000000004`` read ``0.3``), dates and
times in ISO 8601, booleans ``TRUE``/``FALSE``.

Bounds, checked before any text is built: calamine holds a sheet as a dense rectangle (its used
range, 32 bytes a cell, and a failed allocation aborts the process), so a sheet whose used range
spans more than :data:`MAX_RANGE_FACTOR` times ``options.max_spreadsheet_cells`` is refused
before calamine reads it, from one streaming pass over the sheet's XML: an XLSX's cell
references (one cell at A1 and one at XFD1048576: 17 billion cells), an ODS's repeated rows and
cells expanded (a few KB repeating one cell a billion times); then each sheet's non-empty
cells are counted before its text is written, and the workbook fails ``spreadsheet_too_large``
as soon as the count passes ``options.max_spreadsheet_cells``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

import python_calamine as calamine

from docingest.errors import DocumentCorrupt, DocumentEncrypted, SpreadsheetTooLarge, scrub_paths
from docingest.providers.parsing.archive import ZIP_ERRORS, check_archive
from docingest.providers.parsing.base import (
    DEFAULT_OPTIONS,
    PageJoiner,
    PageProgress,
    ParsedDocument,
    ParseOptions,
)

#: A sheet's used range (the rectangle calamine allocates) may span at most this many times
#: ``ParseOptions.max_spreadsheet_cells`` cells (at the default 5 million: 20 million cells,
#: 640 MB in calamine, inside the parse child's default 2 GB).
MAX_RANGE_FACTOR = 4
#: Significant digits of a number that is not an integer (Excel keeps 15).
SIGNIFICANT_DIGITS = 15

_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_LINE_BREAKS = re.compile(r"\s*[\r\n\t\v\f]+\s*")
#: Document properties read (their first MiB: a property part is a few hundred bytes).
_PROPERTY_BYTES = 1024 * 1024
_DC = "{http://purl.org/dc/elements/1.1/}"
_DCTERMS = "{http://purl.org/dc/terms/}"
_CP = "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}"
_META = "{urn:oasis:names:tc:opendocument:xmlns:meta:1.0}"
#: metadata key -> element tags, the first present winning.
_XLSX_PROPERTIES: dict[str, tuple[str, ...]] = {
    "Title": (f"{_DC}title",),
    "Author": (f"{_DC}creator",),
    "Subject": (f"{_DC}subject",),
    "Keywords": (f"{_CP}keywords",),
    "CreationDate": (f"{_DCTERMS}created",),
    "ModDate": (f"{_DCTERMS}modified",),
}
_ODS_PROPERTIES: dict[str, tuple[str, ...]] = {
    "Title": (f"{_DC}title",),
    "Author": (f"{_META}initial-creator", f"{_DC}creator"),
    "Subject": (f"{_DC}subject",),
    "Keywords": (f"{_META}keyword",),
    "CreationDate": (f"{_META}creation-date",),
    "ModDate": (f"{_DC}date",),
}
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_MAIN_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
# A cell reference in a worksheet part: <c r="AB12" ...> (any attribute order, any prefix).
_CELL_REF = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c\s[^>]*?\br=\"([A-Z]{1,3})([0-9]{1,7})\"")
_SCAN_BYTES = 1024 * 1024

#: A cell value as calamine gives it: str ("" when empty), int, float, bool, date, datetime, time
#: or timedelta.
Cell = object


class XlsxParser:
    """Reads an Excel workbook (XLSX, XLSM: the macros are never run)."""

    kind = "xlsx"
    what = "XLSX"

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the workbook at ``path``; ``on_progress(sheets_read, sheets_total)`` after each sheet.

        Returns:
            A ``ParsedDocument`` of kind ``'xlsx'`` (module docstring): one page per sheet,
            ``metadata`` from the core properties (``Title``, ``Author``, ``Subject``,
            ``Keywords``, ``CreationDate``, ``ModDate``), a warning per skipped hidden sheet.

        Raises:
            DocumentEncrypted: the workbook is password-protected (an encrypted OLE2 package).
            DocumentCorrupt: not a readable workbook (truncated ZIP, damaged XML).
            ArchiveTooLarge: the package unpacks to more than ``options.max_unpacked_bytes``.
            SpreadsheetTooLarge: over ``options.max_spreadsheet_cells`` non-empty cells, or a
                sheet's used range over :data:`MAX_RANGE_FACTOR` times that.
        """
        _refuse_ole2(path, self.what)
        check_archive(path, options.max_unpacked_bytes, what=self.what)
        _check_xlsx_ranges(path, options.max_spreadsheet_cells)
        metadata = _properties(path, "docProps/core.xml", _XLSX_PROPERTIES)
        return _parse_workbook(path, self.kind, self.what, options, on_progress, metadata)


class OdsParser:
    """Reads an OpenDocument spreadsheet (ODS)."""

    kind = "ods"
    what = "ODS"

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the spreadsheet at ``path``; ``on_progress(sheets_read, sheets_total)`` after each sheet.

        Returns:
            A ``ParsedDocument`` of kind ``'ods'``, shaped as :meth:`XlsxParser.parse`'s;
            ``metadata`` from ``meta.xml``.

        Raises:
            DocumentEncrypted: the spreadsheet is password-protected.
            DocumentCorrupt: not a readable spreadsheet (truncated ZIP, damaged XML).
            ArchiveTooLarge: the package unpacks to more than ``options.max_unpacked_bytes``.
            SpreadsheetTooLarge: over ``options.max_spreadsheet_cells`` non-empty cells, or a
                sheet's used range (repeated rows and cells expanded) over
                :data:`MAX_RANGE_FACTOR` times that.
        """
        check_archive(path, options.max_unpacked_bytes, what=self.what)
        _refuse_encrypted_opendocument(path, self.what)
        _check_ods_ranges(path, options.max_spreadsheet_cells)
        metadata = _properties(path, "meta.xml", _ODS_PROPERTIES)
        return _parse_workbook(path, self.kind, self.what, options, on_progress, metadata)


def _refuse_ole2(path: Path, what: str) -> None:
    """A password-protected OOXML file is an OLE2 container: say so (sniffing raises the same)."""
    with open(path, "rb") as fh:
        head = fh.read(len(_OLE2_MAGIC))
    if head == _OLE2_MAGIC:
        raise DocumentEncrypted(
            f"the {what} is password-protected (an encrypted package); save a copy without the "
            "password and upload it"
        )


def _refuse_encrypted_opendocument(path: Path, what: str) -> None:
    """A password-protected OpenDocument package lists ``encryption-data`` for its encrypted
    members in ``META-INF/manifest.xml``."""
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = zf.read("META-INF/manifest.xml")
    except (KeyError, *ZIP_ERRORS):
        return
    if b"encryption-data" in manifest:
        raise DocumentEncrypted(
            f"the {what} is password-protected; save a copy without the password "
            "(File > Properties > Security) and upload it"
        )


def _parse_workbook(
    path: Path,
    kind: str,
    what: str,
    options: ParseOptions,
    on_progress: PageProgress | None,
    metadata: dict[str, str],
) -> ParsedDocument:
    """Every sheet of the workbook at ``path``, as the module docstring says."""
    warnings: list[str] = []
    joiner = PageJoiner()
    cells = 0
    try:
        with calamine.CalamineWorkbook.from_path(str(path)) as workbook:
            sheets = workbook.sheets_metadata
            for index, sheet_meta in enumerate(sheets):
                number = index + 1
                text = ""
                if sheet_meta.visible != calamine.SheetVisibleEnum.Visible:
                    how = (
                        "very hidden"
                        if sheet_meta.visible == calamine.SheetVisibleEnum.VeryHidden
                        else "hidden"
                    )
                    warnings.append(f"sheet {number} ({sheet_meta.name!r}) is {how}: skipped")
                else:
                    sheet = workbook.get_sheet_by_index(index)
                    counted, width = _count_cells(sheet.iter_rows())
                    cells += counted
                    if cells > options.max_spreadsheet_cells:
                        raise SpreadsheetTooLarge(
                            f"the {what} holds more than {options.max_spreadsheet_cells:,} non-empty cells "
                            f"(over the limit at sheet {number}, {sheet_meta.name!r}; "
                            "UPLOAD_PIPELINE_MAX_SPREADSHEET_CELLS): split the workbook or export the "
                            "sheets you need as CSV"
                        )
                    text = _render_sheet(sheet_meta.name, sheet.iter_rows(), width)
                    del sheet
                joiner.add(number, text)
                if on_progress is not None:
                    on_progress(number, len(sheets))
    except calamine.PasswordError as exc:
        raise DocumentEncrypted(
            f"the {what} is password-protected; save a copy without the password and upload it"
        ) from exc
    except (calamine.CalamineError, *ZIP_ERRORS) as exc:
        if "Cell limit exceeded" in str(exc):  # calamine's own bound on an ODS's repeated cells
            raise SpreadsheetTooLarge(
                f"the {what} expands to more cells than can be read ({exc}): delete the repeated "
                "cells far from the data, or export the sheets you need as CSV"
            ) from exc
        raise DocumentCorrupt(
            f"the {what} is damaged ({type(exc).__name__}: {scrub_paths(str(exc))[:300]}); "
            "re-save it in Excel or LibreOffice and upload it again"
        ) from exc
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":  # pyo3's, a BaseException: calamine panicked
            raise
        raise DocumentCorrupt(
            f"the {what} could not be read (the reader failed: {scrub_paths(str(exc))[:300]}); "
            "re-save it in Excel or LibreOffice and upload it again"
        ) from exc
    return ParsedDocument(
        markdown=joiner.markdown, kind=kind, pages=joiner.pages, metadata=metadata, warnings=warnings
    )


def _count_cells(rows: Iterable[Sequence[Cell]]) -> tuple[int, int]:
    """(non-empty cells, columns up to the last non-empty cell of any row); a string of only
    whitespace is empty."""
    count = 0
    width = 0
    for row in rows:
        last = 0
        for column, value in enumerate(row, 1):
            if value != "" and not (isinstance(value, str) and value.isspace()):
                count += 1
                last = column
        width = max(width, last)
    return count, width


def _render_sheet(name: str, rows: Iterable[Sequence[Cell]], width: int) -> str:
    """``# name`` and the sheet's pipe table ('' for a sheet without a non-empty cell)."""
    lines = [f"# {_LINE_BREAKS.sub(' ', name).strip() or 'Sheet'}", ""]
    for row in rows:
        line = pipe_table(format_cell(value) for value in row[:width])
        if line:
            lines.append(line)
    if len(lines) == 2:
        return ""
    lines.insert(3, "|" + " --- |" * width)
    return "\n".join(lines)


def pipe_table(cells: Iterable[str]) -> str:
    """Cells already escaped (:func:`table_cell`) as one pipe-table line; '' when all are empty."""
    row = list(cells)
    return "| " + " | ".join(row) + " |" if any(row) else ""


def table_cell(text: str) -> str:
    """``text`` fit for one pipe-table cell: line breaks and tabs as one space, ``|`` as ``\\|``,
    trimmed."""
    return _LINE_BREAKS.sub(" ", text).strip().replace("|", "\\|")


def format_cell(value: object) -> str:
    """A cell value as a person reads it, escaped for a pipe table.

    ``int`` and integral ``float`` without a fraction (``12``, not ``12.0``); other floats to
    :data:`SIGNIFICANT_DIGITS` significant digits without an exponent between 1e-6 and 1e15;
    ``bool`` as ``TRUE``/``FALSE``; ``date`` as ``2024-03-01``, ``datetime`` as
    ``2024-03-01 13:30:00``, ``time`` as ``09:30:00``, ``timedelta`` as ``[h]:mm:ss``;
    ``str`` through :func:`table_cell`; anything else ``str()``.
    """
    if isinstance(value, str):
        return table_cell(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        seconds = int(value.total_seconds())
        sign = "-" if seconds < 0 else ""
        hours, rest = divmod(abs(seconds), 3600)
        return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return table_cell(str(value))


def format_number(value: float) -> str:
    """A float as :func:`format_cell` writes it (``3.0`` -> ``3``, ``0.1 + 0.2`` -> ``0.3``)."""
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = format(value, f".{SIGNIFICANT_DIGITS}g")
    if "e" in text and 1e-6 <= abs(value) < 1e15:
        text = format(value, f".{SIGNIFICANT_DIGITS}f").rstrip("0").rstrip(".")
    return text


def _properties(path: Path, member: str, keys: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Document properties from the package's property part (``docProps/core.xml``,
    ``meta.xml``); {} when it is missing or unreadable (a warning is not worth it: properties
    are optional)."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            root = ElementTree.fromstring(fh.read(_PROPERTY_BYTES))
    except (KeyError, ElementTree.ParseError, *ZIP_ERRORS):
        return {}
    metadata: dict[str, str] = {}
    for key, tags in keys.items():
        for tag in tags:
            element = root.find(f".//{tag}")
            if element is not None and element.text and element.text.strip():
                metadata[key] = element.text.strip()
                break
    return metadata


def _check_xlsx_ranges(path: Path, max_cells: int) -> None:
    """Refuse an XLSX whose visible-or-not sheet has a used range over ``MAX_RANGE_FACTOR *
    max_cells`` cells, from its cell references (one streaming pass over each worksheet part),
    before calamine allocates the range. A damaged part is left for calamine to report."""
    limit = MAX_RANGE_FACTOR * max_cells
    try:
        with zipfile.ZipFile(path) as zf:
            for name, part in _xlsx_sheet_parts(zf):
                if part is None:
                    continue
                rows, columns = _used_range(_read_chunks(zf, part))
                if rows * columns > limit:
                    raise _range_error(name, rows, columns, limit)
    except (KeyError, ElementTree.ParseError, *ZIP_ERRORS):
        return  # calamine reports the damage


def _range_error(name: str, rows: int, columns: int, limit: int) -> SpreadsheetTooLarge:
    return SpreadsheetTooLarge(
        f"sheet {name!r} spans {rows:,} rows by {columns:,} columns "
        f"({rows * columns:,} cells, limit {limit:,}: {MAX_RANGE_FACTOR} times "
        "UPLOAD_PIPELINE_MAX_SPREADSHEET_CELLS): delete the stray cells far from the "
        "data, or export the sheet as CSV"
    )


# The elements of an ODS table that place cells: a table, a row, a cell (covered or not).
_ODS_TAG = re.compile(
    rb"<table:(table|table-row|table-cell|covered-table-cell)(?=[\s/>])([^>]*?)(/?)>|</table:table-row>"
)
_ODS_NAME = re.compile(rb'\btable:name="([^"]*)"')
_ODS_ROWS_REPEATED = re.compile(rb'\btable:number-rows-repeated="([0-9]+)"')
_ODS_COLUMNS_REPEATED = re.compile(rb'\btable:number-columns-repeated="([0-9]+)"')


def _check_ods_ranges(path: Path, max_cells: int) -> None:
    """Refuse an ODS whose sheet's used range, its repeated rows and cells expanded (a few KB
    can repeat a cell a billion times), spans more than ``MAX_RANGE_FACTOR * max_cells``
    cells, from one streaming pass over ``content.xml``. A cell is counted as used when it has
    a value type or content (not an empty ``<table:table-cell .../>``)."""
    limit = MAX_RANGE_FACTOR * max_cells
    try:
        with zipfile.ZipFile(path) as zf:
            extent = _OdsExtent()
            for chunk in _tag_chunks(_read_chunks(zf, "content.xml")):
                for match in _ODS_TAG.finditer(chunk):
                    extent.feed(match)
                    if extent.rows * extent.columns > limit:
                        raise _range_error(extent.name, extent.rows, extent.columns, limit)
    except (KeyError, *ZIP_ERRORS):
        return  # calamine reports the damage


class _OdsExtent:
    """The used range of the ODS table being read: ``rows`` x ``columns``, repeats expanded."""

    def __init__(self) -> None:
        self.name = ""
        self.rows = self.columns = 0
        self._row = self._row_repeat = self._column = 0

    def feed(self, match: re.Match[bytes]) -> None:
        tag, attributes, closed = match.group(1), match.group(2) or b"", match.group(3)
        if tag is None:  # </table:table-row>
            self._row += self._row_repeat
        elif tag == b"table":
            name = _ODS_NAME.search(attributes)
            self.name = name.group(1).decode("utf-8", "replace") if name else ""
            self.rows = self.columns = self._row = 0
        elif tag == b"table-row":
            repeated = _ODS_ROWS_REPEATED.search(attributes)
            self._row_repeat = int(repeated.group(1)) if repeated else 1
            self._column = 0
            if closed:
                self._row += self._row_repeat
        else:
            repeated = _ODS_COLUMNS_REPEATED.search(attributes)
            self._column += int(repeated.group(1)) if repeated else 1
            if not closed or b"value-type=" in attributes:
                self.rows = max(self.rows, self._row + self._row_repeat)
                self.columns = max(self.columns, self._column)


def _tag_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks`` re-cut so that no tag is split: each ends before its last ``<``."""
    carry = b""
    for chunk in chunks:
        data = carry + chunk
        cut = data.rfind(b"<")
        if cut <= 0:
            carry = data
            continue
        yield data[:cut]
        carry = data[cut:]
    if carry:
        yield carry


def _xlsx_sheet_parts(zf: zipfile.ZipFile) -> list[tuple[str, str | None]]:
    """(sheet name, worksheet part path or None) of every sheet, in workbook order."""
    workbook = ElementTree.fromstring(zf.read("xl/workbook.xml"))
    rels = ElementTree.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    targets = {rel.get("Id"): rel.get("Target", "") for rel in rels.iter(f"{_PKG_REL_NS}Relationship")}
    names = set(zf.namelist())
    parts: list[tuple[str, str | None]] = []
    for sheet in workbook.iter(f"{_MAIN_NS}sheet"):
        target = targets.get(sheet.get(f"{_REL_NS}id"), "")
        part = target.lstrip("/") if target.startswith("/") else str(PurePosixPath("xl") / target)
        parts.append((sheet.get("name", ""), part if part in names else None))
    return parts


def _read_chunks(zf: zipfile.ZipFile, part: str) -> Iterator[bytes]:
    with zf.open(part) as fh:
        while chunk := fh.read(_SCAN_BYTES):
            yield chunk


def _used_range(chunks: Iterable[bytes]) -> tuple[int, int]:
    """(rows, columns) of the rectangle holding every cell referenced in a worksheet part."""
    top = left = 1 << 30
    bottom = right = 0
    for data in _tag_chunks(chunks):
        for column, row in _CELL_REF.findall(data):
            number = int(row)
            index = _column_index(column)
            top, bottom = min(top, number), max(bottom, number)
            left, right = min(left, index), max(right, index)
    if not bottom:
        return 0, 0
    return bottom - top + 1, right - left + 1


def _column_index(letters: bytes) -> int:
    """``b'A'`` -> 1, ``b'AB'`` -> 28."""
    index = 0
    for letter in letters:
        index = index * 26 + letter - 64
    return index
