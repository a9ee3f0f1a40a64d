"""Shared benchmark plumbing: a throwaway embedded database and result rows."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CORPUS = (REPO.parent / "shared" / "corpus").resolve()


@dataclass
class Figure:
    """One row of the benchmark table."""

    bench: str
    name: str
    value: float
    unit: str = ""
    target: str = ""

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def scratch_settings(**overrides: Any) -> Any:
    """Settings on a fresh embedded database in a temporary data directory."""
    from docingest.settings import Settings

    data = Path(tempfile.mkdtemp(prefix="docingest-bench-"))
    return Settings(data_dir=data, environment="test", **overrides)
