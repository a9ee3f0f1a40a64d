"""Validation is idempotent across a storage failure between its two writes.

It used to rewrite the text and then the page map: a failure in between left clean
text with the old offsets, and the retry (finding nothing left to clean) kept them,
shifting every chunk's page. The chaos test found it (hyperref.pdf).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from docingest.domain import Document
from docingest.errors import StorageUnavailable
from docingest.providers.storage.local import LocalStorage
from docingest.stages.artifacts import ParsedArtifact
from docingest.stages.parse import ValidateParse

PAGES = ["first\x00 page\ufffe text", "second \x00page", "third page, clean"]


def _artifact() -> ParsedArtifact:
    text, pages, offset = "", [], 0
    for i, page in enumerate(PAGES, start=1):
        if text:
            text += "\n\n"
            offset += 2
        text += page
        pages.append([i, offset, offset + len(page), False])
        offset += len(page)
    return ParsedArtifact(text=text, kind="pdf", pages=pages, metadata={"Producer": "a\x00b"})


class FailTextOnce:
    """Storage that fails the first write of a parsed ``.md`` object."""

    def __init__(self, inner: LocalStorage) -> None:
        self.inner = inner
        self.failed = False

    def put_stream(self, key: str, stream: Any) -> Any:
        if key.endswith(".md") and not self.failed:
            self.failed = True
            raise StorageUnavailable("injected")
        return self.inner.put_stream(key, stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _run(tmp_path: Path, *, fail: bool) -> tuple[ParsedArtifact, Any]:
    storage = LocalStorage(tmp_path)
    doc = Document(uuid.uuid4(), "u", "x.pdf", "application/pdf", 1, "0" * 64, "u/raw/x.pdf")
    _artifact().save(storage, doc)
    ctx = SimpleNamespace(document=doc)
    if fail:
        with pytest.raises(StorageUnavailable):
            ValidateParse(FailTextOnce(storage)).run(ctx)  # type: ignore[arg-type]
    result = ValidateParse(storage).run(ctx)  # type: ignore[arg-type]
    assert ValidateParse(storage).run(ctx).events == result.events  # and once more: unchanged
    return ParsedArtifact.load(storage, doc), result


def test_retry_after_a_failed_write_gives_the_clean_result(tmp_path: Path) -> None:
    clean, clean_result = _run(tmp_path / "a", fail=False)
    retried, retried_result = _run(tmp_path / "b", fail=True)
    assert retried.text == clean.text and retried.pages == clean.pages
    assert retried.metadata == clean.metadata == {"Producer": "ab"}
    assert (
        retried_result.events
        == clean_result.events
        == [("text_cleaned", {"nul_removed": 3, "lone_surrogates_removed": 0, "metadata_chars_removed": 1})]
    )
    for parsed_page, page in zip(clean.pages, PAGES, strict=True):
        assert clean.text[parsed_page.start : parsed_page.end] == page.replace("\x00", "").replace(
            "\ufffe", ""
        )
