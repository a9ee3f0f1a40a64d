"""``uploaded`` -> ``parse_queued``: the object exists and is what was declared."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from docingest.db.repository import Repository
from docingest.domain import Document, JobControl, JobProgress, Stage
from docingest.errors import (
    ChecksumMismatch,
    ContentTypeMismatch,
    EmptyFile,
    FileTooLarge,
    PermanentError,
    ReusedChunksGone,
    SizeMismatch,
    TransientError,
)
from docingest.observability import metrics
from docingest.providers.parsing import detect, is_declared_compatible
from docingest.providers.parsing.markdown import front_matter_of
from docingest.providers.parsing.sniff import TYPES, XLSM_MIME, normalise_mime
from docingest.providers.storage.base import Storage, iter_stream
from docingest.stages.base import StageContext, StageResult
from docingest.stages.metadata import meta_defaults

#: Declared types that must hold: the binary documents (PDF, Office, OpenDocument, EPUB,
#: Outlook messages, images). Bytes declared as one of them whose content is something else
#: (typically an HTML error page saved under the document's name, or another binary format)
#: are not that document: ``content_type_mismatch``. A declared text type or
#: ``application/octet-stream`` is a hint: the sniffed type wins and a warning is recorded.
BINDING_MIMES = frozenset(
    {"application/x-pdf", "application/acrobat", XLSM_MIME, "image/jpeg", "image/tiff", "image/webp"}
    | {
        TYPES[kind].mime
        for kind in ("pdf", "docx", "pptx", "xlsx", "epub", "odt", "ods", "odp", "msg", "image")
    }
)


#: Kinds whose parse does more than make chunks, so identical bytes are parsed again rather than
#: reusing another document's chunks: an e-mail's parse registers its attachments as documents
#: linked to the message (``attached_to``), which a copy under another source needs too.
PARSED_FOR_MORE_THAN_CHUNKS = frozenset({"eml", "msg"})


class VerifyUpload:
    """Check size, SHA-256 and sniffed type of the stored original.

    A permanent mismatch deletes the object (it is not the document the user
    declared). The sniffed type wins over the declared one for parsing; a
    difference is recorded as a warning event, except where the declared type
    must hold (:data:`BINDING_MIMES`): then ``ContentTypeMismatch`` names the
    detected type.

    Bytes that another document of the same user already has, stored with its chunks, are
    not parsed or embedded again (except an e-mail's: :data:`PARSED_FOR_MORE_THAN_CHUNKS`): the
    job skips to ``embeddings_stored`` with that document's chunks and vectors buffered as its
    own (``chunks_reused`` event), and finalize stores them.

    Raises:
        EmptyFile, FileTooLarge, SizeMismatch, ChecksumMismatch, UnsupportedType,
        ContentTypeMismatch (the declared type contradicts the content),
        ReusedChunksGone (transient: the document to reuse was deleted meanwhile).
    """

    stage = Stage.UPLOADED

    def __init__(self, storage: Storage, *, max_file_bytes: int) -> None:
        self.storage = storage
        self.max_file_bytes = max_file_bytes
        self.repo = Repository()

    def run(self, ctx: StageContext) -> StageResult:
        doc = ctx.document
        try:
            return self._verify(ctx)
        except PermanentError:
            # Best effort: a storage hiccup must not turn a permanent verdict into a retry.
            with contextlib.suppress(TransientError):
                self.storage.delete(doc.raw_path)
            raise

    def _verify(self, ctx: StageContext) -> StageResult:
        doc = ctx.document
        info = self.storage.head(doc.raw_path)
        if info is None:
            raise SizeMismatch(f"the uploaded object {doc.raw_path} is missing")
        if info.size == 0:
            raise EmptyFile("the file is empty (0 bytes)")
        if info.size > self.max_file_bytes:
            raise FileTooLarge(f"{info.size} bytes is over the limit of {self.max_file_bytes}")
        if info.size != doc.bytes_len:
            raise SizeMismatch(f"stored object has {info.size} bytes, declared {doc.bytes_len}")
        digest = hashlib.sha256()
        # One local copy serves both checks (a remote backend downloads the object once).
        with self.storage.local_path(doc.raw_path) as path:
            with path.open("rb") as f:
                for block in iter_stream(f):
                    digest.update(block)
                    ctx.check()
            if digest.hexdigest() != doc.file_sha256:
                raise ChecksumMismatch(
                    f"SHA-256 of the stored bytes is {digest.hexdigest()}, declared {doc.file_sha256}"
                )
            detected = detect(path, declared_mime=doc.mime, filename=doc.filename)
        declared = normalise_mime(doc.mime)
        if declared in BINDING_MIMES and not is_declared_compatible(detected, doc.mime):
            raise ContentTypeMismatch(
                f"the file was declared {declared} but its content is {detected.mime} "
                f"({detected.kind}); upload the real document, or declare {detected.mime}"
            )
        metrics.UPLOAD_BYTES.inc(info.size)
        events: list[tuple[str, dict[str, Any]]] = []
        if detected.mime != doc.mime:
            events.append(
                (
                    "warning",
                    {
                        "message": f"declared {doc.mime}, content is {detected.mime}; "
                        f"parsed as {detected.kind}",
                        "detected_mime": detected.mime,
                    },
                )
            )
        control = JobControl(detected_kind=detected.kind, detected_mime=detected.mime)
        if detected.kind in PARSED_FOR_MORE_THAN_CHUNKS:
            return StageResult(control=control, events=events)
        with ctx.reading() as conn:
            known = self.repo.reusable_chunks(
                conn, user_id=doc.user_id, file_sha256=doc.file_sha256, document_id=doc.document_id
            )
        if known is None:
            return StageResult(control=control, events=events)
        return self._reuse(doc, known, control, events)

    def _reuse(
        self,
        doc: Document,
        known: dict[str, Any],
        control: JobControl,
        events: list[tuple[str, dict[str, Any]]],
    ) -> StageResult:
        """Skip to ``embeddings_stored`` with the chunks and vectors of ``known``, a stored
        document with the same bytes (identical bytes are not parsed or embedded twice). A
        Markdown file's front matter is read here, since the parse stage is skipped."""
        document_id = doc.document_id
        source_id = known["document_id"]
        front_matter: dict[str, Any] = {}
        if control.detected_kind == "markdown":
            with self.storage.local_path(doc.raw_path) as path:
                front_matter, _ = meta_defaults(doc.meta, front_matter_of(path))

        def persist(conn: Any) -> None:
            if self.repo.clone_chunks(conn, document_id=document_id, from_document_id=source_id) == 0:
                raise ReusedChunksGone(
                    f"document {source_id}, whose chunks were to be reused, was deleted meanwhile; "
                    "the upload is verified again and processed in full"
                )
            if front_matter:
                self.repo.add_document_meta_defaults(conn, document_id, front_matter)

        events.append(("chunks_reused", {"from_document_id": str(source_id), "chunks": known["chunks"]}))
        return StageResult(
            control=control,
            events=events,
            persist=persist,
            next_stage=Stage.EMBEDDINGS_STORED,
            progress=JobProgress(
                pages_total=known["page_count"],
                pages_parsed=known["page_count"],  # the bytes' pages, read for the other document
                chunks_total=known["chunks"],
                chunks_embedded=known["chunks"],
                embedding_cache_hits=known["chunks"],
            ),
        )
