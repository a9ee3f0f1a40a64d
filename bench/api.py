"""Benchmark: ``POST /api/v2/upload`` against bare FastAPI routes doing its inserts.

Both servers run as single uvicorn processes on loopback against the same embedded
PostgreSQL, each with a psycopg pool of the same size and sync routes. The upload route
verifies an HS256 JWT, validates the body, inserts document + job + event under row
security (one pipeline) and signs an upload URL. The bare routes have no auth, no models
and no signing: ``bare_same`` runs the very same database call (``Repository.create_upload``),
``bare_insert`` inserts one ``documents`` row only. A load generator (httpx, asyncio) in
this process sends ``--requests`` requests with ``--concurrency`` in flight to each, after a
warm-up, in alternating rounds; the best round of each is reported.

Usage::

    python -m bench api [--quick]
    python bench/api.py [--requests 2000] [--concurrency 16] [--rounds 2] [--json]

Target: the upload route reaches at least 0.7x the requests/s of the bare route doing the same
inserts (``bare_same``); ``bare_insert`` shows what the extra job and event rows cost.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import hashlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-" + "z" * 40
USERS = 1000  # uploads spread over users, as in real use (each under the active-job limit)


# --- the bare server -----------------------------------------------------------------------
def bare_app(url: str, pool_size: int) -> Any:
    """A FastAPI app with two sync routes and nothing else (no auth, no models, no signing).

    ``/bare/same``: the upload's own database work (``Repository.create_upload``: document, job
    and event in one pipeline under row security). ``/bare/insert``: one ``documents`` row.
    """
    from fastapi import Body, FastAPI

    from docingest.db.pool import make_pool
    from docingest.db.repository import Repository

    pool = make_pool(url, max_size=pool_size)
    repo = Repository()
    app = FastAPI()

    @app.post("/bare/same", status_code=201)
    def same(body: dict[str, Any] = Body(...)) -> dict[str, str]:
        document_id = uuid.uuid4()
        with pool.connection() as conn:
            repo.create_upload(
                conn,
                user_id=body["user"],
                document_id=document_id,
                job_id=uuid.uuid4(),
                filename=body["filename"],
                mime=body["mime"],
                bytes_len=body["bytes_len"],
                file_sha256=body["sha256"],
                raw_path=f"bare/raw/{document_id}.txt",
                max_active=100,
                wait_seconds=3900,
            )
        return {"document_id": str(document_id)}

    @app.post("/bare/insert", status_code=201)
    def insert(body: dict[str, Any] = Body(...)) -> dict[str, str]:
        document_id = uuid.uuid4()
        with pool.connection() as conn:
            conn.execute(
                "INSERT INTO upload_pipeline.documents (document_id, user_id, filename, mime, bytes_len,"
                " file_sha256, raw_path) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    document_id,
                    body["user"],
                    body["filename"],
                    body["mime"],
                    body["bytes_len"],
                    body["sha256"],
                    f"bare/raw/{document_id}.txt",
                ),
            )
        return {"document_id": str(document_id)}

    return app


def serve_bare(port: int, url: str, pool_size: int) -> None:
    import uvicorn

    uvicorn.run(bare_app(url, pool_size), host="127.0.0.1", port=port, log_level="warning")


# --- orchestration --------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


def _body(i: int) -> dict[str, Any]:
    data = secrets.token_bytes(32)
    return {
        "filename": "bench.txt",
        "mime": "text/plain",
        "bytes_len": 1000,
        "sha256": hashlib.sha256(data).hexdigest(),
        "user": f"bench-{i % USERS}",
    }


async def _load(url: str, n: int, concurrency: int, headers: list[dict[str, str]]) -> dict[str, float]:
    """Send ``n`` POSTs with ``concurrency`` in flight; latency figures in milliseconds."""
    import httpx

    latencies: list[float] = []
    errors = 0
    counter = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one_worker() -> None:
            nonlocal errors
            for i in counter:
                t0 = time.perf_counter()
                reply = await client.post(url, json=_body(i), headers=headers[i % len(headers)])
                latencies.append((time.perf_counter() - t0) * 1000)
                errors += reply.status_code not in (200, 201)

        started = time.perf_counter()
        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": n,
        "errors": errors,
        "rps": round(n / wall, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "DATABASE_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), args.serve_bare[1], args.pool_size)
        return {}

    from docingest.api.auth import mint_token
    from docingest.runtime import Runtime
    from docingest.settings import Settings

    data_dir = Path(tempfile.mkdtemp(prefix="docingest-bench-api-"))
    # removed at exit, after pgserver's own handler (registered later, run first) stops the server
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    rt = Runtime(Settings(data_dir=data_dir, embedding_provider="hashing"))
    db_url = rt.url  # starts the embedded PostgreSQL and migrates it
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_PIPELINE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    api_port, bare_port = _free_port(), _free_port()
    env.update(
        {
            "UPLOAD_PIPELINE_DATABASE_URL": db_url,
            "UPLOAD_PIPELINE_DATA_DIR": str(data_dir),
            "UPLOAD_PIPELINE_JWT_SECRET": SECRET,
            "UPLOAD_PIPELINE_EMBEDDING_PROVIDER": "hashing",
            "UPLOAD_PIPELINE_MAX_ACTIVE_JOBS_PER_USER": "100",
            "UPLOAD_PIPELINE_DB_POOL_MAX_SIZE": str(args.pool_size),
        }
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "docingest.cli.main", "serve", "--port", str(api_port)], env=env
        ),
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--pool-size",
                str(args.pool_size),
                "--serve-bare",
                str(bare_port),
                db_url,
            ],
            env=env,
        ),
    ]
    try:
        _wait(f"http://127.0.0.1:{api_port}/health", procs[0])
        _wait(f"http://127.0.0.1:{bare_port}/docs", procs[1])
        tokens = [
            {"authorization": f"Bearer {mint_token(SECRET, user_id=f'bench-{i}', ttl_seconds=3600)}"}
            for i in range(USERS)
        ]
        targets = {
            "upload": (f"http://127.0.0.1:{api_port}/api/v2/upload", tokens),
            "bare_same": (f"http://127.0.0.1:{bare_port}/bare/same", [{}]),
            "bare_insert": (f"http://127.0.0.1:{bare_port}/bare/insert", [{}]),
        }
        for url, headers in targets.values():  # warm-up: pools, code paths
            asyncio.run(_load(url, 200, args.concurrency, headers))
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.rounds):
            for name, (url, headers) in targets.items():
                figures = asyncio.run(_load(url, args.requests, args.concurrency, headers))
                if name not in best or figures["rps"] > best[name]["rps"]:
                    best[name] = figures
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
        rt.close()
    result = {
        "concurrency": args.concurrency,
        "requests": args.requests,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        **best,
        "ratio_same": round(best["upload"]["rps"] / best["bare_same"]["rps"], 3),
        "ratio_insert": round(best["upload"]["rps"] / best["bare_insert"]["rps"], 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{'route':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for name in ("upload", "bare_same", "bare_insert"):
            f = best[name]
            print(f"{name:<12} {f['rps']:>9} {f['p50_ms']:>8} {f['p99_ms']:>8} {int(f['errors']):>7}")
        print(
            f"upload / bare_same: {result['ratio_same']}x (target >= 0.7x); "
            f"upload / bare_insert: {result['ratio_insert']}x"
        )
    return result


if __name__ == "__main__":
    main()


def run(quick: bool = False) -> list[Any]:
    """The suite's rows: upload req/s against the bare routes, measured in alternating rounds."""
    from bench.common import Figure

    r = main(["--requests", "300" if quick else "2000", "--rounds", "1" if quick else "2", "--json"])
    return [
        Figure(
            "api",
            "POST /upload",
            r["upload"]["rps"],
            "req/s",
            f"p50 {r['upload']['p50_ms']} ms, p99 {r['upload']['p99_ms']} ms",
        ),
        Figure("api", "bare route, same inserts", r["bare_same"]["rps"], "req/s"),
        Figure("api", "upload / bare same inserts", r["ratio_same"], "x", ">= 0.7x"),
        Figure("api", "upload / bare single insert", r["ratio_insert"], "x"),
        Figure("api", "errors", r["upload"]["errors"] + r["bare_same"]["errors"], "", "0"),
    ]
