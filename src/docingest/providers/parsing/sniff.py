"""Content sniffing: decide what a file IS from its bytes, not from its name.

Only the first :data:`SNIFF_BYTES` are read (plus a ZIP's central directory),
so sniffing is cheap on files of any size. The declared MIME type and the file
name are hints used only to choose between kinds the content cannot tell apart
(Markdown vs. plain text; an HTML fragment vs. text).
"""

from __future__ import annotations

import codecs
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePath

from docingest.errors import EmptyFile, UnsupportedType
from docingest.providers.parsing.decoding import sniff_bom

#: How many leading bytes sniffing looks at.
SNIFF_BYTES = 64 * 1024

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass(frozen=True)
class DetectedType:
    """What the content is.

    Attributes:
        kind: ``'pdf' | 'docx' | 'html' | 'markdown' | 'text'`` (a key of ``PARSERS``).
        mime: canonical MIME type, e.g. ``application/pdf``, ``text/markdown``.
        extension: canonical extension without dot: ``pdf | docx | html | md | txt``.
    """

    kind: str
    mime: str
    extension: str


TYPES: dict[str, DetectedType] = {
    "pdf": DetectedType("pdf", "application/pdf", "pdf"),
    "docx": DetectedType("docx", DOCX_MIME, "docx"),
    "html": DetectedType("html", "text/html", "html"),
    "markdown": DetectedType("markdown", "text/markdown", "md"),
    "text": DetectedType("text", "text/plain", "txt"),
}

# (offset, magic, what it is) for binary formats we refuse by name.
_BINARY_MAGICS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"GIF87a", "a GIF image"),
    (0, b"GIF89a", "a GIF image"),
    (0, b"II*\x00", "a TIFF image"),
    (0, b"MM\x00*", "a TIFF image"),
    (0, b"\x1f\x8b", "gzip-compressed data"),
    (0, b"\xfd7zXZ\x00", "xz-compressed data"),
    (0, b"(\xb5/\xfd", "zstd-compressed data"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"Rar!\x1a\x07", "a RAR archive"),
    (
        0,
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "an OLE2 file (legacy .doc/.xls/.ppt, or a password-protected Office file)",
    ),
    (0, b"{\\rtf", "an RTF document"),
    (0, b"%!PS", "a PostScript document"),
    (0, b"\x7fELF", "an ELF executable"),
    (0, b"SQLite format 3\x00", "an SQLite database"),
    (4, b"ftyp", "an ISO media file (MP4/MOV/HEIC)"),
    (8, b"WEBP", "a WebP image"),
)
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_ZIP_FLAVOURS = (
    ("xl/workbook.xml", "an XLSX spreadsheet"),
    ("ppt/presentation.xml", "a PPTX presentation"),
    ("mimetype", "an OpenDocument or EPUB file"),
)
# C0 controls that never occur in text (not \t \n \v \f \r, not ESC); NUL counted apart.
_CONTROL_BYTES = bytes([*range(1, 9), *range(14, 27), *range(28, 32), 127])
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL_BYTES)

_PREAMBLE = re.compile(r"(?:[\s\ufeff]+|<\?xml[^>]*\?>|<!--.*?-->)*", re.DOTALL)
_HTML_START = re.compile(r"<(?:!doctype\s+html|html|head|body)(?=[\s>/])", re.IGNORECASE)
_ANY_TAG = re.compile(r"<[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?>.*?</[a-zA-Z][a-zA-Z0-9]*\s*>", re.DOTALL)
_ATX = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_FENCE = re.compile(r"^ {0,3}(?:```|~~~)", re.MULTILINE)
_SETEXT = re.compile(r"^ {0,3}\S[^\n]*\n {0,3}(?:={3,}|-{3,})[ \t]*$", re.MULTILINE)

_MARKDOWN_MIMES = {"text/markdown", "text/x-markdown"}
_MARKDOWN_EXTS = {".md", ".markdown", ".mdown", ".mkd"}
_HTML_MIMES = {"text/html", "application/xhtml+xml"}
_HTML_EXTS = {".html", ".htm", ".xhtml"}
_TEXT_MIMES = {"text/plain"} | _MARKDOWN_MIMES

# Declared types that fit each detected kind (besides its own canonical MIME).
_COMPATIBLE: dict[str, frozenset[str]] = {
    "pdf": frozenset({"application/pdf", "application/x-pdf", "application/acrobat"}),
    "docx": frozenset({DOCX_MIME, "application/zip", "application/x-zip-compressed", "application/msword"}),
    "html": frozenset(_HTML_MIMES | {"text/plain"}),
    "markdown": frozenset(_TEXT_MIMES),
    "text": frozenset(_TEXT_MIMES),
}
_UNKNOWN_MIMES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})


def normalise_mime(mime: str | None) -> str:
    """A media type without parameters, lower case: ``'Text/HTML; charset=utf-8'`` -> ``'text/html'``;
    None -> ``''``."""
    return (mime or "").split(";", 1)[0].strip().lower()


def detect(path: Path, *, declared_mime: str | None = None, filename: str | None = None) -> DetectedType:
    """Sniff the type of the file at ``path`` from its content.

    Args:
        path: the stored file (only its first 64 KiB, and a ZIP's directory, are read).
        declared_mime: the MIME type the uploader declared, if any (a hint only).
        filename: the original file name (a hint only); defaults to ``path.name``.

    Returns:
        The :class:`DetectedType` (one of :data:`TYPES`).

    Raises:
        EmptyFile: the file has zero bytes.
        UnsupportedType: binary content that is not PDF or DOCX (the message names
            what was seen: PNG, a non-Word ZIP, NUL-heavy data ...).
        OSError: the file cannot be read.
    """
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if not head:
        raise EmptyFile("the file has zero bytes")
    if head.startswith(_ZIP_MAGICS):  # before the PDF check: compressed bytes may hold "%PDF-"
        return _sniff_zip(path, head)
    if b"%PDF-" in head[:1024]:
        return TYPES["pdf"]
    for offset, magic, what in _BINARY_MAGICS:
        if head[offset : offset + len(magic)] == magic:
            raise UnsupportedType(f"the content is {what}, not PDF, DOCX, HTML, Markdown or text")

    text = _decode_head(head, complete=len(head) < SNIFF_BYTES)
    mime = normalise_mime(declared_mime)
    suffix = PurePath(filename if filename is not None else path.name).suffix.lower()
    rest = text[_PREAMBLE.match(text).end() :]  # type: ignore[union-attr]  # '*' always matches
    if _HTML_START.match(rest):
        return TYPES["html"]
    if (mime in _HTML_MIMES or suffix in _HTML_EXTS) and _ANY_TAG.search(text[:8192]):
        return TYPES["html"]  # an HTML fragment without <html>, declared as HTML
    if mime in _MARKDOWN_MIMES or suffix in _MARKDOWN_EXTS or _has_markdown_signals(text):
        return TYPES["markdown"]
    return TYPES["text"]


def _sniff_zip(path: Path, head: bytes) -> DetectedType:
    """A ZIP is DOCX when it holds ``word/document.xml``; anything else is refused."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        # Damaged (e.g. truncated) archive: trust the local headers we can see, and
        # let the DOCX parser report the damage precisely.
        if b"word/document.xml" in head:
            return TYPES["docx"]
        raise UnsupportedType("the content is a damaged ZIP archive without a Word document") from None
    if "word/document.xml" in names:
        return TYPES["docx"]
    seen = next((what for member, what in _ZIP_FLAVOURS if member in names), "a ZIP archive")
    raise UnsupportedType(f"the content is {seen} (a ZIP without word/document.xml), not a DOCX")


def _decode_head(head: bytes, *, complete: bool) -> str:
    """Decode the sniffed bytes as text, or raise UnsupportedType if they look binary.

    Heuristics: a BOM decides; otherwise more than 30% NUL bytes is binary (e.g.
    UTF-16 without BOM); valid UTF-8 is binary only when over 30% of it is C0
    control bytes; bytes that are not UTF-8 are read as Latin-1 and are binary when
    over 2% are control bytes (random data has about 10%).
    """
    encoding, bom_len = sniff_bom(head)
    if encoding is not None:
        return head[bom_len:].decode(encoding, "replace")
    size = len(head)
    nul = head.count(0)
    if nul > 0.3 * size:
        raise UnsupportedType(
            f"the content is binary: {nul} of the first {size} bytes are NUL "
            "(UTF-16 text needs a byte-order mark; or save it as UTF-8)"
        )
    controls = len(head.translate(None, _NOT_CONTROL))  # only the control bytes remain
    try:
        # An incomplete trailing sequence is fine when the 64 KiB cut split a character.
        codecs.getincrementaldecoder("utf-8")("surrogatepass").decode(head, final=complete)
        limit = 0.3
    except UnicodeDecodeError:
        limit = 0.02
    if controls + nul > limit * size:
        raise UnsupportedType(
            f"the content is binary: {controls + nul} of the first {size} bytes are control characters"
        )
    return head.decode("utf-8", "replace")


def _has_markdown_signals(text: str) -> bool:
    """True when the text has an ATX heading, a code fence or a setext underline."""
    return bool(_ATX.search(text) or _FENCE.search(text) or _SETEXT.search(text))


def is_declared_compatible(detected: DetectedType, declared_mime: str) -> bool:
    """Whether a declared MIME type is acceptable for what was detected.

    Parameters after ``;`` and case are ignored. ``application/octet-stream`` (and
    an empty type) fit anything; ``text/plain`` and ``text/markdown`` fit each other
    (and ``text/plain`` fits HTML, which is text); ``application/zip`` fits DOCX.

    Returns:
        False when the declaration contradicts the content (e.g. ``application/pdf``
        for an HTML error page): the caller raises ``ContentTypeMismatch``.
    """
    mime = normalise_mime(declared_mime)
    if mime in _UNKNOWN_MIMES or mime == detected.mime:
        return True
    return mime in _COMPATIBLE.get(detected.kind, frozenset())
