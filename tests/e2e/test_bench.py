"""``python -m bench --quick`` runs every benchmark on small inputs and exits 0 (CI runs it).

Figures are not asserted (the machine is shared); only that every benchmark ran,
produced its rows, and that the run was saved as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench.__main__ import BENCHES

from tests.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.shared_corpus]  # the benchmarks read the corpus


def _bench_quick(results_dir: Path, *names: str) -> None:
    """``python -m bench --quick NAMES...`` from the repository, without the caller's
    UPLOAD_PIPELINE_* settings; fails the test unless it exits 0."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), str(REPO), env.get("PYTHONPATH")]))
    env = {k: v for k, v in env.items() if not k.startswith("UPLOAD_PIPELINE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results-dir", str(results_dir), *names],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


def test_bench_quick_runs_every_benchmark(tmp_path: Path) -> None:
    _bench_quick(tmp_path)
    saved = list(tmp_path.glob("*.json"))
    assert len(saved) == 1
    run = json.loads(saved[0].read_text())
    assert run["quick"] is True
    benches = {f["bench"] for f in run["figures"]}
    assert benches == set(BENCHES)
    assert not [f for f in run["figures"] if f["name"] == "error"]
    walls = {f["bench"]: f["value"] for f in run["figures"] if f["name"] == "benchmark wall time"}
    print("\nquick wall times (s):", walls, "total", round(sum(walls.values()), 1))


def test_bench_quick_runs_the_backlog_and_large_pdf_benchmarks_on_request(tmp_path: Path) -> None:
    _bench_quick(tmp_path, "backlog", "bigpdf")
    run = json.loads(next(tmp_path.glob("*.json")).read_text())
    figures = {(f["bench"], f["name"]): f["value"] for f in run["figures"]}
    assert {b for b, _ in figures} == {"backlog", "bigpdf"}
    assert not [name for _, name in figures if name == "error"]
    # no job lost or done twice (the benchmark raises otherwise; these are its rows)
    assert figures["backlog", "jobs done"] == figures["backlog", "documents queued (Markdown notes, ~1.5 kB)"]
    assert figures["backlog", "(job, stage) pairs not completed exactly once"] == 0
    chunks = [v for (b, name), v in figures.items() if b == "bigpdf" and name.endswith(": chunks")]
    assert len(chunks) == 2 and min(chunks) > 0
