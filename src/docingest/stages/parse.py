"""``parse_queued`` -> ``parsed`` (parse) and ``parsed`` -> ``parse_validated`` (clean, check)."""

from __future__ import annotations

import bisect
import hashlib
import logging
import re
import time
from dataclasses import replace
from typing import Any

from docingest.domain import JobProgress, Stage
from docingest.errors import NoText, TextTooLarge
from docingest.observability import metrics
from docingest.providers.parsing import DEFAULT_OPTIONS, OcrPage, ParseOptions, Parser
from docingest.providers.parsing.sandbox import OCR_KINDS
from docingest.providers.storage.base import Storage, delete_objects
from docingest.stages.artifacts import ParsedArtifact
from docingest.stages.attachments import prepare_attachments, register_attachments
from docingest.stages.base import StageContext, StageResult
from docingest.stages.metadata import meta_defaults

log = logging.getLogger("docingest.stages.parse")

#: What turns OCR on, said when a scan has no text and OCR was off for want of Tesseract.
OCR_OFF_HINT = "install Tesseract (apt-get install tesseract-ocr tesseract-ocr-eng) and leave UPLOAD_PIPELINE_OCR at auto"

#: Kinds whose text may all be pictures that OCR does not read here.
_IMAGE_HOLDERS = frozenset({"docx", "pptx", "odt", "odp", "epub"})

# NUL, lone surrogates, and the noncharacters U+FFFE/U+FFFF (PDFium hands a NUL
# character code of a PDF's text back as U+FFFE): counted as NULs.
_UNWANTED = re.compile("[\x00\ud800-\udfff\ufffe\uffff]")


class PageProgressSaver:
    """``on_progress(pages_parsed, pages_total)`` that saves them in the job's progress
    while the parse runs, with ``eta_s`` (seconds left at the rate observed since the
    stage started): the first report at once, then at most once per ``interval_seconds``.
    The last page is not saved here: the stage's result records it.

    Raises (from the call):
        LeaseLost: the attempt no longer holds the job (``ctx.save_progress``); the
            sandbox then stops the parse.
    """

    def __init__(self, ctx: StageContext, interval_seconds: float) -> None:
        self.ctx = ctx
        self.interval_seconds = interval_seconds
        self.started = time.monotonic()
        self.saved_at: float | None = None
        self.saves = 0

    def __call__(self, pages_parsed: int, pages_total: int) -> None:
        now = time.monotonic()
        if pages_parsed >= pages_total or (
            self.saved_at is not None and now - self.saved_at < self.interval_seconds
        ):
            return
        rate = pages_parsed / max(now - self.started, 1e-6)
        self.saved_at = now
        self.ctx.save_progress(
            JobProgress(
                pages_parsed=pages_parsed,
                pages_total=pages_total,
                eta_s=round((pages_total - pages_parsed) / rate, 1),
            )
        )
        self.saves += 1


class ParseDocument:
    """Parse the original with the parser for its sniffed kind; store the artifact.

    ``parser(path, kind, on_progress=...)`` is the parser entry point (a ``parsing.Parser``:
    in-process or a bounded child process); its ``DocingestError``s propagate to the worker.
    While a PDF is parsed, pages parsed of pages total (and an ETA) are saved in
    the job's progress at most once per ``progress_interval_seconds``. Pages read by OCR
    are recorded as an ``ocr_completed`` event (:func:`ocr_summary`), ``pages_ocred`` in the
    progress, and the ``docingest_ocr_pages_total`` / ``docingest_ocr_seconds`` metrics.
    An e-mail's attached files are stored and registered as documents of their own in the
    stage's transaction (``stages.attachments``; an ``attachments_registered`` event lists them).
    """

    stage = Stage.PARSE_QUEUED

    def __init__(
        self,
        storage: Storage,
        parser: Parser,
        *,
        progress_interval_seconds: float = 0.5,
        options: ParseOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.storage = storage
        self.parser = parser
        self.progress_interval_seconds = progress_interval_seconds
        self.options = options

    def run(self, ctx: StageContext) -> StageResult:
        doc = ctx.document
        kind = ctx.job.control.detected_kind or "text"
        on_progress = PageProgressSaver(ctx, self.progress_interval_seconds)
        with self.storage.local_path(doc.raw_path) as path:
            parsed = self.parser(path, kind, on_progress=on_progress, options=self.options)
        ctx.check()
        artifact = ParsedArtifact(
            text=parsed.markdown,
            kind=parsed.kind,
            pages=list(parsed.pages),
            metadata=dict(parsed.metadata),
            warnings=list(parsed.warnings),
        )
        key = artifact.save(self.storage, doc)
        page_count = len(parsed.pages) or None
        empty_pages = [p.number for p in parsed.pages if p.empty]
        metrics.PARSED_DOCUMENTS.labels(kind=parsed.kind).inc()
        metrics.PARSE_PAGES.labels(kind=parsed.kind).inc(page_count or 0)

        front_matter, left_out = _front_matter_to_add(doc.meta, parsed.front_matter)
        warnings = list(parsed.warnings)
        if left_out:
            warnings.append(f"front matter keys left out (over the metadata limits): {', '.join(left_out)}")
        # An e-mail's attached files: stored now, registered as documents in the transition.
        prepared = prepare_attachments(self.storage, doc, parsed.attachments, warnings)
        unused_keys: list[str] = []

        def persist(conn: Any) -> None:
            from docingest.db.repository import Repository

            repo = Repository()
            repo.update_document_parsed(conn, doc.document_id, parsed_path=key, page_count=page_count)
            if front_matter:
                repo.add_document_meta_defaults(conn, doc.document_id, front_matter)
            if prepared:
                rows, unused_keys[:] = register_attachments(conn, repo, doc, prepared)
                repo.insert_event(
                    conn,
                    job_id=ctx.job.job_id,
                    document_id=doc.document_id,
                    stage=self.stage.value,
                    type="attachments_registered",
                    payload={"attachments": rows},
                )

        def after_commit(conn: Any) -> None:
            if unused_keys:
                from docingest.db.repository import Repository

                Repository().forget_object_deletions(conn, delete_objects(self.storage, unused_keys))

        events: list[tuple[str, dict[str, Any]]] = [("warning", {"message": w}) for w in warnings]
        progress = JobProgress(
            pages_total=page_count, pages_parsed=page_count, chars=len(parsed.markdown), eta_s=0
        )
        if empty_pages:
            progress = progress.merge(JobProgress(empty_pages=empty_pages))
            events.append(("empty_pages", {"pages": empty_pages}))
        if parsed.ocr_pages:
            events.append(("ocr_completed", ocr_summary(parsed.ocr_pages)))
            progress = progress.merge(JobProgress(pages_ocred=len(parsed.ocr_pages)))
            metrics.OCR_PAGES.labels(kind=parsed.kind).inc(len(parsed.ocr_pages))
            for page in parsed.ocr_pages:
                metrics.OCR_SECONDS.labels(kind=parsed.kind).observe(page.seconds)
        if warnings:  # e.g. undecodable bytes replaced: shown by `status` and `ingest`
            progress = progress.merge(JobProgress(parse_warnings=warnings))
            for w in warnings:
                log.info("%s: %s", doc.filename, w)  # ingest prints them under its summary
        return StageResult(progress=progress, persist=persist, events=events, after_commit=after_commit)


def ocr_summary(pages: list[OcrPage]) -> dict[str, Any]:
    """The ``ocr_completed`` event's payload for the pages OCR read (``pages`` not empty).

    Returns:
        ``{"pages": [numbers], "mean_confidence": mean word confidence 0-100 over every word
        read (pages weighted by their words; 0 when none was read), "low_confidence_pages":
        [numbers], "words": words read, "seconds": OCR wall time, rendering included}``, and
        ``"rotated_pages": {number: degrees}`` when pages were turned upright to be read.
    """
    words = sum(p.words for p in pages)
    mean = sum(p.confidence * p.words for p in pages) / words if words else 0.0
    summary: dict[str, Any] = {
        "pages": [p.number for p in pages],
        "mean_confidence": round(mean, 1),
        "low_confidence_pages": [p.number for p in pages if p.low_confidence],
        "words": words,
        "seconds": round(sum(p.seconds for p in pages), 3),
    }
    rotated = {str(p.number): p.rotation for p in pages if p.rotation}
    if rotated:
        summary["rotated_pages"] = rotated
    return summary


def _front_matter_to_add(
    meta: dict[str, Any], front_matter: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The front matter keys to add to a document's metadata ``meta`` (its own keys, from
    ``--meta`` or the upload request, win) and those left out for the metadata limits."""
    if not front_matter:
        return {}, []
    return meta_defaults(meta, front_matter)


def clean_text(text: str) -> tuple[str, list[int], int, int]:
    """Remove NUL characters and lone surrogates (PostgreSQL rejects both in text).

    U+FFFE and U+FFFF (never text; PDFium's stand-in for a NUL in page text) are
    removed too and counted with the NULs.

    Returns ``(cleaned, removed_offsets, nul_count, surrogate_count)``; the
    offsets (ascending, into the original) let callers remap positions.
    """
    removed = [m.start() for m in _UNWANTED.finditer(text)]
    if not removed:
        return text, [], 0, 0
    nuls = sum(1 for i in removed if text[i] in "\x00\ufffe\uffff")
    return _UNWANTED.sub("", text), removed, nuls, len(removed) - nuls


def remap_offset(offset: int, removed: list[int]) -> int:
    """Position in the cleaned text of original position ``offset``."""
    return offset - bisect.bisect_left(removed, offset)


class ValidateParse:
    """Clean NULs and lone surrogates (counted in events), refuse empty text, hash it.

    ``ocr`` is the resolved OCR mode (``ParseOptions.ocr``) and ``ocr_off_because`` what turns it
    on where it is off: they word the ``no_text`` message.

    Raises:
        NoText: when no text is left (scanned images without OCR, blank files).
        TextTooLarge: the text is over ``max_chars`` characters (``MAX_DOCUMENT_CHARS``).
    """

    stage = Stage.PARSED

    def __init__(
        self,
        storage: Storage,
        *,
        ocr: str = "off",
        ocr_off_because: str = OCR_OFF_HINT,
        max_chars: int = 30_000_000,
    ) -> None:
        self.storage = storage
        self.ocr = ocr
        self.ocr_off_because = ocr_off_because
        self.max_chars = max_chars

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
        if len(text) > self.max_chars:
            raise TextTooLarge(
                f"the document's text is {len(text):,} characters ({doc.bytes_len / 1e6:,.1f} MB of "
                f"{artifact.kind}), over the limit of {self.max_chars:,} "
                "(UPLOAD_PIPELINE_MAX_DOCUMENT_CHARS): split it, or raise the limit"
            )
        if not text.strip():
            kind = ctx.job.control.detected_kind or artifact.kind
            if kind in OCR_KINDS and self.ocr != "off":
                raise NoText(
                    "no text was found in the document, by its text layer or by OCR: the pages are "
                    "blank, or the scan is too faint or too small to read (scan at 300 dpi)"
                )
            if kind in OCR_KINDS:
                raise NoText(
                    f"no text was found in the document (it may be scanned images), and OCR is off: "
                    f"{self.ocr_off_because}"
                )
            if kind in _IMAGE_HOLDERS:
                raise NoText(
                    "no text was found in the document: it may hold only pictures, which OCR reads "
                    "only in PDFs and image files; export it as PDF and upload that"
                )
            if doc.mime in ("text/html", "application/xhtml+xml"):
                raise NoText(
                    f"the page's body has no text ({doc.bytes_len} bytes of HTML): only markup, "
                    "a title, scripts or styles, which are not indexed; add text to its <body> "
                    "and upload again"
                )
            raise NoText(
                f"the file holds only whitespace ({doc.bytes_len} bytes, {doc.mime}): "
                "there is nothing to index; add text and upload again"
            )
        events: list[tuple[str, dict[str, Any]]] = []
        if artifact.cleaning is None and (removed or meta_nuls):
            # The page map (sidecar) is written first and records the cleaning: a retry
            # after a failure between the two writes finds the offsets already remapped
            # and only cleans the text again (remapping twice would shift every page).
            artifact.pages = [
                replace(p, start=remap_offset(p.start, removed), end=remap_offset(p.end, removed))
                for p in artifact.pages
            ]
            artifact.metadata = metadata
            artifact.cleaning = {
                "nul_removed": nuls,
                "lone_surrogates_removed": surrogates,
                "metadata_chars_removed": meta_nuls,
            }
            artifact.save_sidecar(self.storage, doc)
        if removed:
            artifact.text = text
            artifact.save_text(self.storage, doc)
        if artifact.cleaning:
            events.append(("text_cleaned", dict(artifact.cleaning)))
            nuls = artifact.cleaning["nul_removed"]
            surrogates = artifact.cleaning["lone_surrogates_removed"]
        parsed_sha = hashlib.sha256(text.encode("utf-8")).hexdigest()

        def persist(conn: Any) -> None:
            from docingest.db.repository import Repository

            Repository().update_document_parsed_sha(conn, doc.document_id, parsed_sha)

        return StageResult(
            progress=JobProgress(nul_removed=nuls, lone_surrogates_removed=surrogates),
            persist=persist,
            events=events,
        )
