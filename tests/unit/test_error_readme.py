"""The README's ``## Error codes`` table is the one the code generates."""

from __future__ import annotations

import re
from pathlib import Path

from docingest.errors import error_table, error_table_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no '## {heading}' section"
    return match.group(1)


def test_readme_error_table_matches_code() -> None:
    section = _section(README.read_text(encoding="utf-8"), "Error codes")
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    assert table == error_table_markdown(), (
        "README.md '## Error codes' is stale: regenerate it with `docingest errors`"
    )


def test_every_error_class_has_a_distinct_code_and_text() -> None:
    rows = error_table()
    codes = [r.code for r in rows]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", c) for c in codes)
    assert all(r.meaning and r.user_action for r in rows)
    assert {"parse_timeout", "parse_crashed", "parse_oom"} <= {r.code for r in rows if r.retryable}
