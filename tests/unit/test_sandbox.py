"""Bounded parsing: a child that hangs, spins, crashes, exits or eats memory is stopped
and reported with its error code; the parent goes on parsing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from docingest.errors import DocingestError, PdfCorrupt
from docingest.parsing.sandbox import ParseLimits, SandboxedParser

EVIL = "tests.fixtures.evil_parsers:parse_file"


@pytest.fixture(scope="module")
def sandbox() -> SandboxedParser:
    return SandboxedParser(ParseLimits(timeout_seconds=1.5, timeout_seconds_per_mb=0, memory_mb=256),
                           target=EVIL)


@pytest.mark.parametrize(
    ("marker", "code", "max_seconds"),
    [
        ("EVIL:HANG", "parse_timeout", 4),
        ("EVIL:SPIN", "parse_timeout", 4),
        ("EVIL:SEGV", "parse_crashed", 3),
        ("EVIL:EXIT", "parse_crashed", 3),
        ("EVIL:OOM", "parse_oom", 3),
        ("EVIL:RSS", "parse_oom", 4),
    ],
)
def test_misbehaving_parser_is_stopped(sandbox: SandboxedParser, tmp_path: Path, marker: str,
                                       code: str, max_seconds: float) -> None:
    path = tmp_path / "evil.txt"
    path.write_text(f"{marker} and some text")
    started = time.monotonic()
    with pytest.raises(DocingestError) as info:
        sandbox(path, "text")
    assert info.value.error_code == code
    assert info.value.retryable
    assert time.monotonic() - started < max_seconds
    # the parent goes on: the next parse works
    good = tmp_path / "good.txt"
    good.write_text("plain text after a bad one")
    assert sandbox(good, "text").markdown.startswith("plain text")


def test_parser_errors_cross_unchanged(sandbox: SandboxedParser, tmp_path: Path) -> None:
    path = tmp_path / "cut.pdf"
    path.write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog")
    with pytest.raises(PdfCorrupt):
        sandbox(path, "pdf")


def test_timeout_scales_with_size() -> None:
    limits = ParseLimits(timeout_seconds=10, timeout_seconds_per_mb=2, timeout_max_seconds=30)
    assert limits.timeout_for(0) == 10
    assert limits.timeout_for(5 * 1024 * 1024) == 20
    assert limits.timeout_for(500 * 1024 * 1024) == 30


def test_thousands_of_pages_within_a_small_memory_limit(tmp_path: Path) -> None:
    from tests.fixtures.make_bad_inputs import generate

    path = generate(tmp_path, {"many-pages.pdf"})["many-pages.pdf"]
    parser = SandboxedParser(ParseLimits(timeout_seconds=60, memory_mb=200))
    doc = parser(path, "pdf")
    assert len(doc.pages) == 3000 and not any(p.empty for p in doc.pages)
