"""The documents service's reads behind the dashboard: a filtered page of documents with its
total, a document's chunks and timeline, the user-wide event stream, the Health page's summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from docingest.domain import State
from docingest.runtime import Runtime
from tests.integration.helpers import register

pytestmark = pytest.mark.integration


def _write(root: Path, name: str, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_text(f"# {name}\n\n{text}\n", encoding="utf-8")
    return path


def _fail(rt: Runtime, document_id: UUID, code: str = "pdf_corrupt") -> None:
    with rt.pool().connection() as conn:
        conn.execute(
            "UPDATE upload_pipeline.upload_jobs SET state = 'failed', error_code = %s,"
            " error_message = 'broken on purpose', finished_at = now() WHERE document_id = %s",
            (code, document_id),
        )


def _names(page: list[dict[str, Any]]) -> list[str]:
    return [r["filename"] for r in page]


def test_a_page_of_documents_is_filtered_by_state_and_name_and_counts_every_match(
    runtime: Runtime, tmp_path: Path
) -> None:
    names = ["alpha.md", "Beta_report.md", "gamma%.md", "betaXreport.md", "delta.md"]
    regs = register(runtime, [_write(tmp_path, n, f"text of {n}") for n in names], user_id="lister")
    register(runtime, [_write(tmp_path / "other", "beta_other.md", "someone else's")], user_id="other")
    by_name = {r.document.filename: r.document.document_id for r in regs}
    _fail(runtime, by_name["delta.md"])
    docs = runtime.documents

    page, total = docs.list_documents("lister", limit=2, offset=0)
    assert total == 5 and _names(page) == ["delta.md", "betaXreport.md"]  # newest first
    page, total = docs.list_documents("lister", limit=2, offset=4)
    assert total == 5 and _names(page) == ["alpha.md"]
    page, total = docs.list_documents("lister", limit=2, offset=10)
    assert total == 5 and page == []

    page, total = docs.list_documents("lister", limit=50, offset=0, states=[State.FAILED])
    assert (total, _names(page)) == (1, ["delta.md"])
    page, total = docs.list_documents("lister", limit=50, offset=0, states=[State.FAILED, State.QUEUED])
    assert total == 5
    page, total = docs.list_documents("lister", limit=50, offset=0, states=[State.DONE])
    assert (total, page) == (0, [])

    # case-insensitive substring; _ and % are literal characters, not wildcards
    page, total = docs.list_documents("lister", limit=50, offset=0, name_contains="BETA_")
    assert (total, _names(page)) == (1, ["Beta_report.md"])
    page, total = docs.list_documents("lister", limit=50, offset=0, name_contains="a%")
    assert (total, _names(page)) == (1, ["gamma%.md"])
    page, total = docs.list_documents("lister", limit=50, offset=0, name_contains="report")
    assert total == 2 and set(_names(page)) == {"Beta_report.md", "betaXreport.md"}
    page, total = docs.list_documents(
        "lister", limit=50, offset=0, name_contains="report", states=[State.FAILED]
    )
    assert (total, page) == (0, [])
    # the source matches too
    [named] = [
        runtime.documents.register_file(
            _write(tmp_path / "src", "plain.md", "named by source"),
            user_id="lister",
            source="archive/Zeta-notes",
        )
    ]
    page, total = docs.list_documents("lister", limit=50, offset=0, name_contains="zeta")
    assert (total, [r["document_id"] for r in page]) == (1, [named.document.document_id])
