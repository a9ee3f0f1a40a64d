"""One handler per stage; :func:`build_handlers` is the registry the worker dispatches on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from docingest.domain import Stage
from docingest.providers.chunking.chunker import Chunker
from docingest.providers.embedding.base import Embedder
from docingest.stages.base import StageContext, StageHandler, StageResult
from docingest.stages.chunk import ChunkDocument
from docingest.stages.embed import EmbedChunks, FinalizeDocument
from docingest.stages.parse import ParseDocument, ParseFn, ValidateParse
from docingest.stages.passthrough import Passthrough
from docingest.stages.verify import VerifyUpload

__all__ = ["StageContext", "StageHandler", "StageResult", "build_handlers"]


def build_handlers(
    *,
    storage: Any,
    parse_fn: ParseFn,
    chunker_factory: Callable[[], Chunker],
    embedder_factory: Callable[[], Embedder],
    max_file_bytes: int,
    dimensions: int,
    embedding_cache: bool = False,
    parse_progress_interval_seconds: float = 0.5,
) -> dict[Stage, StageHandler]:
    """``{stage: handler}`` for the nine stages that have work (``complete`` has none)."""
    handlers: list[StageHandler] = [
        VerifyUpload(storage, max_file_bytes=max_file_bytes),
        ParseDocument(storage, parse_fn, progress_interval_seconds=parse_progress_interval_seconds),
        ValidateParse(storage),
        Passthrough(Stage.PARSE_VALIDATED),
        ChunkDocument(storage, chunker_factory),
        Passthrough(Stage.CHUNKS_STORED),
        Passthrough(Stage.EMBEDDING_QUEUED),
        EmbedChunks(embedder_factory, dimensions=dimensions, cache=embedding_cache),
        FinalizeDocument(),
    ]
    registry = {h.stage: h for h in handlers}
    assert set(registry) == set(Stage) - {Stage.COMPLETE}
    return registry
