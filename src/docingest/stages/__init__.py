"""One handler per stage; :func:`build_handlers` is the registry the worker dispatches on.

Imports providers, db, observability and the foundation; never the worker or services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from docingest.domain import Generation, Stage
from docingest.providers.chunking.chunker import Chunker
from docingest.providers.embedding.base import Embedder
from docingest.providers.parsing.base import Parser
from docingest.providers.parsing.options import parse_options, resolve_ocr
from docingest.providers.storage.base import Storage
from docingest.settings import Settings
from docingest.stages.base import StageContext, StageHandler, StageResult
from docingest.stages.chunk import ChunkDocument
from docingest.stages.embed import EmbedChunks, FinalizeDocument
from docingest.stages.parse import OCR_OFF_HINT, ParseDocument, ValidateParse
from docingest.stages.passthrough import Passthrough
from docingest.stages.reembed import ReembedDocument, SwitchGeneration
from docingest.stages.verify import VerifyUpload

if TYPE_CHECKING:
    from docingest.providers.parsing.llamaparse import LlamaParseClient

__all__ = [
    "PARSE_HANDLERS",
    "Collaborators",
    "StageContext",
    "StageHandler",
    "StageResult",
    "build_handlers",
    "build_reembed_handlers",
]


@dataclass(frozen=True)
class Collaborators:
    """What the handlers are built from; the factories are called only by handlers that need them.

    Attributes:
        settings: limits, intervals and the parser's name (``UPLOAD_PIPELINE_PARSER``).
        storage: the object store every stage reads and writes.
        parser: builds the local parser (``parsing.parse_file`` or a ``SandboxedParser``).
        chunker: builds the chunker (on the first chunking run).
        embedder: builds the documents' embedder (on the first embedding run).
        llamaparse_client: builds the LlamaParse client (``PARSER=llamaparse`` only).
    """

    settings: Settings
    storage: Storage
    parser: Callable[[], Parser]
    chunker: Callable[[], Chunker]
    embedder: Callable[[], Embedder]
    llamaparse_client: Callable[[], LlamaParseClient] | None = None


def _local_parse(c: Collaborators) -> StageHandler:
    """``parse_queued`` in this host: the local parser (sandboxed unless ``PARSE_SANDBOX`` is off)."""
    return ParseDocument(
        c.storage,
        c.parser(),
        progress_interval_seconds=c.settings.parse_progress_interval_seconds,
        options=parse_options(c.settings),
    )


def _llamaparse(c: Collaborators) -> StageHandler:
    """``parse_queued`` by LlamaParse (submit, then poll by rescheduling).

    Raises:
        ValueError: no ``llamaparse_client`` factory was given.
    """
    from docingest.stages.llamaparse import LlamaParseDocument

    if c.llamaparse_client is None:
        raise ValueError("PARSER=llamaparse needs a LlamaParse client")
    return LlamaParseDocument(c.storage, c.llamaparse_client(), c.settings)


#: ``UPLOAD_PIPELINE_PARSER`` value -> the function building the ``parse_queued`` handler.
PARSE_HANDLERS: dict[str, Callable[[Collaborators], StageHandler]] = {
    "local": _local_parse,
    "llamaparse": _llamaparse,
}


def _ocr_words(s: Settings) -> dict[str, str]:
    """``ValidateParse``'s ``ocr`` (the resolved mode) and ``ocr_off_because``: the setting, or
    what Tesseract lacks here."""
    if s.parser != "local":
        return {"ocr": "off", "ocr_off_because": "the remote parser (UPLOAD_PIPELINE_PARSER) read no text"}
    mode, _, why_off = resolve_ocr(s)
    return {"ocr": mode, "ocr_off_because": why_off or OCR_OFF_HINT}


def build_handlers(c: Collaborators) -> dict[Stage, StageHandler]:
    """``{stage: handler}`` for the nine stages that have work (``complete`` has none).

    The ``parse_queued`` handler is the one :data:`PARSE_HANDLERS` names for ``settings.parser``.

    Raises:
        ValueError: ``PARSER=llamaparse`` without a LlamaParse client factory (or no API key,
            raised by that factory).
    """
    s = c.settings
    handlers: list[StageHandler] = [
        VerifyUpload(c.storage, max_file_bytes=s.max_file_bytes),
        PARSE_HANDLERS[s.parser](c),
        ValidateParse(c.storage, max_chars=s.max_document_chars, **_ocr_words(s)),
        Passthrough(Stage.PARSE_VALIDATED),
        ChunkDocument(c.storage, c.chunker),
        Passthrough(Stage.CHUNKS_STORED),
        Passthrough(Stage.EMBEDDING_QUEUED),
        EmbedChunks(c.embedder, dimensions=s.embedding_dimensions, cache=s.embedding_cache),
        FinalizeDocument(c.storage, hnsw_min_chunks=s.search_exact_max_chunks),
    ]
    registry = {h.stage: h for h in handlers}
    assert set(registry) == set(Stage) - {Stage.COMPLETE}
    return registry


def build_reembed_handlers(
    embedder_for: Callable[[Generation], Embedder], settings: Settings
) -> dict[Stage, StageHandler]:
    """``{stage: handler}`` of a re-embedding job (``kind = 'reembed'``): it starts at
    ``embedding_in_progress`` (:class:`ReembedDocument`) and switches its user at
    ``embeddings_stored`` (:class:`SwitchGeneration`)."""
    return {
        Stage.EMBEDDING_IN_PROGRESS: ReembedDocument(embedder_for, cache=settings.embedding_cache),
        Stage.EMBEDDINGS_STORED: SwitchGeneration(),
    }
