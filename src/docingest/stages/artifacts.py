"""The parsed artifact: ``{user}/parsed/{doc}.md`` (text) and ``{doc}.json`` (page map)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

from docingest.domain import Document
from docingest.providers.parsing import ParsedPage
from docingest.providers.storage import parsed_key
from docingest.providers.storage.base import Storage


@dataclass
class ParsedArtifact:
    """Parsed text plus what the chunker needs to know about it.

    ``pages`` holds a :class:`ParsedPage` per page (character offsets into ``text``); the
    sidecar stores each as a ``[number, start, end, empty]`` row, and rows given to the
    constructor are read so.
    ``cleaning`` is set by validation once it cleaned text and page map: the counts
    ``{nul_removed, lone_surrogates_removed, metadata_chars_removed}``.
    """

    text: str
    kind: str
    pages: list[ParsedPage] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    cleaning: dict[str, int] | None = None

    def __post_init__(self) -> None:
        self.pages = [p if isinstance(p, ParsedPage) else ParsedPage(*p) for p in self.pages]

    def save(self, storage: Storage, document: Document) -> str:
        """Write both objects; returns the text's key. Lone surrogates survive (surrogatepass)."""
        key = self.save_text(storage, document)
        self.save_sidecar(storage, document)
        return key

    def save_text(self, storage: Storage, document: Document) -> str:
        """Write the text object only; returns its key."""
        key = parsed_key(document.user_id, document.document_id)
        storage.put_stream(key, io.BytesIO(self.text.encode("utf-8", "surrogatepass")))
        return key

    def save_sidecar(self, storage: Storage, document: Document) -> None:
        """Write the page map, metadata, warnings (and cleaning record) object only."""
        pages = [[p.number, p.start, p.end, p.empty] for p in self.pages]
        sidecar: dict[str, Any] = {
            "kind": self.kind,
            "pages": pages,
            "metadata": self.metadata,
            "warnings": self.warnings,
        }
        if self.cleaning is not None:
            sidecar["cleaning"] = self.cleaning
        storage.put_stream(
            parsed_key(document.user_id, document.document_id, "json"),
            io.BytesIO(json.dumps(sidecar, ensure_ascii=True).encode()),
        )

    @classmethod
    def load(cls, storage: Storage, document: Document) -> ParsedArtifact:
        with storage.open_stream(parsed_key(document.user_id, document.document_id)) as f:
            text = f.read().decode("utf-8", "surrogatepass")
        with storage.open_stream(parsed_key(document.user_id, document.document_id, "json")) as f:
            sidecar = json.loads(f.read())
        return cls(text=text, **sidecar)
