"""Peak RSS of a worker parsing ``source2e.pdf`` (target under 400 MB) and of the API
receiving a 1 GiB upload (target under 150 MB).

Worker: a child process imports the worker's stack (runtime, worker loop, stage
handlers, parsers; the embedding model is loaded only by the embed stage, so not
here), then runs the ``parse_queued`` handler on the 1,221-page PDF in local storage
and reports its own peak resident set size (``VmHWM`` of ``/proc/self/status``; not
``ru_maxrss``, which Linux carries over ``exec`` from the forking parent, so it
would report the benchmark runner's own size). A second child does the imports
only, for the baseline.

API: the real server (``docingest serve``: uvicorn, local storage, the embedded
PostgreSQL started here) runs as a subprocess; this process asks ``POST
/api/v2/upload`` for a signed URL and PUTs a 1 GiB body to it (``--quick``: 64 MiB),
generated on the fly (one random 1 MiB block repeated: nothing held whole on either
side), while a thread samples the server's RSS every 20 ms (psutil). Reported: the
server's RSS before the upload, the highest sample during it, and its ``VmHWM``
(peak since start) after it.

    python -m bench rss [--quick]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bench.common import REPO, SOURCE2E, Figure, StageCtx, scratch_dir, stored_document


def _child(parse: bool) -> None:
    import docingest.runtime
    import docingest.worker.loop  # noqa: F401
    from docingest.providers.parsing import parse_file
    from docingest.providers.storage.local import LocalStorage
    from docingest.stages.parse import ParseDocument

    pages = 0
    if parse:
        storage = LocalStorage(scratch_dir("docingest-bench-rss-"))
        document = stored_document(storage, SOURCE2E)
        result = ParseDocument(storage, parse_file).run(StageCtx(document, {"detected_kind": "pdf"}))
        pages = result.progress.pages_total or 0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status = Path("/proc/self/status")
    if status.exists():
        peak_kb = next(
            int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM:")
        )
    print(json.dumps({"peak_mb": peak_kb / 1024, "pages": pages}))


def _measure(parse: bool) -> dict[str, float]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH")])
        ),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bench.rss", "--child", "parse" if parse else "imports"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


_MIB = 1024 * 1024
SECRET = "bench-rss-secret-" + "r" * 40


def _vm_kb(pid: int, field: str) -> int:
    """``field`` (``VmHWM``, ``VmRSS``) of ``/proc/PID/status``, kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _body(block: bytes, blocks: int) -> Iterator[bytes]:
    for _ in range(blocks):
        yield block


def api_upload(size_mib: int) -> dict[str, float]:
    """PUT ``size_mib`` MiB to a signed upload URL of a real ``docingest serve``; RSS figures in MB.

    Returns ``{"before_mb", "sampled_peak_mb", "hwm_mb", "seconds", "mb_per_s"}``.

    Raises:
        RuntimeError: the server did not start or the upload was refused.
    """
    import hashlib
    import threading
    import time

    import httpx
    import psutil

    from bench.api import _free_port, _wait
    from docingest.api.auth import mint_token
    from docingest.runtime import Runtime
    from docingest.settings import Settings

    data_dir = scratch_dir("docingest-bench-rss-api-")
    rt = Runtime(Settings(data_dir=data_dir, environment="test"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_PIPELINE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), str(REPO), env.get("PYTHONPATH")]))
    env.update(
        {
            "UPLOAD_PIPELINE_DATABASE_URL": rt.url,
            "UPLOAD_PIPELINE_DATA_DIR": str(data_dir),
            "UPLOAD_PIPELINE_JWT_SECRET": SECRET,
            "UPLOAD_PIPELINE_ENVIRONMENT": "test",
            "UPLOAD_PIPELINE_MAX_FILE_BYTES": str((size_mib + 1) * _MIB),
        }
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "docingest.cli.main", "serve", "--port", str(port)], env=env
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(f"{base}/health", server)
        block = os.urandom(_MIB)
        digest = hashlib.sha256()
        for chunk in _body(block, size_mib):
            digest.update(chunk)
        auth = {"authorization": f"Bearer {mint_token(SECRET, user_id='bench', ttl_seconds=3600)}"}
        ticket = httpx.post(
            f"{base}/api/v2/upload",
            headers=auth,
            timeout=30,
            json={
                "filename": "big.txt",
                "bytes_len": size_mib * _MIB,
                "mime": "text/plain",
                "sha256": digest.hexdigest(),
            },
        )
        if ticket.status_code != 201:
            raise RuntimeError(f"POST /upload answered {ticket.status_code}: {ticket.text}")
        proc = psutil.Process(server.pid)
        before = proc.memory_info().rss
        samples = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                samples.append(proc.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        reply = httpx.put(
            ticket.json()["signed_url"],
            content=_body(block, size_mib),
            timeout=600,
            headers={**ticket.json()["upload_headers"], "content-length": str(size_mib * _MIB)},
        )
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        if reply.status_code != 200:
            raise RuntimeError(f"the upload PUT answered {reply.status_code}: {reply.text}")
        hwm_kb = _vm_kb(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(20)
        rt.close()
    return {
        "before_mb": before / _MIB,
        "sampled_peak_mb": max(samples) / _MIB,
        "hwm_mb": hwm_kb / 1024,
        "seconds": seconds,
        "mb_per_s": size_mib / seconds,
    }


def run(quick: bool = False) -> list[Figure]:
    base = _measure(parse=False)
    parsed = _measure(parse=True)
    size_mib = 64 if quick else 1024
    api = api_upload(size_mib)
    label = f"{size_mib} MiB" if quick else "1 GiB"
    return [
        Figure("rss", "worker imports only, peak RSS", round(base["peak_mb"], 1), "MB"),
        Figure("rss", "worker parsing source2e.pdf, peak RSS", round(parsed["peak_mb"], 1), "MB", "< 400"),
        Figure("rss", "of which parsing", round(parsed["peak_mb"] - base["peak_mb"], 1), "MB"),
        Figure("rss", "API before the upload, RSS", round(api["before_mb"], 1), "MB"),
        Figure(
            "rss", f"API receiving a {label} upload, peak RSS (VmHWM)", round(api["hwm_mb"], 1), "MB", "< 150"
        ),
        Figure("rss", "API during the upload, highest 20 ms sample", round(api["sampled_peak_mb"], 1), "MB"),
        Figure("rss", f"API upload of {label}, throughput", round(api["mb_per_s"], 1), "MiB/s"),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2] == "parse")
    else:
        for f in run("--quick" in sys.argv):
            print(f"{f.name:40} {f.value:>10} {f.unit:4} {f.target}")
