"""Run every benchmark and print one table; save it as JSON under ``bench/results/``.

    python -m bench [--quick] [NAME...]
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

BENCHES = ["ingest"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {BENCHES})")
    parser.add_argument("--quick", action="store_true", help="small inputs (CI smoke run)")
    args = parser.parse_args()
    figures = []
    for name in args.names or BENCHES:
        module = importlib.import_module(f"bench.{name}")
        figures.extend(module.run(quick=args.quick))
    table = Table(title="docingest benchmarks" + (" (quick)" if args.quick else ""))
    for col in ("bench", "figure", "value", "unit", "target"):
        table.add_column(col)
    for f in figures:
        table.add_row(f.bench, f.name, str(f.value), f.unit, f.target)
    Console().print(table)
    out = Path(__file__).parent / "results" / time.strftime("%Y%m%d-%H%M%S.json")
    out.write_text(json.dumps({"quick": args.quick, "figures": [f.as_dict() for f in figures]}, indent=1))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
