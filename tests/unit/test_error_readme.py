"""The README's ``## Error codes`` table is the one the code generates."""

from __future__ import annotations

import re
from pathlib import Path

from docingest.errors import RequestError, error_table, error_table_markdown, request_error_table

README = Path(__file__).resolve().parents[2] / "README.md"


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no '## {heading}' section"
    return match.group(1)


def test_readme_error_table_matches_code() -> None:
    section = _section(README.read_text(encoding="utf-8"), "Error codes")
    assert error_table_markdown() in section, (
        "README.md '## Error codes' is stale: regenerate it with `docingest errors`"
    )
    tables = [line for line in section.splitlines() if line.startswith("|")]
    assert tables == [line for line in error_table_markdown().splitlines() if line.startswith("|")], (
        "README.md '## Error codes' has table rows the code does not generate"
    )


def test_every_error_class_has_a_distinct_code_and_text() -> None:
    rows = error_table()
    codes = [r.code for r in rows]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", c) for c in codes)
    assert all(r.meaning and r.user_action for r in rows)
    assert {"parse_timeout", "parse_crashed", "parse_oom"} <= {r.code for r in rows if r.retryable}


def test_every_api_refusal_has_a_distinct_code_and_status() -> None:
    rows = request_error_table()
    codes = [r.code for _, r in rows] + [r.code for r in error_table()]
    assert len(codes) == len(set(codes)), "an API code repeats a job code or another API code"
    assert all(400 <= status < 600 for status, _ in rows)
    assert {"invalid_request", "not_found", "invalid_token"} <= {r.code for _, r in rows}
    assert len(rows) == 1 + _count_subclasses(RequestError)


def _count_subclasses(cls: type) -> int:
    return sum(1 + _count_subclasses(sub) for sub in cls.__subclasses__())
