"""``discover``: which files an ingest takes, and why a named path is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from docingest.services.ingest import discover


def test_directories_are_walked_and_special_entries_skipped(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("a")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("b")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.txt").write_text("c")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    assert discover([tmp_path]) == [tmp_path / "a.md", tmp_path / "sub" / "b.txt"]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: None, "no such file or directory"),
        (lambda p: os.mkfifo(p), "not a regular file (a FIFO)"),
        (lambda p: p.symlink_to(p.with_name("nowhere")), "broken symbolic link"),
        (lambda p: p.symlink_to(p), "symbolic link loop"),
    ],
)
def test_a_named_path_that_is_not_a_file_says_why(tmp_path: Path, make, expected: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "thing"
    make(path)
    with pytest.raises(FileNotFoundError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        discover([path])
