"""``chunking`` -> ``chunks_stored``: split the parsed text, write the chunk buffer."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from docingest.db.repository import Repository
from docingest.domain import EMBEDDED_CONTEXT, JobProgress, Stage
from docingest.errors import NoText
from docingest.heap import trim_heap
from docingest.providers.chunking.chunker import Chunk, Chunker, chunk_id
from docingest.providers.storage.base import Storage
from docingest.stages.artifacts import ParsedArtifact
from docingest.stages.base import StageContext, StageResult

#: Kinds whose pages are units of their own (slides, sheets, image frames): no chunk spans two.
#: A PDF's paragraphs cross pages, so its chunks may too.
PAGE_BOUNDED_KINDS = frozenset({"pptx", "odp", "xlsx", "ods", "image"})
#: Kinds whose parsed text is Markdown: split at its structure, ATX headings give heading paths
#: (the PDF parser writes the headings it finds as such lines; slides, sheets, chapters and
#: messages get theirs from the parsers), long pipe tables are cut between rows with their
#: header repeated. The others (plain text, JSON's path: value lines, OCR's text) are split
#: as text.
MARKDOWN_KINDS = frozenset(
    {
        "markdown",
        "html",
        "docx",
        "pdf",
        "pptx",
        "xlsx",
        "epub",
        "odt",
        "ods",
        "odp",
        "rtf",
        "eml",
        "msg",
        "csv",
    }
)


class ChunkDocument:
    """Chunk with the embedding model's tokenizer; replace the document's buffered chunks.

    Chunk ids are ``uuid5(document_id, chunker:version:ordinal)``, so a rerun
    writes the same rows. ``chunker_factory`` is called once, on first use.

    Raises:
        NoText: when the text yields no chunk.
    """

    stage = Stage.CHUNKING

    def __init__(self, storage: Storage, chunker_factory: Callable[[], Chunker]) -> None:
        self.storage = storage
        self._factory = chunker_factory
        self._chunker: Chunker | None = None

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            self._chunker = self._factory()
        return self._chunker

    def run(self, ctx: StageContext) -> StageResult:
        doc = ctx.document
        artifact = ParsedArtifact.load(self.storage, doc)
        pages = [p for p in artifact.pages if not p.empty] or artifact.pages
        chunks = self.chunker.chunk(
            artifact.text,
            markdown=artifact.kind in MARKDOWN_KINDS,
            page_starts=[p.start for p in pages],
            page_numbers=[p.number for p in pages],
            split_pages=artifact.kind in PAGE_BOUNDED_KINDS,
        )
        trim_heap()  # the splitter's and tokenizer's scratch memory of a large document
        if not chunks:
            raise NoText("the parsed text produced no chunk (only whitespace)")
        ctx.check()
        title = document_title(artifact.metadata, doc.filename)
        chunker = self.chunker
        contexts: dict[tuple[tuple[str, ...], int], str] = {}  # chunks of a section share it

        def context(c: Chunk) -> str:
            key = (tuple(c.heading_path), chunker.context_budget(c.token_count))
            if key not in contexts:
                contexts[key] = chunker.context(title, key[0], budget=key[1])
            return contexts[key]

        rows = [
            (
                chunk_id(doc.document_id, c.ordinal),
                c.ordinal,
                c.text,
                with_context(c.meta(), context(c)),
                c.token_count,
            )
            for c in chunks
        ]

        def persist(conn: Any) -> None:
            Repository().replace_chunk_buffer(conn, doc.document_id, rows)

        warnings = unreadable_chunks_warning(chunker, chunks)
        return StageResult(
            progress=JobProgress(
                chunks_total=len(chunks),
                chunks_embedded=0,
                tokens_total=sum(c.token_count for c in chunks),
                chunk_warnings=[warnings] if warnings else None,
            ),
            persist=persist,
        )


#: a chunk is "unreadable" when at least this share of its tokens is the unknown token
UNREADABLE_SHARE = 0.5
#: a run of this many characters without whitespace is what WordPiece reads as one unknown token
_LONG_RUN = re.compile(r"\S{101,}")


def unreadable_chunks_warning(chunker: Chunker, chunks: Sequence[Chunk]) -> str | None:
    """A warning naming the chunks the embedder reads as mostly unknown tokens (long unbroken
    strings: base64, hashes, minified code), which embed to near-identical vectors and match
    unrelated questions; None when there are none. Only chunks with a run of over 100
    characters without whitespace are tokenized again (the cost stays off ordinary text)."""
    suspects = [c for c in chunks if _LONG_RUN.search(c.text)]
    if not suspects:
        return None
    shares = chunker.unknown_token_shares([c.text for c in suspects])
    bad = [c for c, share in zip(suspects, shares, strict=True) if share >= UNREADABLE_SHARE]
    if not bad:
        return None
    where = ", ".join(f"page {c.page}" if c.page is not None else f"chunk {c.ordinal + 1}" for c in bad[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    return (
        f"{len(bad)} of {len(chunks)} chunks are mostly strings of over 100 characters without a "
        f"space ({where}{more}): the embedder reads them as unknown tokens, so they cannot be "
        "found by meaning and may match unrelated questions; break such strings up or leave "
        "them out of the file"
    )


def document_title(metadata: dict[str, str], filename: str) -> str:
    """The title a document's chunks are embedded under: the parser's ``Title`` (a PDF's or
    DOCX's properties, an HTML ``<title>``), else the file name."""
    title = " ".join((metadata.get("Title") or metadata.get("title") or "").split())
    return title or filename


def with_context(meta: dict[str, Any], context: str) -> dict[str, Any]:
    """``meta`` with ``context`` under ``domain.EMBEDDED_CONTEXT`` (left out when empty)."""
    return {**meta, EMBEDDED_CONTEXT: context} if context else meta
