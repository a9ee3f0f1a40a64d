"""Delimited tables (CSV, TSV) and JSON (JSON, JSON Lines) -> text a question can match.

CSV and TSV become one pipe table, the first non-empty row its header (as a spreadsheet's
sheet, without pages): the bytes decoded by ``parsing.decoding``, the dialect found by
``csv.Sniffer`` (a ``.tsv`` or ``.tab`` file is tab-separated), the non-empty cells counted
against ``ParseOptions.max_spreadsheet_cells`` before any text is written.

JSON is flattened into ``path: value`` lines (``orders[2].customer.name: Ada``); each record of
a top-level array, each value of a top-level object and each line of a JSON Lines file is a
block of its own, blocks separated by a blank line. Size and depth are bounded: the file is
decoded one record (one top-level member) at a time with ``json.JSONDecoder.raw_decode``, so
Python holds the objects of one record, never the whole document's (a 200 MB array of records
costs its text plus one record); numbers are kept as written (never converted); a value nested
deeper than :data:`MAX_DEPTH` is written as compact JSON on its path's line. Text that is not
valid JSON is kept as it is, with a warning.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from docingest.errors import DocumentCorrupt, SpreadsheetTooLarge
from docingest.providers.parsing.base import (
    DEFAULT_OPTIONS,
    PageProgress,
    ParsedDocument,
    ParseOptions,
    escape_markdown,
)
from docingest.providers.parsing.decoding import decode_text
from docingest.providers.parsing.spreadsheet import pipe_table, table_cell

#: Bytes of a CSV's start ``csv.Sniffer`` looks at.
SNIFF_CHARS = 64 * 1024
#: Delimiters ``csv.Sniffer`` may choose among.
DELIMITERS = ",;\t|"
#: A quoted field longer than this (csv's default field cap) that holds a line break is taken for
#: an open quote.
_LONG_FIELD = 131_072
#: Deepest nesting flattened into paths; deeper values are written as compact JSON.
MAX_DEPTH = 32
#: File suffixes of tab-separated tables and of JSON Lines (the stored file's suffix is the
#: sniffed type's extension).
TSV_SUFFIXES = frozenset({".tsv", ".tab"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})

_LINE_BREAKS = re.compile(r"\s*[\r\n\v\f\u2028\u2029]+\s*")
_WHITESPACE = re.compile(r"[ \t\r\n]*")
_EXTRA_DATA = "extra data after the JSON value"
_DECODER = json.JSONDecoder(parse_float=str, parse_int=str, parse_constant=str)


class CsvParser:
    """Reads a CSV or TSV file into one pipe table."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the delimited table at ``path``.

        Returns:
            A ``ParsedDocument`` of kind ``'csv'``: one pipe table (header = first non-empty
            row; empty rows dropped; empty columns at the right trimmed; short rows padded),
            no pages, ``metadata`` ``{'Encoding': codec, 'Delimiter': 'tab' | ',' ...}``.

        Raises:
            DocumentCorrupt: the bytes are not text, or a field runs past ``csv``'s field size
                limit (an unclosed quote).
            SpreadsheetTooLarge: more than ``options.max_spreadsheet_cells`` non-empty cells.
        """
        decoded = decode_text(path.read_bytes())
        text = decoded.text
        warnings = list(decoded.warnings)
        dialect = _dialect(text, tab=path.suffix.lower() in TSV_SUFFIXES)
        # a field may be as long as the file (csv's default cap refused a valid table with one
        # long cell); the cap is per process, and this one only parses. A long field that runs
        # over lines is an open quote that swallowed the rest of the file: refused below.
        csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
        try:
            cells, width = _count(csv.reader(_lines(text), dialect))
            if cells > options.max_spreadsheet_cells:
                raise SpreadsheetTooLarge(
                    f"the table holds {cells:,} non-empty cells (limit {options.max_spreadsheet_cells:,}, "
                    "UPLOAD_PIPELINE_MAX_SPREADSHEET_CELLS): split the file"
                )
            lines: list[str] = []
            for number, row in enumerate(csv.reader(_lines(text), dialect), 1):
                if any(len(cell) > _LONG_FIELD and "\n" in cell for cell in row):
                    raise csv.Error(
                        f"row {number} has a quoted field over {_LONG_FIELD:,} characters across lines"
                    )
                padded = row[:width] + [""] * (width - len(row))
                line = pipe_table(table_cell(cell) for cell in padded)
                if line:
                    lines.append(line)
        except csv.Error as exc:
            raise DocumentCorrupt(
                f"the table cannot be read as delimited text ({exc}); a quote may be left open: "
                "check the file's quoting and upload it again"
            ) from exc
        del text
        if lines:
            lines.insert(1, "|" + " --- |" * width)
        delimiter = "tab" if dialect.delimiter == "\t" else dialect.delimiter
        return ParsedDocument(
            markdown="\n".join(lines),
            kind="csv",
            metadata={"Encoding": decoded.encoding, "Delimiter": delimiter},
            warnings=warnings,
        )


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text``, line ends kept, one at a time (``io.StringIO`` would copy the
    text into 4 bytes a character)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def _dialect(text: str, *, tab: bool) -> type[csv.Dialect]:
    """The dialect of ``text``: tab-separated when ``tab``, else ``csv.Sniffer``'s guess among
    :data:`DELIMITERS` from the first :data:`SNIFF_CHARS` characters (whole lines), else Excel's."""
    if tab:
        return csv.excel_tab
    sample = text[:SNIFF_CHARS]
    if len(text) > SNIFF_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS)
    except csv.Error:
        return csv.excel


def _count(rows: Iterator[list[str]]) -> tuple[int, int]:
    """(non-empty cells, columns up to the last non-empty cell of any row)."""
    cells = width = 0
    for row in rows:
        last = 0
        for column, cell in enumerate(row, 1):
            if cell.strip():
                cells += 1
                last = column
        width = max(width, last)
    return cells, width


class JsonParser:
    """Flattens JSON and JSON Lines into ``path: value`` lines."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the JSON (or JSON Lines, by a ``.jsonl``/``.ndjson`` suffix or when the text
        is one JSON value per line) file at ``path``.

        Returns:
            A ``ParsedDocument`` of kind ``'json'``, no pages, ``metadata`` ``{'Encoding':
            codec}``: the module docstring's blocks of ``path: value`` lines. A value's line
            breaks become spaces; strings are written as they are, numbers as written in the
            file, ``true``/``false``/``null`` as such, empty containers as ``{}``/``[]``.
            Invalid JSON: the decoded text as it is, and a warning naming where it broke.

        Raises:
            DocumentCorrupt: the bytes are not text, or the JSON nests too deeply for the decoder
                (its text, all brackets, would only fill the index).
        """
        decoded = decode_text(path.read_bytes())
        text = decoded.text
        warnings = list(decoded.warnings)
        markdown, error = _flatten_json(text, lines_first=path.suffix.lower() in JSONL_SUFFIXES)
        if markdown is None and error == _TOO_DEEP:
            raise DocumentCorrupt(
                "the JSON is nested too deeply to read (more than about 900 levels of arrays or "
                "objects): flatten it, or split out the deep part, and upload it again"
            )
        if markdown is None:
            warnings.append(f"the file is not valid JSON ({error}): indexed as plain text")
            markdown = text
        return ParsedDocument(
            markdown=markdown, kind="json", metadata={"Encoding": decoded.encoding}, warnings=warnings
        )


def _flatten_json(text: str, *, lines_first: bool) -> tuple[str | None, str]:
    """``(markdown, '')``, or ``(None, why)`` when ``text`` is neither one JSON document nor
    JSON Lines. JSON Lines is tried second only when the document attempt read one value and
    found more text after it (JSON Lines' signature), so a large minified document with an
    error is never decoded whole as one line."""
    try:
        return "\n\n".join(_json_lines(text) if lines_first else _json_document(text)), ""
    except (ValueError, RecursionError) as exc:
        first = exc
    if not lines_first and not (isinstance(first, json.JSONDecodeError) and first.msg == _EXTRA_DATA):
        return None, _describe(first)
    try:
        return "\n\n".join(_json_document(text) if lines_first else _json_lines(text)), ""
    except (ValueError, RecursionError):
        return None, _describe(first)


_TOO_DEEP = "nested too deeply to decode"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg}: line {exc.lineno}, column {exc.colno}"
    if isinstance(exc, RecursionError):
        return _TOO_DEEP
    return str(exc)


def _json_document(text: str) -> list[str]:
    """Blocks of one JSON document: one per record of a top-level array, one per member of a
    top-level object (one per record when the member is an array of objects or arrays), one
    for a scalar. Each record (member) is decoded alone and dropped once flattened.

    Raises:
        json.JSONDecodeError: not one JSON value (trailing text included).
    """
    blocks: list[str] = []
    start = _WHITESPACE.match(text, _skip_bom(text)).end()  # type: ignore[union-attr]
    opening = text[start : start + 1]
    position = start
    if opening == "[":
        for value, position in _members(text, start + 1, "]", keyed=False):
            blocks.append(_block(_flatten("", value)))
    elif opening == "{":
        for member, position in _members(text, start + 1, "}", keyed=True):
            key, value = member
            path = _key_path("", key)
            if isinstance(value, list) and value and all(isinstance(item, (dict, list)) for item in value):
                # {"orders": [...records...]}: each record a block, as in a top-level array
                blocks.extend(_block(_flatten(f"{path}[{i}]", item, 2)) for i, item in enumerate(value))
            else:
                blocks.append(_block(_flatten(path, value, 1)))
    else:
        value, position = _DECODER.raw_decode(text, start)
        blocks.append(_block(_flatten("", value)))
    end = _WHITESPACE.match(text, position).end()  # type: ignore[union-attr]
    if end != len(text):
        raise json.JSONDecodeError(_EXTRA_DATA, text, end)
    return [block for block in blocks if block]


def _members(text: str, position: int, closing: str, *, keyed: bool) -> Iterator[tuple[Any, int]]:
    """The members of the container opened just before ``position`` in ``text``, each decoded
    alone: ``(value, end)`` (``((key, value), end)`` when ``keyed``), the last ``end`` being
    just after ``closing``.

    Raises:
        json.JSONDecodeError: malformed.
    """
    position = _WHITESPACE.match(text, position).end()  # type: ignore[union-attr]
    if text[position : position + 1] == closing:
        yield from ()
        return
    while True:
        if keyed:
            if text[position : position + 1] != '"':
                raise json.JSONDecodeError("expected a member name in double quotes", text, position)
            key, position = _DECODER.raw_decode(text, position)
            position = _WHITESPACE.match(text, position).end()  # type: ignore[union-attr]
            if text[position : position + 1] != ":":
                raise json.JSONDecodeError("expected ':'", text, position)
            position = _WHITESPACE.match(text, position + 1).end()  # type: ignore[union-attr]
        value, position = _DECODER.raw_decode(text, position)
        position = _WHITESPACE.match(text, position).end()  # type: ignore[union-attr]
        following = text[position : position + 1]
        if following == closing:
            yield ((key, value) if keyed else value), position + 1
            return
        if following != ",":
            raise json.JSONDecodeError(f"expected ',' or '{closing}'", text, position)
        yield ((key, value) if keyed else value), position
        position = _WHITESPACE.match(text, position + 1).end()  # type: ignore[union-attr]


def _json_lines(text: str) -> list[str]:
    """Blocks of a JSON Lines text: one per non-blank line.

    Raises:
        json.JSONDecodeError: a line is not one JSON value (the message names the line).
    """
    blocks: list[str] = []
    start = _skip_bom(text)
    for number, line in enumerate(text[start:].splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = _DECODER.decode(line)
        except json.JSONDecodeError as exc:
            raise json.JSONDecodeError(f"line {number}: {exc.msg}", exc.doc, exc.pos) from exc
        block = _block(_flatten("", value))
        if block:
            blocks.append(block)
    if not blocks:
        raise json.JSONDecodeError("no JSON value", text, 0)
    return blocks


def _skip_bom(text: str) -> int:
    return 1 if text.startswith("\ufeff") else 0


def _block(lines: Iterator[str]) -> str:
    return escape_markdown("\n".join(lines))


def _key_path(prefix: str, key: str) -> str:
    """``prefix.key`` (``key`` alone at the top); a key with a dot, a bracket or a space is
    quoted: ``a["b.c"]``."""
    key = _LINE_BREAKS.sub(" ", key)
    if key and not any(c in key for c in '.[]" '):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{json.dumps(key, ensure_ascii=False)}]"


def _flatten(path: str, value: Any, depth: int = 0) -> Iterator[str]:
    """``path: value`` lines of ``value`` (a decoded JSON value, numbers as strings);
    ``depth`` is the number of steps (keys, indices) in ``path``."""
    if isinstance(value, dict) and value:
        if depth >= MAX_DEPTH:
            yield _line(path, json.dumps(value, ensure_ascii=False, separators=(",", ":")))
            return
        for key, item in value.items():
            yield from _flatten(_key_path(path, key), item, depth + 1)
    elif isinstance(value, list) and value:
        if depth >= MAX_DEPTH:
            yield _line(path, json.dumps(value, ensure_ascii=False, separators=(",", ":")))
            return
        for index, item in enumerate(value):
            yield from _flatten(f"{path}[{index}]", item, depth + 1)
    elif isinstance(value, dict):
        yield _line(path, "{}")
    elif isinstance(value, list):
        yield _line(path, "[]")
    elif value is None:
        yield _line(path, "null")
    elif isinstance(value, bool):
        yield _line(path, "true" if value else "false")
    else:
        yield _line(path, _LINE_BREAKS.sub(" ", str(value)).strip())


def _line(path: str, value: str) -> str:
    return f"{path}: {value}" if path else value
