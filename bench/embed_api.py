"""Benchmark: chunks/s of the embedding stage against the OpenAI mock at a fixed latency.

Bound = batches in flight x batch size / latency. The document is ingested through
the real pipeline (embedded PostgreSQL, local storage, local parser, the OpenAI
embedder); the embedding stage's time is the ``seconds`` of its ``stage_completed``
event, after the start-up probe has warmed the SDK and tokenizer as a worker's does.
With a cold cache the mock must see exactly ceil(chunks / batch size) requests.

    PYTHONPATH=src:. python bench/embed_api.py [--chunks 6000] [--batch 64] [--in-flight 4]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.mockservers import MockServer, openai_settings

from docingest.ingest import ingest
from docingest.runtime import Runtime
from docingest.settings import Settings

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "omicron", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega", "river", "stone", "cloud", "paper", "lamp", "orbit", "garden", "silver", "copper"]


def write_corpus(path: Path, chunks: int, seed: int = 1) -> None:
    """A markdown file of ``chunks`` distinct sections, each far under 256 tokens."""
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(chunks):
            words = " ".join(rng.choice(WORDS) for _ in range(150))
            f.write(f"# Section {i}\n\n{words} {i}.\n\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--in-flight", type=int, default=4)
    ap.add_argument("--latency-ms", type=float, default=100.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-embed-api-"))
    doc = work / "corpus.md"
    write_corpus(doc, args.chunks)
    with MockServer("openai", "--latency-ms", str(args.latency_ms), log_dir=work) as mock:
        settings = Settings(data_dir=work / "data", environment="test", **openai_settings(
            mock, embedding_max_batch_inputs=args.batch, embedding_concurrency=args.in_flight,
            embedding_cache=True))
        rt = Runtime(settings)
        try:
            # As `docingest worker`/`ingest` do at start-up: the probe loads the SDK and the
            # tokenizer, so the stage is measured warm. Its request is not counted below.
            rt.check_embedder_dimensions()
            probes = len(mock.stats()["requests"])
            started = time.monotonic()
            summary = ingest(rt, [doc], concurrency=1, poll_seconds=0.1)
            wall = time.monotonic() - started
            with rt.pool().connection() as conn:
                row = conn.execute(
                    "SELECT (payload->>'seconds')::float8 AS s FROM upload_pipeline.events"
                    " WHERE type = 'stage_completed' AND payload->>'from' = 'embedding_in_progress'"
                ).fetchone()
        finally:
            rt.close()
        requests = [r for r in mock.stats()["requests"][probes:] if r["path"].endswith("/embeddings")]
    seconds = float(row["s"])
    first = min(r["t"] for r in requests)
    last = max(r["answered"] for r in requests)
    busy = sum(r["answered"] - r["t"] for r in requests)
    bound = args.in_flight * args.batch / (args.latency_ms / 1000.0)
    figures = {
        "chunks": summary.chunks, "batch_size": args.batch, "in_flight": args.in_flight,
        "latency_ms": args.latency_ms, "embed_stage_s": round(seconds, 3),
        "chunks_per_s": round(summary.chunks / seconds, 1), "bound_chunks_per_s": round(bound, 1),
        "ratio_to_bound": round(summary.chunks / seconds / bound, 3),
        "requests_sent": len(requests), "requests_expected": math.ceil(summary.chunks / args.batch),
        "requests_window_s": round(last - first, 3),
        "mean_in_flight": round(busy / (last - first), 2),
        "mean_server_s": round(busy / len(requests), 4),
        "cache_hits": summary.embedding_cache_hits, "ingest_wall_s": round(wall, 2),
        "complete": summary.complete, "failed": summary.failed,
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
