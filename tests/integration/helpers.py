"""Helpers shared by the integration tests: register small documents, read rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docingest.runtime import Runtime


def write_docs(root: Path, n: int, *, words: int = 120, prefix: str = "doc") -> list[Path]:
    """``n`` distinct small Markdown files under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        body = " ".join(f"{prefix}{i}-word{j}" for j in range(words))
        p = root / f"{prefix}-{i:04d}.md"
        p.write_text(f"# {prefix} {i}\n\n{body}\n", encoding="utf-8")
        paths.append(p)
    return paths


def register(rt: Runtime, paths: list[Path], user_id: str = "u1") -> list[Any]:
    return [rt.documents.register_file(p, user_id=user_id) for p in paths]


def rows(rt: Runtime, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with rt.pool().connection() as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[no-any-return]
