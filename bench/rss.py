"""Peak RSS of a worker process parsing ``source2e.pdf`` (target under 400 MB).

A child process imports the worker's stack (runtime, worker loop, stage handlers,
parsers; the embedding model is loaded only by the embed stage, so not here),
then runs the ``parse_queued`` handler on the 1,221-page PDF in local storage and
reports its own peak resident set size (``VmHWM`` of ``/proc/self/status``; not
``ru_maxrss``, which Linux carries over ``exec`` from the forking parent, so it
would report the benchmark runner's own size).
A second child does the imports only, for the baseline. The API's peak RSS while
receiving a 1 GB upload belongs to the API's benchmarks.

    python -m bench rss [--quick]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import REPO, SOURCE2E, Figure, StageCtx, stored_document


def _child(parse: bool) -> None:
    import docingest.runtime
    import docingest.worker.loop  # noqa: F401
    from docingest.parsing import parse_file
    from docingest.stages.parse import ParseDocument
    from docingest.storage.local import LocalStorage

    pages = 0
    if parse:
        storage = LocalStorage(Path(tempfile.mkdtemp(prefix="docingest-bench-rss-")))
        document = stored_document(storage, SOURCE2E)
        result = ParseDocument(storage, parse_file).run(StageCtx(document, {"detected_kind": "pdf"}))
        pages = result.progress["pages_total"]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status = Path("/proc/self/status")
    if status.exists():
        peak_kb = next(int(line.split()[1]) for line in status.read_text().splitlines()
                       if line.startswith("VmHWM:"))
    print(json.dumps({"peak_mb": peak_kb / 1024, "pages": pages}))


def _measure(parse: bool) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), str(REPO),
                                                                   os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "bench.rss", "--child", "parse" if parse else "imports"],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(quick: bool = False) -> list[Figure]:
    base = _measure(parse=False)
    parsed = _measure(parse=True)
    return [
        Figure("rss", "worker imports only, peak RSS", round(base["peak_mb"], 1), "MB"),
        Figure("rss", "worker parsing source2e.pdf, peak RSS", round(parsed["peak_mb"], 1), "MB", "< 400"),
        Figure("rss", "of which parsing", round(parsed["peak_mb"] - base["peak_mb"], 1), "MB"),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2] == "parse")
    else:
        for f in run("--quick" in sys.argv):
            print(f"{f.name:40} {f.value:>10} {f.unit:4} {f.target}")
