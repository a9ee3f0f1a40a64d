"""Plain-text files: decoded and returned as they are."""

from __future__ import annotations

from pathlib import Path

from docingest.providers.parsing.base import DEFAULT_OPTIONS, PageProgress, ParsedDocument, ParseOptions
from docingest.providers.parsing.decoding import decode_text


class TextParser:
    """Reads a plain-text file; the text is not rewritten (no Markdown escaping)."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the text file at ``path``.

        Decoding: UTF-8 (BOM stripped), UTF-16/32 with a BOM, else UTF-8 with
        undecodable bytes replaced by U+FFFD and a warning (see ``parsing.decoding``).

        Returns:
            A ``ParsedDocument`` of kind ``'text'`` whose ``markdown`` is the
            decoded file, no pages, ``metadata == {'Encoding': codec}``.

        Raises:
            DocumentCorrupt: the bytes are not text (over a quarter of the characters
                undecodable or control characters).
            OSError: the file cannot be read.
        """
        decoded = decode_text(path.read_bytes())
        return ParsedDocument(
            markdown=decoded.text,
            kind="text",
            pages=[],
            metadata={"Encoding": decoded.encoding},
            warnings=list(decoded.warnings),
        )
