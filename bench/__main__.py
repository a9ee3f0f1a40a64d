"""Run every benchmark and print one table; save it as JSON under ``bench/results/``.

    python -m bench [--quick] [--results-dir DIR] [NAME...]

Each module in :data:`BENCHES` (run by default) and :data:`ON_REQUEST` (run
when named) has ``run(quick: bool) -> list[Figure]``. A benchmark that raises
is reported as a row ``error`` and makes the exit status 1, after the others ran.
``--quick`` (CI) runs every benchmark on small inputs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.common import Figure

BENCHES = [
    "ingest",
    "sync",
    "embedders",
    "parse",
    "formats",
    "transitions",
    "scaling",
    "rss",
    "search",
    "api",
    "embed_api",
]
#: Run only when named (``python -m bench llamaindex``): a reference, not a figure of docingest
#: alone, taking about a minute with ``--quick`` and a quarter of an hour on the whole corpus, so
#: neither CI's quick run nor a bare ``python -m bench`` runs it. ``backlog`` (100,000 documents
#: drained) and ``bigpdf`` (a 5,000-page PDF) take minutes to half an hour in full.
ON_REQUEST = ["llamaindex", "backlog", "bigpdf"]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all of {BENCHES}; on request: {ON_REQUEST})"
    )
    parser.add_argument("--quick", action="store_true", help="small inputs (CI smoke run)")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path(__file__).parent / "results",
        help="where the run's JSON goes",
    )
    args = parser.parse_args()
    figures: list[Figure] = []
    failed = False
    for name in args.names or BENCHES:
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            figures.extend(module.run(quick=args.quick))
        except Exception as exc:  # noqa: BLE001 - report it, run the other benchmarks
            traceback.print_exc()
            figures.append(Figure(name, "error", 0, "", f"{type(exc).__name__}: {exc}"[:200]))
            failed = True
        figures.append(Figure(name, "benchmark wall time", round(time.perf_counter() - started, 1), "s"))
    table = Table(title="docingest benchmarks" + (" (quick)" if args.quick else ""))
    for col in ("bench", "figure", "value", "unit", "target"):
        table.add_column(col)
    for f in figures:
        table.add_row(f.bench, f.name, str(f.value), f.unit, f.target)
    Console(width=140).print(table)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / time.strftime("%Y%m%d-%H%M%S.json")
    machine = {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_avg_1m": os.getloadavg()[0],
    }
    out.write_text(
        json.dumps(
            {"quick": args.quick, "machine": machine, "figures": [f.as_dict() for f in figures]}, indent=1
        )
    )
    print(f"saved {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
