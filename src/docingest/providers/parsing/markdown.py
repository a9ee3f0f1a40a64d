"""Markdown files: decoded and returned as they are (already Markdown), less a YAML front
matter block, whose keys become document metadata (:func:`split_front_matter`)."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Any

from docingest.providers.parsing.base import DEFAULT_OPTIONS, PageProgress, ParsedDocument, ParseOptions
from docingest.providers.parsing.decoding import decode_text

#: A front matter block: ``---`` on the first line, YAML, then ``---`` (or ``...``) on a line
#: of its own (Jekyll, Hugo, Pandoc). A document whose first line is ``---`` but that has no
#: closing line, or whose block is not a YAML mapping, has no front matter.
_FRONT_MATTER = re.compile(
    r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE
)


def _scalar(value: Any) -> tuple[bool, Any]:
    """``(ok, value as JSON)`` for one front matter value: strings, integers, booleans and null
    as they are; a finite float as it is, another as its string; a date or time as ISO 8601;
    anything else is not a scalar (``ok`` False)."""
    if value is None or isinstance(value, str | bool | int):
        return True, value
    if isinstance(value, float):
        return True, value if math.isfinite(value) else str(value)
    if isinstance(value, dt.date | dt.time):
        return True, value.isoformat()
    return False, None


def front_matter_meta(block: dict[Any, Any]) -> tuple[dict[str, Any], list[str]]:
    """A YAML mapping's top-level keys as a document metadata object, and what was dropped.

    Values are kept as JSON: strings, numbers, booleans and null as they are; dates and times
    as ISO 8601 strings (``2024-05-01``); a non-finite float as its string; a list of those as
    a list. A nested mapping, or a list holding a mapping or a list, is dropped (a warning
    names its key); a key is its string (``2024`` -> ``"2024"``), blank keys are dropped.
    """
    meta: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in block.items():
        name = str(key).strip()
        if not name:
            continue
        if isinstance(value, list):
            items = [_scalar(v) for v in value]
            if all(ok for ok, _ in items):
                meta[name] = [v for _, v in items]
                continue
        else:
            ok, v = _scalar(value)
            if ok:
                meta[name] = v
                continue
        dropped.append(name)
    return meta, dropped


def _invalid_yaml_warning(exc: Exception) -> str:
    """The warning for a front matter block that is not valid YAML: where (the file's line) and
    what PyYAML found wrong."""
    problem = getattr(exc, "problem", None) or "a YAML error"
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 2}: " if mark is not None else ""  # +1: 0-based, +1: the --- line
    return f"front matter is not valid YAML ({where}{problem}); it was kept as text and gave no metadata"


def split_front_matter(text: str) -> tuple[str, dict[str, Any], list[str]]:
    """``text`` without its YAML front matter block, the block's keys as metadata
    (:func:`front_matter_meta`), and warnings (keys dropped).

    Text without a block (or whose block is not a YAML mapping: e.g. a thematic break
    ``---`` opening prose) comes back unchanged with no metadata; a block that is not valid
    YAML also comes back unchanged, with a warning saying so.
    """
    import yaml  # pyyaml: only Markdown with front matter needs it

    match = _FRONT_MATTER.match(text)
    if match is None:
        return text, {}, []
    try:
        block = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        return text, {}, [_invalid_yaml_warning(exc)]
    if not isinstance(block, dict):
        return text, {}, []
    meta, dropped = front_matter_meta(block)
    warnings = (
        [
            f"front matter keys dropped (not a string, number, date, boolean or list of those): {', '.join(dropped)}"
        ]
        if dropped
        else []
    )
    return text[match.end() :].lstrip("\r\n"), meta, warnings


def front_matter_of(path: Path) -> dict[str, Any]:
    """The metadata of the front matter of the Markdown file at ``path`` (``{}``: none)."""
    return split_front_matter(decode_text(path.read_bytes()).text)[1]


class MarkdownParser:
    """Reads a Markdown file; the text is not rewritten, except that a YAML front matter
    block is taken out of it (its keys are the ``front_matter``)."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the Markdown file at ``path``.

        Decoding: UTF-8 (BOM stripped), UTF-16/32 with a BOM, else UTF-8 with
        undecodable bytes replaced by U+FFFD and a warning (see ``parsing.decoding``).

        Returns:
            A ``ParsedDocument`` of kind ``'markdown'`` whose ``markdown`` is the
            decoded file less its front matter block, no pages, ``metadata ==
            {'Encoding': codec}``, ``front_matter`` the block's keys
            (:func:`split_front_matter`).

        Raises:
            DocumentCorrupt: the bytes are not text (over a quarter of the characters
                undecodable or control characters).
            OSError: the file cannot be read.
        """
        decoded = decode_text(path.read_bytes())
        text, front_matter, warnings = split_front_matter(decoded.text)
        return ParsedDocument(
            markdown=text,
            kind="markdown",
            pages=[],
            metadata={"Encoding": decoded.encoding},
            warnings=list(decoded.warnings) + warnings,
            front_matter=front_matter,
        )
