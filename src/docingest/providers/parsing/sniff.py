"""Content sniffing: decide what a file IS from its bytes, not from its name.

Only the first :data:`SNIFF_BYTES` are read (plus a ZIP's central directory, an OLE2
file's directory), so sniffing is cheap on files of any size. ZIP packages are told apart
by their members (``word/document.xml``, ``ppt/presentation.xml``, ``xl/workbook.xml``) or
their ``mimetype`` member (EPUB, OpenDocument); OLE2 files by their streams (an Outlook
message; an encrypted OOXML package). The declared MIME type and the file name are hints
used only to choose between kinds the content cannot tell apart (Markdown vs. plain text;
an HTML fragment vs. text; CSV, TSV and JSON vs. text).
"""

from __future__ import annotations

import codecs
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePath
from struct import error as struct_error

from docingest.errors import DocumentEncrypted, EmptyFile, UnsupportedType
from docingest.providers.parsing.archive import ZIP_ERRORS
from docingest.providers.parsing.decoding import sniff_bom

#: How many leading bytes sniffing looks at.
SNIFF_BYTES = 64 * 1024

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX_MIME = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
PPSX_MIME = "application/vnd.openxmlformats-officedocument.presentationml.slideshow"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSM_MIME = "application/vnd.ms-excel.sheet.macroenabled.12"  # lower case: the API takes types as written, in lower case
EPUB_MIME = "application/epub+zip"
ODT_MIME = "application/vnd.oasis.opendocument.text"
ODS_MIME = "application/vnd.oasis.opendocument.spreadsheet"
ODP_MIME = "application/vnd.oasis.opendocument.presentation"
MSG_MIME = "application/vnd.ms-outlook"


@dataclass(frozen=True)
class DetectedType:
    """What the content is.

    Attributes:
        kind: one of ``KINDS`` (``'pdf'``, ``'pptx'``, ``'image'`` ...).
        mime: canonical MIME type, e.g. ``application/pdf``, ``text/markdown``, ``image/png``.
        extension: canonical extension without dot: ``pdf | docx | pptx | xlsx | png | md ...``.
    """

    kind: str
    mime: str
    extension: str


#: kind -> what is detected; images, one kind of several types, are in :data:`IMAGE_TYPES`
#: (``TYPES["image"]`` is PNG).
TYPES: dict[str, DetectedType] = {
    "pdf": DetectedType("pdf", "application/pdf", "pdf"),
    "docx": DetectedType("docx", DOCX_MIME, "docx"),
    "pptx": DetectedType("pptx", PPTX_MIME, "pptx"),
    "xlsx": DetectedType("xlsx", XLSX_MIME, "xlsx"),
    "epub": DetectedType("epub", EPUB_MIME, "epub"),
    "odt": DetectedType("odt", ODT_MIME, "odt"),
    "ods": DetectedType("ods", ODS_MIME, "ods"),
    "odp": DetectedType("odp", ODP_MIME, "odp"),
    "rtf": DetectedType("rtf", "application/rtf", "rtf"),
    "eml": DetectedType("eml", "message/rfc822", "eml"),
    "msg": DetectedType("msg", MSG_MIME, "msg"),
    "image": DetectedType("image", "image/png", "png"),
    "csv": DetectedType("csv", "text/csv", "csv"),
    "json": DetectedType("json", "application/json", "json"),
    "html": DetectedType("html", "text/html", "html"),
    "markdown": DetectedType("markdown", "text/markdown", "md"),
    "text": DetectedType("text", "text/plain", "txt"),
}
#: An XLSX with macros: parsed as XLSX (the macros are never run), its own type kept.
XLSM_TYPE = DetectedType("xlsx", XLSM_MIME, "xlsm")
#: A tab-separated table: the ``csv`` kind, its own type kept.
TSV_TYPE = DetectedType("csv", "text/tab-separated-values", "tsv")
#: A JSON Lines file: the ``json`` kind, its own type kept.
JSONL_TYPE = DetectedType("json", "application/jsonl", "jsonl")

#: (offset, magic, type) of the images OCR reads.
IMAGE_TYPES: tuple[tuple[int, bytes, DetectedType], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", TYPES["image"]),
    (0, b"\xff\xd8\xff", DetectedType("image", "image/jpeg", "jpg")),
    (0, b"II*\x00", DetectedType("image", "image/tiff", "tiff")),
    (0, b"MM\x00*", DetectedType("image", "image/tiff", "tiff")),
    (8, b"WEBP", DetectedType("image", "image/webp", "webp")),
)
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# (offset, magic, what it is) for binary formats we refuse by name.
_BINARY_MAGICS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"GIF87a", "a GIF image"),
    (0, b"GIF89a", "a GIF image"),
    (0, b"\x1f\x8b", "gzip-compressed data"),
    (0, b"\xfd7zXZ\x00", "xz-compressed data"),
    (0, b"(\xb5/\xfd", "zstd-compressed data"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"Rar!\x1a\x07", "a RAR archive"),
    (0, b"%!PS", "a PostScript document"),
    (0, b"\x7fELF", "an ELF executable"),
    (0, b"MZ", "a Windows executable"),
    (0, b"SQLite format 3\x00", "an SQLite database"),
    (4, b"ftyp", "an ISO media file (MP4/MOV/HEIC)"),
)
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
#: (member, kind) of the OOXML packages, the first member found deciding.
_OOXML_PARTS = (("word/document.xml", "docx"), ("ppt/presentation.xml", "pptx"), ("xl/workbook.xml", "xlsx"))
#: The ``mimetype`` member of an EPUB or OpenDocument file -> its kind.
_PACKAGE_MIMETYPES = {
    EPUB_MIME: "epub",
    ODT_MIME: "odt",
    ODS_MIME: "ods",
    ODP_MIME: "odp",
}
_SUPPORTED = "PDF, Office (DOCX, PPTX, XLSX), OpenDocument, EPUB, RTF, e-mail, images, HTML, Markdown, CSV, JSON or text"
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
_CSV_MIMES = {"text/csv", "application/csv", "text/x-csv", "application/vnd.ms-excel"}
_TSV_MIMES = {"text/tab-separated-values", "text/tsv"}
_JSON_MIMES = {"application/json", "text/json"}
_JSONL_MIMES = {"application/jsonl", "application/x-ndjson", "application/ndjson", "application/x-jsonlines"}
_EML_MIMES = {"message/rfc822"}
_EML_EXTS = {".eml", ".mht", ".mhtml"}
#: Header fields that open an e-mail message (RFC 5322): two of them in the first block make one.
_MAIL_FIELDS = frozenset(
    {
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "received",
        "return-path",
        "delivered-to",
        "reply-to",
        "x-mailer",
        "content-type",
        "sender",
        "in-reply-to",
        "references",
    }
)
_HEADER_LINE = re.compile(r"([A-Za-z][A-Za-z0-9-]*):[ \t]")

# Declared types that fit each detected kind (besides its own canonical MIME).
_ZIP_DECLARED = frozenset({"application/zip", "application/x-zip-compressed"})
_COMPATIBLE: dict[str, frozenset[str]] = {
    "pdf": frozenset({"application/pdf", "application/x-pdf", "application/acrobat"}),
    "docx": frozenset({DOCX_MIME, "application/msword"} | _ZIP_DECLARED),
    "pptx": frozenset({PPTX_MIME, PPSX_MIME, "application/vnd.ms-powerpoint"} | _ZIP_DECLARED),
    "xlsx": frozenset({XLSX_MIME, XLSM_MIME, "application/vnd.ms-excel"} | _ZIP_DECLARED),
    "epub": frozenset({EPUB_MIME} | _ZIP_DECLARED),
    "odt": frozenset({ODT_MIME} | _ZIP_DECLARED),
    "ods": frozenset({ODS_MIME} | _ZIP_DECLARED),
    "odp": frozenset({ODP_MIME} | _ZIP_DECLARED),
    "rtf": frozenset({"application/rtf", "text/rtf", "application/x-rtf", "text/plain"}),
    "eml": frozenset(_EML_MIMES | {"text/plain"}),
    "msg": frozenset({MSG_MIME, "application/x-ole-storage"}),
    "image": frozenset({"image/png", "image/jpeg", "image/jpg", "image/pjpeg", "image/tiff", "image/webp"}),
    "csv": frozenset(_CSV_MIMES | _TSV_MIMES | {"text/plain"}),
    "json": frozenset(_JSON_MIMES | _JSONL_MIMES | {"text/plain"}),
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
        The :class:`DetectedType` (one of :data:`TYPES`, :data:`IMAGE_TYPES`, or the XLSM,
        TSV and JSON Lines variants).

    Raises:
        EmptyFile: the file has zero bytes.
        DocumentEncrypted: a password-protected Office file (an OLE2 file holding an
            ``EncryptedPackage``).
        UnsupportedType: binary content of no supported kind (the message names what was
            seen: a GIF, a ZIP of no document, a legacy .doc, NUL-heavy data ...).
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
    if head.startswith(_OLE2_MAGIC):
        return _sniff_ole2(path)
    if head.startswith(b"{\\rtf"):
        return TYPES["rtf"]
    for offset, magic, detected in IMAGE_TYPES:
        if head[offset : offset + len(magic)] == magic and (offset == 0 or head.startswith(b"RIFF")):
            return detected
    for offset, magic, what in _BINARY_MAGICS:
        if head[offset : offset + len(magic)] == magic:
            raise UnsupportedType(f"the content is {what}, not {_SUPPORTED}")

    text = _decode_head(head, complete=len(head) < SNIFF_BYTES)
    mime = normalise_mime(declared_mime)
    suffix = PurePath(filename if filename is not None else path.name).suffix.lower()
    rest = text[_PREAMBLE.match(text).end() :]  # type: ignore[union-attr]  # '*' always matches
    if _HTML_START.match(rest):
        return TYPES["html"]
    if (mime in _HTML_MIMES or suffix in _HTML_EXTS) and _ANY_TAG.search(text[:8192]):
        return TYPES["html"]  # an HTML fragment without <html>, declared as HTML
    if _is_mail(text, hinted=mime in _EML_MIMES or suffix in _EML_EXTS):
        return TYPES["eml"]
    structured = _sniff_structured(text, mime, suffix, complete=len(head) < SNIFF_BYTES)
    if structured is not None:
        return structured
    if mime in _MARKDOWN_MIMES or suffix in _MARKDOWN_EXTS or _has_markdown_signals(text):
        return TYPES["markdown"]
    return TYPES["text"]


def _sniff_structured(text: str, mime: str, suffix: str, *, complete: bool) -> DetectedType | None:
    """CSV, TSV, JSON or JSON Lines, when the declared type or the name says so and the
    content agrees (a JSON value starts with ``{`` or ``[``), or, with no hint, when the whole
    file is a JSON object or array; None otherwise (it is then text)."""
    if mime in _TSV_MIMES or suffix in (".tsv", ".tab"):
        return TSV_TYPE
    if mime in _CSV_MIMES or suffix == ".csv":
        return TYPES["csv"]
    start = text.lstrip("\ufeff \t\r\n")[:1]
    if start not in ("{", "["):
        return None
    if mime in _JSONL_MIMES or suffix in (".jsonl", ".ndjson"):
        return JSONL_TYPE
    if mime in _JSON_MIMES or suffix == ".json":
        return TYPES["json"]
    if complete:  # no hint: the whole file must be one JSON value, or JSON lines
        try:
            json.loads(text)
            return TYPES["json"]
        except ValueError:
            lines = [line for line in text.splitlines() if line.strip()]
            try:
                if len(lines) > 1 and all(isinstance(json.loads(line), (dict, list)) for line in lines):
                    return JSONL_TYPE
            except ValueError:
                return None
    return None


def _is_mail(text: str, *, hinted: bool) -> bool:
    """True when ``text`` opens with an RFC 5322 header block: header lines (folded lines
    allowed) up to a blank line, with at least two of the usual fields (one when the name or
    declared type says e-mail), ``From`` or ``Date`` or ``Received`` among them."""
    fields: set[str] = set()
    for line in text.lstrip("\ufeff").splitlines()[:200]:
        if not line.strip():
            break
        if line[0] in " \t" and fields:
            continue  # a folded header line
        match = _HEADER_LINE.match(line)
        if match is None:
            if line.startswith("From ") and not fields:  # an mbox "From " separator line
                continue
            return False
        fields.add(match.group(1).lower())
    known = fields & _MAIL_FIELDS
    return len(known) >= (1 if hinted else 2) and bool(known & {"from", "date", "received", "subject"})


def _sniff_zip(path: Path, head: bytes) -> DetectedType:
    """Which ZIP-based document: an OOXML package by its main part (``word/document.xml``,
    ``ppt/presentation.xml``, ``xl/workbook.xml``), EPUB and OpenDocument by the ``mimetype``
    member; any other ZIP is refused."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            mimetype = _package_mimetype(zf) if "mimetype" in names else ""
            content_types = _content_types(zf) if "xl/workbook.xml" in names else b""
    except ZIP_ERRORS:
        # Damaged (e.g. truncated) archive: trust the local headers we can see, and
        # let the parser report the damage precisely.
        for member, kind in _OOXML_PARTS:
            if member.encode() in head:
                return _ooxml_type(kind, head)
        for name in _local_member_names(head):  # the main part may be past the cut (openpyxl
            for folder, kind in _OOXML_FOLDERS:  # writes xl/workbook.xml after the sheets)
                if name.startswith(folder):
                    return _ooxml_type(kind, head)
        for package, kind in _PACKAGE_MIMETYPES.items():
            if head[30:38] == b"mimetype" and package.encode() in head[:200]:
                return TYPES[kind]
        raise UnsupportedType(
            f"the content is a damaged ZIP archive of no known document ({_SUPPORTED})"
        ) from None
    for member, kind in _OOXML_PARTS:
        if member in names:
            return _ooxml_type(kind, content_types)
    if mimetype in _PACKAGE_MIMETYPES:
        return TYPES[_PACKAGE_MIMETYPES[mimetype]]
    if mimetype:
        raise UnsupportedType(f"the content is a package of type {mimetype[:80]!r}, not {_SUPPORTED}")
    raise UnsupportedType("the content is a ZIP archive that holds no document; upload its files instead")


#: The folder of each OOXML kind's parts: what a truncated package's local headers show.
_OOXML_FOLDERS = ((b"word/", "docx"), (b"ppt/", "pptx"), (b"xl/", "xlsx"))


def _local_member_names(head: bytes) -> list[bytes]:
    """The member names of the ZIP local file headers in ``head`` (those not cut off)."""
    names: list[bytes] = []
    at = head.find(b"PK\x03\x04")
    while at >= 0 and at + 30 <= len(head):
        length = int.from_bytes(head[at + 26 : at + 28], "little")
        names.append(head[at + 30 : at + 30 + length])
        at = head.find(b"PK\x03\x04", at + 30)
    return names


def _package_mimetype(zf: zipfile.ZipFile) -> str:
    """The ``mimetype`` member of an EPUB or OpenDocument package (its first 200 bytes)."""
    with zf.open("mimetype") as member:
        return member.read(200).decode("ascii", "replace").strip().lower()


def _content_types(zf: zipfile.ZipFile) -> bytes:
    """An OOXML package's ``[Content_Types].xml`` (its first 64 KiB), or b'' when it is missing
    or damaged."""
    try:
        with zf.open("[Content_Types].xml") as member:
            return member.read(SNIFF_BYTES)
    except (KeyError, *ZIP_ERRORS):
        return b""


def _ooxml_type(kind: str, content_types: bytes) -> DetectedType:
    """The type of an OOXML package of ``kind``: XLSM when its workbook is macro-enabled."""
    if kind == "xlsx" and b"sheet.macroEnabled.main+xml" in content_types:
        return XLSM_TYPE
    return TYPES[kind]


def _sniff_ole2(path: Path) -> DetectedType:
    """An OLE2 (Compound File) is an Outlook message when it holds ``__substg1.0_`` property
    streams; a password-protected Office file when it holds ``EncryptedPackage``; anything
    else (legacy .doc, .xls, .ppt) is refused."""
    import olefile

    try:
        with olefile.OleFileIO(str(path)) as ole:
            entries = ["/".join(entry) for entry in ole.listdir(streams=True, storages=True)]
    except (OSError, ValueError, IndexError, TypeError, struct_error) as exc:
        raise UnsupportedType(f"the content is a damaged OLE2 (Compound File) file ({exc})") from None
    if "EncryptedPackage" in entries or "EncryptionInfo" in entries:
        raise DocumentEncrypted(
            "the file is a password-protected Office document (an encrypted package); save a copy "
            "without the password and upload it"
        )
    if any(name.startswith("__substg1.0_") for name in entries):
        return TYPES["msg"]
    if (
        "WordDocument" in entries
        or "Workbook" in entries
        or "Book" in entries
        or "PowerPoint Document" in entries
    ):
        raise UnsupportedType(
            "the content is a legacy Office file (.doc, .xls or .ppt); save it as .docx, .xlsx or .pptx"
        )
    raise UnsupportedType(
        f"the content is an OLE2 (Compound File) file of no known document, not {_SUPPORTED}"
    )


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
    (and ``text/plain`` fits the text kinds: HTML, CSV, JSON, e-mail, RTF);
    ``application/zip`` fits the ZIP-based kinds; a legacy Office type (``application/msword``,
    ``application/vnd.ms-excel`` ...) fits its OOXML successor.

    Returns:
        False when the declaration contradicts the content (e.g. ``application/pdf``
        for an HTML error page): the caller raises ``ContentTypeMismatch``.
    """
    mime = normalise_mime(declared_mime)
    if mime in _UNKNOWN_MIMES or mime == detected.mime.lower():
        return True
    return mime in _COMPATIBLE.get(detected.kind, frozenset())
