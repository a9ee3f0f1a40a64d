"""Checks of ZIP-based documents (DOCX, PPTX, XLSX, EPUB, OpenDocument) before a library
opens them: the unpacked size (a zip bomb: a few MB that unpack to many GB), and the
members a damaged package lost.

The sizes are those the central directory declares; a member that lies about its size is
cut at the declared size by ``zipfile`` (and then fails as damaged XML), so the declared
total bounds what any library reading through ``zipfile`` can unpack. The parse child's
memory limit bounds the rest.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

from docingest.errors import ArchiveTooLarge, DocumentCorrupt

_MB = 1024 * 1024

#: What ``zipfile`` raises on a damaged archive.
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


def check_archive(path: Path, max_unpacked_bytes: int, *, what: str) -> list[zipfile.ZipInfo]:
    """Refuse a ZIP-based document that unpacks to more than ``max_unpacked_bytes``.

    Args:
        path: the document.
        max_unpacked_bytes: the most bytes its members may declare in all
            (``ParseOptions.max_unpacked_bytes``).
        what: the format's name for messages (``'XLSX'``, ``'EPUB'`` ...).

    Returns:
        The members' ``ZipInfo``, in directory order.

    Raises:
        DocumentCorrupt: not a readable ZIP (truncated, damaged directory).
        ArchiveTooLarge: the members declare more than ``max_unpacked_bytes`` in all.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except ZIP_ERRORS as exc:
        raise DocumentCorrupt(
            f"the {what} is damaged: not a readable ZIP package ({type(exc).__name__}); it may be "
            "truncated: re-save it and upload it again"
        ) from exc
    unpacked = sum(m.file_size for m in members)
    if unpacked > max_unpacked_bytes:
        packed = sum(m.compress_size for m in members)
        raise ArchiveTooLarge(
            f"the {what} unpacks to {unpacked / _MB:,.0f} MB from {packed / _MB:,.1f} MB "
            f"(limit {max_unpacked_bytes / _MB:,.0f} MB, UPLOAD_PIPELINE_MAX_UNPACKED_MB): a zip bomb, "
            "or a document too large to read; split it, or raise the limit if it is genuine"
        )
    return members


#: ``ParsedDocument.metadata`` key -> attribute of an OOXML package's core properties
#: (``docProps/core.xml`` as python-docx and python-pptx read it).
OOXML_CORE_PROPERTIES = {
    "Title": "title",
    "Author": "author",
    "Subject": "subject",
    "Keywords": "keywords",
    "LastModifiedBy": "last_modified_by",
    "CreationDate": "created",
    "ModDate": "modified",
}


def core_metadata(props: Any) -> dict[str, str]:
    """The metadata of an OOXML package's core properties (``document.core_properties``):
    :data:`OOXML_CORE_PROPERTIES`' keys, dates as ISO 8601, empty values left out."""
    metadata: dict[str, str] = {}
    for key, attr in OOXML_CORE_PROPERTIES.items():
        value = getattr(props, attr, None)
        if value is None or value == "":
            continue
        text = value.isoformat() if hasattr(value, "isoformat") else str(value).strip()
        if text:
            metadata[key] = text
    return metadata
