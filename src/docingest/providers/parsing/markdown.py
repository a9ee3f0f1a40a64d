"""Markdown files: decoded and returned as they are (already Markdown)."""

from __future__ import annotations

from pathlib import Path

from docingest.providers.parsing.base import ParsedDocument
from docingest.providers.parsing.decoding import decode_text


class MarkdownParser:
    """Reads a Markdown file; the text is not rewritten."""

    def parse(self, path: Path) -> ParsedDocument:
        """Parse the Markdown file at ``path``.

        Decoding: UTF-8 (BOM stripped), UTF-16/32 with a BOM, else UTF-8 with
        undecodable bytes replaced by U+FFFD and a warning (see ``parsing.decoding``).

        Returns:
            A ``ParsedDocument`` of kind ``'markdown'`` whose ``markdown`` is the
            decoded file, no pages, ``metadata == {'Encoding': codec}``.

        Raises:
            DocumentCorrupt: the bytes are not text (over a quarter of the characters
                undecodable or control characters).
            OSError: the file cannot be read.
        """
        decoded = decode_text(path.read_bytes())
        return ParsedDocument(
            markdown=decoded.text,
            kind="markdown",
            pages=[],
            metadata={"Encoding": decoded.encoding},
            warnings=list(decoded.warnings),
        )
