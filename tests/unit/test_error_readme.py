"""The README's ``## Error codes`` table is the one the code generates."""

from __future__ import annotations

import re
from pathlib import Path

from docingest import errors
from docingest.errors import (
    DocingestError,
    RequestError,
    SetupError,
    error_table,
    error_table_markdown,
    request_error_table,
    setup_error_table,
)

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


def test_every_setup_error_has_a_distinct_code_listed_in_the_readme() -> None:
    rows = setup_error_table()
    codes = (
        [r.code for _, r in rows]
        + [r.code for _, r in request_error_table()]
        + [r.code for r in error_table()]
    )
    assert len(codes) == len(set(codes)), "a setup code repeats a job or API code"
    assert {"database_not_migrated", "embedded_database_failed"} <= {r.code for _, r in rows}
    assert len(rows) == _count_subclasses(SetupError)
    assert all(issubclass(cls, RuntimeError) for cls in _subclasses(SetupError))


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def test_every_error_class_carries_its_code_retryable_and_http_status() -> None:
    classes = [DocingestError, *_subclasses(DocingestError)]
    assert len(classes) > 50
    for cls in classes:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", cls.error_code), cls
        assert isinstance(cls.retryable, bool), cls
        assert 400 <= cls.http_status < 600, cls
        assert cls.meaning and cls.user_action, cls
    assert errors.InternalInvariantError.error_code == "internal_invariant"
    assert not errors.InternalInvariantError.retryable and errors.InternalInvariantError.http_status == 500


def test_no_module_of_the_package_defines_an_exception_outside_the_tree() -> None:
    """Every exception class in ``src/docingest`` is a ``DocingestError``, except the
    control-flow signals named here (they are caught inside the package, never reported)."""
    import ast

    signals = {"LeaseLost", "WorkerStopping", "IngestInterrupted"}
    package = Path(errors.__file__).resolve().parent
    outside = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name not in signals and path.name != "errors.py":
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if bases & {"Exception", "RuntimeError", "ValueError", "BaseException"}:
                    outside.append(f"{path.relative_to(package)}: {node.name}")
    assert not outside, f"exception classes outside docingest.errors' tree: {outside}"
