"""RTF -> Markdown-ish text via striprtf: paragraphs, and headings where the RTF marks them.

The file's bytes are decoded with its ANSI code page (``\\ansicpgN``, default windows-1252)
through ``parsing.decoding``; striprtf decodes ``\\'hh`` escapes with the code page of the
current font's ``\\fcharset`` and ``\\uN`` escapes as Unicode. Headings: a paragraph whose
control words include ``\\outlinelevelN`` (N 0-8) or a paragraph style ``\\sN`` that the
stylesheet names ``heading N`` (or gives an outline level) becomes an ATX heading of that
level. striprtf returns plain text only, so before it runs a private-use marker character
is put into the RTF where such a control word stands; the markers come out on the
heading's line, which is then written ``# ...`` and the markers removed. A marker inside a
group striprtf drops (the stylesheet, ``\\info``) is dropped with it.
"""

from __future__ import annotations

import re
from pathlib import Path

from striprtf.striprtf import rtf_to_text

from docingest.errors import DocumentCorrupt
from docingest.providers.parsing.base import DEFAULT_OPTIONS, PageProgress, ParsedDocument, ParseOptions
from docingest.providers.parsing.decoding import decode_text, garbled_share

#: A heading of level N (1-9) is marked by chr(_MARKER_BASE + N) in striprtf's output.
_MARKER_BASE = 0xE000
_MARKERS = re.compile(f"[{chr(_MARKER_BASE + 1)}-{chr(_MARKER_BASE + 9)}]")
_ANSICPG = re.compile(rb"\\ansicpg(\d{3,5})")
#: The RTF tokens (as striprtf reads them): a control word with its argument, a hex escape,
#: a control symbol, a brace, or text.
_TOKENS = re.compile(r"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?|\\'[0-9a-fA-F]{2}|\\[^a-zA-Z]|[{}]|[^\\{}]+")
_STYLE_NAME = re.compile(r"^\s*(?:heading|überschrift|titre|titolo|encabezado)\s*([1-9])\s*$", re.IGNORECASE)
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
#: ``\info`` groups -> metadata keys.
_INFO_FIELDS = {
    "title": "Title",
    "author": "Author",
    "subject": "Subject",
    "keywords": "Keywords",
    "operator": "LastModifiedBy",
    "company": "Company",
}
_INFO_TIMES = {"creatim": "CreationDate", "revtim": "ModDate"}
_TIME_PARTS = re.compile(r"\\(yr|mo|dy|hr|min|sec)(\d+)")
#: C0 control characters (tab, CR, LF aside) and NUL, which RTF (7-bit text) never holds raw.
_RAW_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
#: More than this share of them outside ``\\bin`` data: binary, not RTF.
_MAX_RAW_CONTROLS = 0.01
#: At most this share of the text may be undecodable or control characters.
_MAX_GARBLED = 0.25


class RtfParser:
    """Converts a Rich Text Format document to Markdown-ish text."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the RTF at ``path``.

        Returns:
            A ``ParsedDocument`` of kind ``'rtf'``, no pages: paragraphs separated by a blank
            line, headings as ``#`` lines (module docstring), table cells separated by ``|``
            as striprtf writes them; ``metadata`` from the ``\\info`` group (``Title``,
            ``Author``, ``Subject``, ``Keywords``, ``LastModifiedBy``, ``Company``,
            ``CreationDate``/``ModDate`` as ISO 8601) and ``Encoding``; a warning when the
            groups do not close (a truncated file: the text up to the cut is kept).

        Raises:
            DocumentCorrupt: the file does not start with ``{\\rtf``, or is binary (over 1% raw
                control bytes) or undecodable (over a quarter of the text garbled), or striprtf
                cannot read it.
        """
        data = path.read_bytes()
        if not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{\\rtf"):
            raise DocumentCorrupt("the file is not RTF: it does not start with '{\\rtf'; re-save it as RTF")
        match = _ANSICPG.search(data[:4096])
        codepage = f"cp{int(match.group(1))}" if match else "cp1252"
        try:
            decoded = decode_text(data, declared_encoding=codepage)
        except DocumentCorrupt as exc:
            raise DocumentCorrupt(f"the RTF is damaged or binary: {exc}") from exc
        rtf = decoded.text
        if "\\bin" not in rtf:  # \binN carries raw bytes; elsewhere RTF is text
            controls = len(_RAW_CONTROLS.findall(rtf))
            if controls > _MAX_RAW_CONTROLS * len(rtf):
                raise DocumentCorrupt(
                    f"the RTF is damaged: {controls} of its {len(rtf)} characters are control bytes or NUL "
                    "(binary data, not RTF text); re-save it in a word processor"
                )
        warnings = list(decoded.warnings)

        depth = _unclosed_groups(rtf)
        if depth > 0:
            warnings.append(
                f"the RTF ends with {depth} group(s) not closed (the file may be truncated): the text "
                "up to its end is kept"
            )
        try:
            text = rtf_to_text(_mark_headings(rtf), encoding=decoded.encoding, errors="replace")
            metadata = _metadata(rtf, decoded.encoding)
        except (ValueError, LookupError, IndexError, OverflowError) as exc:
            raise DocumentCorrupt(
                f"the RTF cannot be read ({type(exc).__name__}: {exc}); re-save it in a word processor"
            ) from exc
        text = _SURROGATE_PAIR.sub(_join_pair, text)
        share = garbled_share(_MARKERS.sub("", text))
        if share > _MAX_GARBLED:
            raise DocumentCorrupt(
                f"the RTF's text is {share:.0%} undecodable or control characters: the file is damaged "
                "or not RTF; re-save it in a word processor"
            )
        metadata["Encoding"] = decoded.encoding
        return ParsedDocument(
            markdown=_to_markdown(text), kind="rtf", pages=[], metadata=metadata, warnings=warnings
        )


def _unclosed_groups(rtf: str) -> int:
    """How many ``{`` groups are still open at the end (escaped braces not counted)."""
    depth = 0
    for token in _TOKENS.finditer(rtf):
        if token.group() == "{":
            depth += 1
        elif token.group() == "}":
            depth -= 1
    return depth


def _heading_styles(rtf: str) -> dict[str, int]:
    """Paragraph style number -> heading level (1-9), from the stylesheet: a style named
    ``heading N`` (English, German, French, Italian, Spanish names), or one with
    ``\\outlinelevelN`` (level N + 1)."""
    start = rtf.find("{\\stylesheet")
    if start < 0:
        return {}
    styles: dict[str, int] = {}
    depth = 0
    style: str | None = None
    level: int | None = None
    name: list[str] = []
    for token in _TOKENS.finditer(rtf, start):
        text = token.group()
        if text == "{":
            depth += 1
            if depth == 2:
                style, level, name = None, None, []
        elif text == "}":
            if depth == 2 and style is not None:
                named = _STYLE_NAME.match("".join(name).rstrip(";"))
                if named:
                    level = int(named.group(1))
                if level is not None:
                    styles[style] = level
            depth -= 1
            if depth == 0:
                break
        elif depth == 2:
            word, arg = token.group(1), token.group(2)
            if word == "s" and arg is not None:
                style = arg
            elif word == "outlinelevel" and arg is not None and 0 <= int(arg) <= 8:
                level = int(arg) + 1
            elif word is None and not text.startswith("\\"):
                name.append(text)
    return styles


def _mark_headings(rtf: str) -> str:
    """``rtf`` with a heading marker (``{\\uc1\\uN?}``, a private-use character) after each
    ``\\outlinelevelN`` and each ``\\sN`` of a heading style."""
    styles = _heading_styles(rtf)
    out: list[str] = []
    last = 0
    for token in _TOKENS.finditer(rtf):
        word, arg = token.group(1), token.group(2)
        if word is None or arg is None:
            continue
        level = None
        if word == "outlinelevel" and 0 <= int(arg) <= 8:
            level = int(arg) + 1
        elif word == "s":
            level = styles.get(arg)
        if level is not None:
            out.append(rtf[last : token.end()])
            out.append(f"{{\\uc1\\u{_MARKER_BASE + level - 0x10000}?}}")
            last = token.end()
    out.append(rtf[last:])
    return "".join(out)


def _join_pair(match: re.Match[str]) -> str:
    """A UTF-16 surrogate pair (two ``\\uN`` escapes) as the one character it encodes."""
    high, low = (ord(c) for c in match.group())
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def _to_markdown(text: str) -> str:
    """striprtf's lines -> paragraphs separated by a blank line; marked lines -> headings."""
    blocks: list[str] = []
    for line in text.splitlines():
        levels = [ord(c) - _MARKER_BASE for c in _MARKERS.findall(line)]
        line = " ".join(_MARKERS.sub("", line).split())
        if not line:
            continue
        if levels:
            blocks.append("#" * min(min(levels), 6) + " " + line)
        else:
            blocks.append(line)
    return "\n\n".join(blocks)


def _metadata(rtf: str, encoding: str) -> dict[str, str]:
    """The ``\\info`` group's fields (text converted by striprtf) and times (ISO 8601)."""
    metadata: dict[str, str] = {}
    start = rtf.find("{\\info")
    if start < 0:
        return metadata
    for token in re.finditer(r"\{\\(\w+)((?:[^{}\\]|\\.)*)\}", rtf[start : start + 65536]):
        field, body = token.group(1), token.group(2)
        if field in _INFO_FIELDS:
            value = " ".join(
                rtf_to_text("{\\rtf1 " + body + "}", encoding=encoding, errors="replace").split()
            )
            if value:
                metadata[_INFO_FIELDS[field]] = value
        elif field in _INFO_TIMES:
            parts = {k: int(v) for k, v in _TIME_PARTS.findall(body)}
            if "yr" in parts:
                metadata[_INFO_TIMES[field]] = (
                    f"{parts['yr']:04d}-{parts.get('mo', 1):02d}-{parts.get('dy', 1):02d}"
                    f"T{parts.get('hr', 0):02d}:{parts.get('min', 0):02d}:{parts.get('sec', 0):02d}"
                )
    return metadata
