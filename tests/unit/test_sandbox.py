"""Bounded parsing: a child that hangs, spins, crashes, exits or eats memory is stopped
and reported with its error code; the parent goes on parsing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from docingest.errors import DocingestError, PdfCorrupt
from docingest.providers.parsing.sandbox import ParseLimits, SandboxedParser

EVIL = "tests.fixtures.evil_parsers:parse_file"


@pytest.fixture(scope="module")
def sandbox() -> SandboxedParser:
    return SandboxedParser(
        ParseLimits(timeout_seconds=1.5, timeout_seconds_per_mb=0, memory_mb=256), target=EVIL
    )


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
def test_misbehaving_parser_is_stopped(
    sandbox: SandboxedParser, tmp_path: Path, marker: str, code: str, max_seconds: float
) -> None:
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


def test_the_child_reports_pages_as_it_parses(tmp_path: Path) -> None:
    from tests.fixtures.make_bad_inputs import generate

    path = generate(tmp_path, {"many-pages.pdf"})["many-pages.pdf"]
    parser = SandboxedParser(ParseLimits(timeout_seconds=60), progress_seconds=0.01)
    seen: list[tuple[int, int]] = []
    doc = parser(path, "pdf", on_progress=lambda done, total: seen.append((done, total)))
    assert len(doc.pages) == 3000
    assert seen[0] == (1, 3000)  # the first page at once: the total is known early
    assert all(total == 3000 and 0 < done < 3000 for done, total in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(seen) < 3000, "reports are throttled, not one per page"
    seen.clear()
    parser(path, "pdf")  # no callback: no reports asked for
    assert seen == []
    parser.close()


def test_a_progress_callback_that_raises_stops_the_parse(tmp_path: Path) -> None:
    from tests.fixtures.make_bad_inputs import generate

    path = generate(tmp_path, {"many-pages.pdf"})["many-pages.pdf"]
    parser = SandboxedParser(ParseLimits(timeout_seconds=60), progress_seconds=0.01)

    def lease_lost(done: int, total: int) -> None:
        raise RuntimeError("lease lost")

    with pytest.raises(RuntimeError, match="lease lost"):
        parser(path, "pdf", on_progress=lease_lost)
    assert parser._idle == [], "the interrupted child is not reused"
    good = tmp_path / "good.txt"
    good.write_text("the next parse works")
    assert parser(good, "text").markdown.startswith("the next parse")
    parser.close()
