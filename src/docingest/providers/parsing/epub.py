"""EPUB -> Markdown-ish text via ebooklib: the chapters in spine (reading) order.

Each chapter's XHTML goes through ``html.html_to_markdown`` (its ``<h1>``... become ``#``
headings; a chapter without any heading gets its title from the table of contents as a
``#`` heading); the navigation document (the table of contents, which repeats the headings) is
left out. A spine item whose file is missing from the package is skipped with a warning and
the other chapters are kept; an item whose content is encrypted (DRM, listed in
``META-INF/encryption.xml``) fails the parse ``document_encrypted``.
"""

from __future__ import annotations

import posixpath
import re
import warnings as pywarnings
import zipfile
from pathlib import Path
from typing import Any

from ebooklib import epub
from lxml import etree

from docingest.errors import DocumentCorrupt, DocumentEncrypted, scrub_paths
from docingest.providers.parsing.archive import ZIP_ERRORS, check_archive
from docingest.providers.parsing.base import DEFAULT_OPTIONS, PageProgress, ParsedDocument, ParseOptions
from docingest.providers.parsing.html import html_to_markdown

#: What ebooklib / zipfile / lxml raise on a damaged package (a missing container or OPF,
#: bad XML, an OPF without its manifest or spine).
_LIBRARY_ERRORS = (
    *ZIP_ERRORS,
    epub.EpubException,
    KeyError,
    IndexError,
    AttributeError,
    TypeError,
    AssertionError,  # lxml: "ElementTree not initialized, missing root" (an empty XML member)
    etree.LxmlError,
)
#: Dublin Core element -> metadata key (several values joined by ``'; '``).
_DC_KEYS = {
    "title": "Title",
    "creator": "Author",
    "subject": "Keywords",
    "description": "Subject",
    "publisher": "Publisher",
    "language": "Language",
    "date": "CreationDate",
}
_ATX = re.compile(r"^#{1,6} ", re.MULTILINE)
_ENCRYPTION_NS = "{http://www.w3.org/2001/04/xmlenc#}"
#: The obfuscation of embedded fonts, listed in encryption.xml too: not DRM.
_FONT_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}


class _TolerantReader(epub.EpubReader):
    """ebooklib's reader, except that a manifest item whose file is missing is read as empty
    and named in :attr:`missing`, and a damaged table of contents is noted in
    :attr:`toc_error` (ebooklib fails the whole book on either)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, {"ignore_ncx": True})
        self.missing: set[str] = set()
        self.toc_error: str | None = None

    def _parse_nav(self, data: bytes, base_path: str, navtype: str = "toc") -> None:
        try:
            super()._parse_nav(data, base_path, navtype=navtype)
        except (*_LIBRARY_ERRORS, ValueError) as exc:
            self.toc_error = f"{type(exc).__name__}: {_cause(exc)}"

    def _parse_ncx(self, data: bytes) -> None:
        try:
            super()._parse_ncx(data)
        except (*_LIBRARY_ERRORS, ValueError) as exc:
            self.toc_error = f"{type(exc).__name__}: {_cause(exc)}"

    def read_file(self, name: str) -> bytes:
        try:
            return super().read_file(name)
        except KeyError:
            # The container and the package document (OPF) are required: their absence
            # fails the parse; any other member (a chapter, an image) is reported.
            if name in ("META-INF/container.xml", self.opf_file) or not self.opf_file:
                raise
            self.missing.add(posixpath.normpath(name))
            return b""


class EpubParser:
    """Converts an EPUB (2 or 3) e-book to Markdown-ish text, chapters in reading order."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the EPUB at ``path``.

        Returns:
            A ``ParsedDocument`` of kind ``'epub'``, no pages; the chapters' Markdown joined by
            a blank line; ``metadata`` from the Dublin Core elements (``Title``, ``Author``,
            ``Keywords`` (``dc:subject``), ``Subject`` (``dc:description``), ``Publisher``,
            ``Language``, ``CreationDate``); a warning per chapter whose file is missing and
            per chapter whose text could not be decoded.

        Raises:
            DocumentCorrupt: not a readable ZIP, no ``META-INF/container.xml`` or package
                document, malformed package XML.
            ArchiveTooLarge: the members unpack to more than ``options.max_unpacked_bytes``.
            DocumentEncrypted: chapters are encrypted (DRM).
        """
        check_archive(path, options.max_unpacked_bytes, what="EPUB")
        _refuse_drm(path)
        reader = _TolerantReader(str(path))
        try:
            with pywarnings.catch_warnings():
                pywarnings.simplefilter("ignore")  # ebooklib's deprecation notices
                book = reader.load()
                reader.process()
        except _LIBRARY_ERRORS as exc:
            raise DocumentCorrupt(
                f"the EPUB is damaged ({type(exc).__name__}: {_cause(exc)}); re-export it from its "
                "editor (e.g. Calibre or Sigil) and upload it again"
            ) from exc

        warnings: list[str] = []
        if reader.toc_error is not None:
            warnings.append(
                f"the EPUB's table of contents is damaged ({reader.toc_error}): chapters read without it"
            )
        blocks: list[str] = []
        titles = _toc_titles(book.toc)
        position = 0  # of the chapter in the spine, the navigation document not counted
        for idref, _linear in book.spine:
            item = book.get_item_with_id(idref)
            if item is None:
                warnings.append(f"spine item {idref!r} is not in the EPUB's manifest: skipped")
                continue
            if isinstance(item, epub.EpubNav) or not isinstance(item, epub.EpubHtml):
                continue  # the table of contents; non-XHTML spine items (rare) hold no text
            position += 1
            name = posixpath.normpath(posixpath.join(reader.opf_dir, item.get_name()))
            if name in reader.missing:
                warnings.append(f"chapter {position} ({item.get_name()}) is missing from the EPUB: skipped")
                continue
            try:
                chapter = html_to_markdown(item.get_content())
            except DocumentCorrupt as exc:
                warnings.append(
                    f"chapter {position} ({item.get_name()}) is not readable text: skipped ({exc})"
                )
                continue
            warnings.extend(f"chapter {position}: {w}" for w in chapter.warnings)
            if not chapter.markdown.strip():
                continue
            title = titles.get(posixpath.normpath(item.get_name()))
            if title and not _ATX.search(chapter.markdown):  # its title only in the contents
                blocks.append(f"# {title}")
            blocks.append(chapter.markdown)
        return ParsedDocument(
            markdown="\n\n".join(blocks), kind="epub", pages=[], metadata=_metadata(book), warnings=warnings
        )


def _toc_titles(toc: Any) -> dict[str, str]:
    """Chapter file (relative to the package document, no fragment) -> its first title in the
    table of contents (nav document, or NCX for EPUB 2)."""
    titles: dict[str, str] = {}

    def walk(entries: Any) -> None:
        for entry in entries:
            if isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[1], list):
                add(entry[0])  # (Section, children)
                walk(entry[1])
            elif isinstance(entry, (tuple, list)):
                walk(entry)
            else:
                add(entry)

    def add(entry: Any) -> None:
        name = str(getattr(entry, "href", "") or "").split("#", 1)[0]
        title = " ".join(str(getattr(entry, "title", "") or "").split())
        if name and title:
            titles.setdefault(posixpath.normpath(name), title)

    walk(toc or [])
    return titles


def _cause(exc: BaseException) -> str:
    """A library error's text for a user: without the server path of the file."""
    return scrub_paths(str(exc)) or type(exc).__name__


def _refuse_drm(path: Path) -> None:
    """Raise DocumentEncrypted when ``META-INF/encryption.xml`` encrypts anything but fonts.

    Raises:
        DocumentEncrypted: content documents are encrypted (DRM).
    """
    try:
        with zipfile.ZipFile(path) as zf:
            if "META-INF/encryption.xml" not in zf.namelist():
                return
            root = etree.fromstring(zf.read("META-INF/encryption.xml"))
    except (*ZIP_ERRORS, etree.LxmlError):
        return  # a damaged encryption.xml: the chapters tell (their XHTML fails to convert)
    for data in root.iter(f"{_ENCRYPTION_NS}EncryptedData"):
        method = data.find(f"{_ENCRYPTION_NS}EncryptionMethod")
        algorithm = method.get("Algorithm", "") if method is not None else ""
        if algorithm not in _FONT_OBFUSCATION:
            raise DocumentEncrypted(
                "the EPUB is protected by DRM (its chapters are encrypted); upload a copy without "
                "DRM (e.g. the publisher's DRM-free edition)"
            )


def _metadata(book: Any) -> dict[str, str]:
    """Dublin Core values, whitespace-folded, several joined by ``'; '``; empty left out."""
    metadata: dict[str, str] = {}
    for element, key in _DC_KEYS.items():
        values = [" ".join(str(value).split()) for value, _attrs in book.get_metadata("DC", element) if value]
        values = [v for v in values if v]
        if values:
            metadata[key] = "; ".join(dict.fromkeys(values))
    return metadata
