"""``parse_queued`` -> ``parsed`` (parse) and ``parsed`` -> ``parse_validated`` (clean, check)."""

from __future__ import annotations

import bisect
import hashlib
import re
from typing import Any, Callable

from docingest import metrics
from docingest.domain import Stage
from docingest.errors import NoText
from docingest.parsing import ParsedDocument
from docingest.stages.artifacts import ParsedArtifact
from docingest.stages.base import StageContext, StageResult

ParseFn = Callable[[Any, str], ParsedDocument]

_UNWANTED = re.compile("[\x00\ud800-\udfff]")


class ParseDocument:
    """Parse the original with the parser for its sniffed kind; store the artifact.

    ``parse_fn(path, kind)`` is the parser entry point (in-process or a bounded
    child process); its ``DocingestError``s propagate to the worker.
    """

    stage = Stage.PARSE_QUEUED

    def __init__(self, storage: Any, parse_fn: ParseFn) -> None:
        self.storage = storage
        self.parse_fn = parse_fn

    def run(self, ctx: StageContext) -> StageResult:
        doc = ctx.document
        kind = ctx.job.progress.get("detected_kind", "text")
        with self.storage.local_path(doc.raw_path) as path:
            parsed = self.parse_fn(path, kind)
        ctx.check()
        artifact = ParsedArtifact(
            text=parsed.markdown,
            kind=parsed.kind,
            pages=[[p.number, p.start, p.end, p.empty] for p in parsed.pages],
            metadata=dict(parsed.metadata),
            warnings=list(parsed.warnings),
        )
        key = artifact.save(self.storage, doc)
        page_count = len(parsed.pages) or None
        empty_pages = [p.number for p in parsed.pages if p.empty]
        metrics.PARSED_DOCUMENTS.labels(kind=parsed.kind).inc()
        metrics.PARSE_PAGES.labels(kind=parsed.kind).inc(page_count or 0)

        def persist(conn: Any) -> None:
            from docingest.db.repository import Repository

            Repository().update_document_parsed(conn, doc.document_id, parsed_path=key,
                                                page_count=page_count)

        events = [("warning", {"message": w}) for w in parsed.warnings]
        progress: dict[str, Any] = {"pages_total": page_count, "pages_parsed": page_count,
                                    "chars": len(parsed.markdown)}
        if empty_pages:
            progress["empty_pages"] = empty_pages
            events.append(("empty_pages", {"pages": empty_pages}))
        return StageResult(progress=progress, persist=persist, events=events)


def clean_text(text: str) -> tuple[str, list[int], int, int]:
    """Remove NUL characters and lone surrogates (PostgreSQL rejects both in text).

    Returns ``(cleaned, removed_offsets, nul_count, surrogate_count)``; the
    offsets (ascending, into the original) let callers remap positions.
    """
    removed = [m.start() for m in _UNWANTED.finditer(text)]
    if not removed:
        return text, [], 0, 0
    nuls = sum(1 for i in removed if text[i] == "\x00")
    return _UNWANTED.sub("", text), removed, nuls, len(removed) - nuls


def remap_offset(offset: int, removed: list[int]) -> int:
    """Position in the cleaned text of original position ``offset``."""
    return offset - bisect.bisect_left(removed, offset)


class ValidateParse:
    """Clean NULs and lone surrogates (counted in events), refuse empty text, hash it.

    Raises:
        NoText: when no text is left (scanned images without OCR, blank files).
    """

    stage = Stage.PARSED

    def __init__(self, storage: Any) -> None:
        self.storage = storage

    def run(self, ctx: StageContext) -> StageResult:
        doc = ctx.document
        artifact = ParsedArtifact.load(self.storage, doc)
        text, removed, nuls, surrogates = clean_text(artifact.text)
        meta_nuls = 0
        metadata: dict[str, str] = {}
        for name, value in artifact.metadata.items():
            cleaned, _, n, s = clean_text(str(value))
            meta_nuls += n + s
            metadata[clean_text(str(name))[0]] = cleaned
        if not text.strip():
            raise NoText(
                "no text was found in the document (it may be scanned images); "
                "OCR is not configured"
            )
        events: list[tuple[str, dict[str, Any]]] = []
        if removed or meta_nuls:
            artifact.text = text
            artifact.pages = [
                [n, remap_offset(s, removed), remap_offset(e, removed), empty]
                for n, s, e, empty in artifact.pages
            ]
            artifact.metadata = metadata
            artifact.save(self.storage, doc)
            events.append(("text_cleaned", {"nul_removed": nuls, "lone_surrogates_removed": surrogates,
                                            "metadata_chars_removed": meta_nuls}))
        parsed_sha = hashlib.sha256(text.encode("utf-8")).hexdigest()

        def persist(conn: Any) -> None:
            from docingest.db.repository import Repository

            Repository().update_document_parsed_sha(conn, doc.document_id, parsed_sha)

        return StageResult(
            progress={"nul_removed": nuls, "lone_surrogates_removed": surrogates},
            persist=persist,
            events=events,
        )
