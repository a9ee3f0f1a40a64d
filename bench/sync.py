"""``sync`` after an edit of 10% of the files vs. a full ingest (issue 17's benchmark).

Ingests the sample corpus (``examples/docs``: the same seven documents as Markdown, HTML, DOCX
and PDF) into a fresh embedded database, appends a sentence to 10% of its files (Markdown
ones: text a sentence can be appended to), and runs ``sync``: only those files are read,
parsed and chunked again, and only their chunks whose text changed are embedded (the others'
vectors come from the embedding cache, by the text's SHA-256). Then a ``sync`` with nothing
changed (every file skipped by size and modification time). Target: the sync takes at most
0.15x the full ingest's time.

    python -m bench.sync [--quick]
"""

from __future__ import annotations

import argparse
import math
import shutil
import time

from bench.common import REPO, Figure, scratch_dir, scratch_settings

SAMPLE = REPO / "examples" / "docs"


def run(quick: bool = False) -> list[Figure]:
    from docingest.providers.embedding.local import make_local_embedder, resolve_backend
    from docingest.runtime import Runtime
    from docingest.services.ingest import ingest
    from docingest.services.sync import sync

    folder = scratch_dir("docingest-bench-sync-") / "docs"
    shutil.copytree(SAMPLE / "md" if quick else SAMPLE, folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    settings = scratch_settings()
    for purpose in ("documents", "queries"):  # the one-off model export is not the ingest's time
        make_local_embedder(
            resolve_backend(settings.embedding_backend, purpose), cache_dir=settings.model_cache_dir
        ).embed(["warm"])
    rt = Runtime(settings)
    try:
        full = ingest(rt, [folder], user_id="bench", poll_seconds=0.05)
        assert full.failed == 0, full.failures
        changed = sorted(p for p in files if p.suffix == ".md")[: max(1, math.ceil(len(files) / 10))]
        for p in changed:
            with p.open("a", encoding="utf-8") as f:
                f.write("\nThis sentence was appended to measure sync after an edit.\n")
        synced = sync(rt, [folder], user_id="bench", poll_seconds=0.05)
        assert (synced.updated, synced.failed) == (len(changed), 0), synced
        started = time.perf_counter()
        idle = sync(rt, [folder], user_id="bench", poll_seconds=0.05)
        idle_s = time.perf_counter() - started
        assert idle.unchanged == len(files), idle
    finally:
        rt.close()
    embedded = synced.chunks - synced.embedding_cache_hits
    return [
        Figure("sync", "files", len(files)),
        Figure("sync", "files changed", len(changed)),
        Figure("sync", "full ingest wall", full.wall_s, "s"),
        Figure("sync", "full ingest chunks", full.chunks),
        Figure("sync", "sync wall", synced.wall_s, "s"),
        Figure("sync", "sync / full ingest time", round(synced.wall_s / full.wall_s, 3), "x", "<= 0.15"),
        Figure("sync", "changed files' chunks", synced.chunks),
        Figure("sync", "chunks embedded by sync", embedded),
        Figure("sync", "embedding cache hits", synced.embedding_cache_hits),
        Figure("sync", "sync with nothing changed", round(idle_s, 3), "s"),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    for f in run(parser.parse_args().quick):
        print(f"{f.name:32} {f.value:>12} {f.unit:8} {f.target}")
