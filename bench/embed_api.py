"""Benchmark: chunks/s of the embedding stage against the OpenAI mock at a fixed latency.

Bound = batches in flight x batch size / latency. The document is ingested through
the real pipeline (embedded PostgreSQL, local storage, local parser, the OpenAI
embedder talking to ``docingest mock openai`` started as a process on loopback);
the embedding stage's time is the ``seconds`` of its ``stage_completed`` event,
after the start-up probe has warmed the SDK and tokenizer as a worker's does.
With a cold cache the mock must see exactly ceil(chunks / batch size) requests.

The bound is a steady-state rate: a run of ``ceil(chunks / batch)`` requests over
``in_flight`` lanes cannot beat ``ceil(requests / in_flight)`` round trips, so the
best possible ratio of a run is also printed (``best_possible_ratio``).

    python -m bench embed_api [--quick]
    python bench/embed_api.py [--chunks 6144] [--batch 64] [--in-flight 4] [--latency-ms 100]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, Figure, scratch_dir

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "omicron",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "chi",
    "psi",
    "omega",
    "river",
    "stone",
    "cloud",
    "paper",
    "lamp",
    "orbit",
    "garden",
    "silver",
    "copper",
]


def write_corpus(path: Path, chunks: int, seed: int = 1) -> None:
    """A markdown file of ``chunks`` distinct sections, each far under 256 tokens."""
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(chunks):
            words = " ".join(rng.choice(WORDS) for _ in range(150))
            f.write(f"# Section {i}\n\n{words} {i}.\n\n")


class _Mock:
    """``docingest mock openai`` as a process on a free loopback port."""

    def __init__(self, latency_ms: float, log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("UPLOAD_PIPELINE_", "DOCINGEST_MOCK"))
        }
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "docingest.cli.main",
                "mock",
                "openai",
                "--port",
                str(self.port),
                "--latency-ms",
                str(latency_ms),
            ],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"the OpenAI mock did not start; see {log}")
            time.sleep(0.1)

    def requests(self) -> list[dict[str, Any]]:
        stats = httpx.get(f"{self.url}/_mock/stats", timeout=10).json()
        return [r for r in stats["requests"] if r["path"].endswith("/embeddings")]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def measure(chunks: int, batch: int, in_flight: int, latency_ms: float) -> dict[str, Any]:
    """Ingest ``chunks`` distinct sections through the OpenAI embedder; the stage's figures."""
    from docingest.runtime import Runtime
    from docingest.services.ingest import ingest
    from docingest.settings import Settings

    work = scratch_dir("bench-embed-api-")
    doc = work / "corpus.md"
    write_corpus(doc, chunks)
    mock = _Mock(latency_ms, work / "mock.log")
    try:
        settings = Settings(
            data_dir=work / "data",
            environment="test",
            embedding_provider="openai",
            openai_base_url=f"{mock.url}/v1",
            openai_api_key="bench-key",
            embedding_model="text-embedding-3-small",
            embedding_dimensions=384,
            embedding_max_batch_inputs=batch,
            embedding_concurrency=in_flight,
            embedding_cache=True,
        )
        rt = Runtime(settings)
        try:
            # As `docingest worker`/`ingest` do at start-up: the probe loads the SDK and the
            # tokenizer, so the stage is measured warm. Its request is not counted below.
            rt.check_embedder_dimensions()
            probes = len(mock.requests())
            started = time.monotonic()
            summary = ingest(rt, [doc], concurrency=1)  # polls as `docingest ingest` does
            wall = time.monotonic() - started
            with rt.pool().connection() as conn:
                row = conn.execute(
                    "SELECT (payload->>'seconds')::float8 AS s FROM upload_pipeline.events"
                    " WHERE type = 'stage_completed' AND payload->>'from' = 'embedding_in_progress'"
                ).fetchone()
        finally:
            rt.close()
        requests = mock.requests()[probes:]
    finally:
        mock.stop()
    seconds = float(row["s"])
    first = min(r["t"] for r in requests)
    last = max(r["answered"] for r in requests)
    busy = sum(r["answered"] - r["t"] for r in requests)
    bound = in_flight * batch / (latency_ms / 1000.0)
    expected = math.ceil(summary.chunks / batch)
    best_seconds = math.ceil(expected / in_flight) * latency_ms / 1000.0
    return {
        "chunks": summary.chunks,
        "batch_size": batch,
        "in_flight": in_flight,
        "latency_ms": latency_ms,
        "embed_stage_s": round(seconds, 3),
        "chunks_per_s": round(summary.chunks / seconds, 1),
        "bound_chunks_per_s": round(bound, 1),
        "ratio_to_bound": round(summary.chunks / seconds / bound, 3),
        "best_possible_ratio": round(summary.chunks / best_seconds / bound, 3),
        "requests_sent": len(requests),
        "requests_expected": expected,
        "requests_window_s": round(last - first, 3),
        "mean_in_flight": round(busy / (last - first), 2),
        "mean_server_s": round(busy / len(requests), 4),
        "cache_hits": summary.embedding_cache_hits,
        "ingest_wall_s": round(wall, 2),
        "complete": summary.complete,
        "failed": summary.failed,
    }


def run(quick: bool = False) -> list[Figure]:
    """The suite's rows: ratio to the bound, and requests sent against ceil(chunks / batch)."""
    f = measure(chunks=1024 if quick else 6144, batch=64, in_flight=4, latency_ms=100.0)
    return [
        Figure(
            "embed_api",
            "embedding stage",
            f["chunks_per_s"],
            "chunks/s",
            f"bound {f['bound_chunks_per_s']:g} (4 in flight x 64 / 100 ms)",
        ),
        Figure(
            "embed_api",
            "stage / bound",
            f["ratio_to_bound"],
            "x",
            f">= 0.9x (this run's best possible {f['best_possible_ratio']:g}x)",
        ),
        Figure(
            "embed_api",
            "requests sent",
            f["requests_sent"],
            "",
            f"== ceil(chunks / batch) = {f['requests_expected']}",
        ),
        Figure("embed_api", "mean requests in flight", f["mean_in_flight"], "", "4"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=6144)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--in-flight", type=int, default=4)
    ap.add_argument("--latency-ms", type=float, default=100.0)
    args = ap.parse_args()
    print(json.dumps(measure(args.chunks, args.batch, args.in_flight, args.latency_ms), indent=2))


if __name__ == "__main__":
    main()
