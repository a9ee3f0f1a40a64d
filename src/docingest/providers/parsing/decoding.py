"""Bytes -> ``str`` for the text formats (plain text, Markdown, HTML), in one place.

Order of evidence: a byte-order mark, then an encoding the document declares
(HTML ``<meta charset>``), then UTF-8, then windows-1252 for legacy Western text that
has no UTF-8 in it (Latin-1 Markdown: ``_as_western_legacy``). Undecodable bytes become
U+FFFD and a warning is recorded; nothing else is cleaned: NUL characters stay, and lone
surrogates (UTF-16 code units, or their UTF-8-style encoding ``ED A0 80``) are
decoded with ``surrogatepass`` so the validation stage can count them.

Undecodable text fails. When the bytes are not valid in the encoding used, and
more than :data:`MAX_GARBLED_SHARE` (a quarter) of the decoded characters are
U+FFFD replacements or control characters (C0 other than tab, newline, vertical
tab, form feed and carriage return; DEL; C1), the file is not text in that
encoding: ``DocumentCorrupt`` (``document_corrupt``). A damaged UTF-8 file (a few
bad bytes) stays under the limit and is decoded with replacements and a warning; binary
data (random bytes: about 80% replaced) and text in a legacy multi-byte or non-Latin code page (Shift_JIS, GBK, windows-1251:
most characters replaced) are refused with a message asking for UTF-8.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from docingest.errors import DocumentCorrupt

#: Above this share of replaced or control characters, undecodable bytes are not text.
MAX_GARBLED_SHARE = 0.25
#: Above this share of bytes over 0x7F, text that is not UTF-8 is not read as windows-1252.
LEGACY_MAX_NON_ASCII = 0.3
# NUL is not counted: the validation stage removes and counts NULs.
_CONTROLS = re.compile("[\x01-\x08\x0e-\x1f\x7f-\x9f]")

_HIGH_BYTES = bytes(range(0x80, 0x100))

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
    """Decode strictly (keeping lone surrogates), else with U+FFFD and a warning.

    Raises:
        DocumentCorrupt: the bytes are not valid ``encoding`` and the replaced result is
            garbled (see :func:`garbled_share`) beyond :data:`MAX_GARBLED_SHARE`.
    """
    errors = "surrogatepass" if encoding.startswith("utf") else "strict"
    try:
        return DecodedText(data.decode(encoding, errors), encoding)
    except UnicodeDecodeError as exc:
        text = data.decode(encoding, "replace")
        replaced = text.count("\ufffd")
        share = garbled_share(text)
        if share > MAX_GARBLED_SHARE:
            raise DocumentCorrupt(
                f"the file is not readable as {encoding}: {share:.0%} of its {len(text)} characters are "
                f"undecodable bytes or control characters ({replaced} undecodable sequences; at most "
                f"{MAX_GARBLED_SHARE:.0%} is accepted as damaged text). The file is binary or in a "
                "legacy encoding: save it as UTF-8 and upload again"
            ) from exc
        note = (
            f"{what} is not valid {encoding} (first bad byte at offset {exc.start}); "
            f"{replaced} undecodable sequence(s) replaced with U+FFFD"
        )
        return DecodedText(text, encoding, (note,))


def garbled_share(text: str) -> float:
    """The share of ``text``'s characters that are U+FFFD or control characters.

    Controls counted: C0 except NUL, tab, newline, vertical tab, form feed and carriage
    return; DEL; C1. An empty text has a share of 0.
    """
    if not text:
        return 0.0
    bad = text.count("\ufffd") + sum(1 for _ in _CONTROLS.finditer(text))
    return bad / len(text)


def decode_text(data: bytes, *, declared_encoding: str | None = None) -> DecodedText:
    """Decode a text file's bytes.

    Args:
        data: the whole file.
        declared_encoding: an encoding label the document states about itself
            (HTML ``<meta charset>``, XML prolog); ignored when a BOM is present,
            when it is unknown, or when it names UTF-16/32 without a BOM.

    Returns:
        A :class:`DecodedText`. A few bad bytes are replaced with U+FFFD and a
        warning is added; NUL characters are kept (the validation stage removes them)
        and a warning says how many there are.

    Raises:
        DocumentCorrupt: the bytes are not text (module docstring: more than
            :data:`MAX_GARBLED_SHARE` of the characters undecodable or control).
    """
    decoded = _decode_text(data, declared_encoding=declared_encoding)
    nuls = decoded.text.count("\x00")
    if not nuls:
        return decoded
    note = (
        f"{nuls} NUL character(s) in the text are removed (PostgreSQL cannot store them); "
        "text on either side of each is joined: check the file's encoding if words run together"
    )
    return DecodedText(decoded.text, decoded.encoding, (*decoded.warnings, note))


def _decode_text(data: bytes, *, declared_encoding: str | None = None) -> DecodedText:
    """:func:`decode_text` without the NUL note."""
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

    try:  # the common case, decoded once
        return DecodedText(data.decode("utf-8", "surrogatepass"), "utf-8", tuple(notes))
    except UnicodeDecodeError as exc:
        legacy = _as_western_legacy(data, exc.start)
    if legacy is not None:
        return DecodedText(legacy.text, legacy.encoding, tuple(notes) + legacy.warnings)
    decoded = _decode(data, "utf-8", "text")
    return DecodedText(decoded.text, "utf-8", tuple(notes) + decoded.warnings)


def _as_western_legacy(data: bytes, first_bad: int) -> DecodedText | None:
    """``data``, which is not valid UTF-8 (its first bad byte at ``first_bad``), read as
    windows-1252 when it is legacy Western text; else None.

    The test: not one valid multi-byte UTF-8 sequence in it (damaged
    UTF-8 has some), at most :data:`LEGACY_MAX_NON_ASCII` of its bytes above 0x7F (accented
    letters in French, German or Spanish text are a few percent; in Cyrillic or Greek code
    pages nearly every letter is), and valid windows-1252 without control characters. This is
    the WHATWG default for a legacy document that declares nothing; Latin-1 text (é = E9)
    reads the same, where UTF-8 would replace each accented letter with U+FFFD.
    """
    high = len(data) - len(data.translate(None, _HIGH_BYTES))
    if high > LEGACY_MAX_NON_ASCII * len(data):
        return None
    if any(c > "\x7f" and c != "\ufffd" for c in data.decode("utf-8", "replace")):
        return None  # some bytes are UTF-8: damaged UTF-8, not a legacy page
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None  # a byte windows-1252 does not define
    if _CONTROLS.search(text):
        return None
    note = (
        f"text is not valid UTF-8 (first bad byte at offset {first_bad}) and has no UTF-8 "
        "sequence: decoded as windows-1252 (Latin-1)"
    )
    return DecodedText(text, "cp1252", (note,))
