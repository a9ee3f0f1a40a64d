"""Bytes -> ``str`` for the text formats (plain text, Markdown, HTML), in one place.

Order of evidence: a byte-order mark, then an encoding the document declares
(HTML ``<meta charset>``), then UTF-8. Undecodable bytes become U+FFFD and a
warning is recorded; nothing else is cleaned: NUL characters stay, and lone
surrogates (UTF-16 code units, or their UTF-8-style encoding ``ED A0 80``) are
decoded with ``surrogatepass`` so the validation stage can count them.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

#: Byte-order marks, longest first: the UTF-32-LE mark begins with the UTF-16-LE one.
BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# WHATWG: a document that calls itself Latin-1 or ASCII is decoded as windows-1252.
_ENCODING_ALIASES = {"iso8859-1": "cp1252", "ascii": "cp1252"}


@dataclass(frozen=True)
class DecodedText:
    """Result of :func:`decode_text`.

    Attributes:
        text: the decoded text, BOM removed.
        encoding: Python codec name actually used (e.g. ``utf-8``, ``utf-16-le``).
        warnings: notes about replaced bytes or an ignored declared encoding.
    """

    text: str
    encoding: str
    warnings: tuple[str, ...] = ()


def sniff_bom(data: bytes) -> tuple[str | None, int]:
    """Return ``(codec name, BOM length in bytes)`` for a leading BOM, or ``(None, 0)``."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None, 0


def _normalise_encoding(name: str) -> str | None:
    """Python codec name for a declared encoding label, or None if unknown."""
    try:
        canonical = codecs.lookup(name.strip().strip("\"'")).name
    except (LookupError, ValueError):
        return None
    return _ENCODING_ALIASES.get(canonical, canonical)


def _decode(data: bytes, encoding: str, what: str) -> DecodedText:
    """Decode strictly (keeping lone surrogates), else with U+FFFD and a warning."""
    errors = "surrogatepass" if encoding.startswith("utf") else "strict"
    try:
        return DecodedText(data.decode(encoding, errors), encoding)
    except UnicodeDecodeError as exc:
        text = data.decode(encoding, "replace")
        note = (
            f"{what} is not valid {encoding} (first bad byte at offset {exc.start}); "
            f"{text.count(chr(0xFFFD))} undecodable sequence(s) replaced with U+FFFD"
        )
        return DecodedText(text, encoding, (note,))


def decode_text(data: bytes, *, declared_encoding: str | None = None) -> DecodedText:
    """Decode a text file's bytes.

    Args:
        data: the whole file.
        declared_encoding: an encoding label the document states about itself
            (HTML ``<meta charset>``, XML prolog); ignored when a BOM is present,
            when it is unknown, or when it names UTF-16/32 without a BOM.

    Returns:
        A :class:`DecodedText`. Never raises for bad bytes: they are replaced
        with U+FFFD and a warning is added.
    """
    bom_encoding, bom_len = sniff_bom(data)
    if bom_encoding is not None:
        return _decode(data[bom_len:], bom_encoding, "text after the BOM")

    notes: list[str] = []
    if declared_encoding:
        encoding = _normalise_encoding(declared_encoding)
        if encoding is None:
            notes.append(f"declared encoding {declared_encoding!r} is unknown; decoded as UTF-8")
        elif encoding.startswith(("utf-16", "utf-32")):
            notes.append(f"declared encoding {declared_encoding!r} without a BOM; decoded as UTF-8")
        elif encoding != "utf-8":
            decoded = _decode(data, encoding, f"text declared as {declared_encoding!r}")
            return DecodedText(decoded.text, encoding, tuple(notes) + decoded.warnings)

    decoded = _decode(data, "utf-8", "text")
    return DecodedText(decoded.text, "utf-8", tuple(notes) + decoded.warnings)
