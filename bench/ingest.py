"""Pipeline throughput vs the embedder alone on the same chunks (issue 2's benchmark).

Runs ``docingest ingest``'s code path over the corpus on a fresh embedded database,
then embeds the very chunk texts it stored with the same embedder alone, and re-runs
the chunker alone over the parsed artifacts. The default embedder backend's one-off
ONNX export into the fresh data dir is done first and reported apart. Targets: pipeline >= 0.8x the embedder
alone (chunks/s), chunking <= 5% of the embedding time.

    python -m bench.ingest [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.common import CORPUS, Figure, scratch_settings


def corpus_paths(quick: bool) -> list[Path]:
    docs = CORPUS / "docs"
    if quick:
        return [docs / "md", docs / "pdf" / "ltnews30.pdf"]  # keeps --quick (all benches) < 3 min
    return [docs]


def run(quick: bool = False) -> list[Figure]:
    from docingest.domain import Document
    from docingest.runtime import Runtime
    from docingest.services.ingest import ingest
    from docingest.stages.artifacts import ParsedArtifact
    from docingest.stages.chunk import MARKDOWN_KINDS

    settings = scratch_settings()
    # The ONNX backend exports the model on first use: do it ahead, as `docingest
    # prepare-embedder` would, so the pipeline's wall time is not that one-off.
    from docingest.providers.embedding.local import make_local_embedder, resolve_backend

    started = time.perf_counter()
    for purpose in ("documents", "queries"):
        make_local_embedder(
            resolve_backend(settings.embedding_backend, purpose), cache_dir=settings.model_cache_dir
        ).embed(["warm"])
    prepare_s = time.perf_counter() - started
    rt = Runtime(settings)
    try:
        summary = ingest(rt, corpus_paths(quick), user_id="bench")
        assert summary.failed == 0, summary.failures
        with rt.pool().connection() as conn:
            texts = [
                r["text"]
                for r in conn.execute(
                    "SELECT text FROM upload_pipeline.document_chunks ORDER BY document_id, ordinal"
                )
            ]
            docs = [Document.from_row(r) for r in conn.execute("SELECT * FROM upload_pipeline.documents")]
        embedder = rt.embedder()
        started = time.perf_counter()
        for i in range(0, len(texts), 256):
            embedder.embed(texts[i : i + 256])
        embed_s = time.perf_counter() - started
        chunker = rt.chunker()
        artifacts = [ParsedArtifact.load(rt.storage, d) for d in docs]
        started = time.perf_counter()
        for a in artifacts:
            chunker.chunk(
                a.text,
                markdown=a.kind in MARKDOWN_KINDS,
                page_starts=[p.start for p in a.pages],
                page_numbers=[p.number for p in a.pages],
            )
        chunk_s = time.perf_counter() - started
    finally:
        rt.close()
    pipeline_cps = summary.chunks / summary.wall_s
    embed_cps = len(texts) / embed_s
    return [
        Figure(
            "ingest",
            f"embedder backend: {settings.embedding_backend}, first-use export",
            round(prepare_s, 1),
            "s",
        ),
        Figure("ingest", "documents", summary.documents),
        Figure("ingest", "chunks", summary.chunks),
        Figure("ingest", "pipeline wall", summary.wall_s, "s"),
        Figure("ingest", "pipeline documents/s", summary.docs_per_s, "doc/s"),
        Figure("ingest", "pipeline chunks/s", round(pipeline_cps, 2), "chunk/s"),
        Figure("ingest", "embedder alone chunks/s", round(embed_cps, 2), "chunk/s"),
        Figure("ingest", "pipeline / embedder alone", round(pipeline_cps / embed_cps, 3), "x", ">= 0.8"),
        Figure("ingest", "chunking time", round(chunk_s, 2), "s"),
        Figure("ingest", "chunking / embedding time", round(chunk_s / embed_s, 4), "x", "<= 0.05"),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    for f in run(parser.parse_args().quick):
        print(f"{f.name:32} {f.value:>12} {f.unit:8} {f.target}")
