"""Bad inputs of the new formats, through one real ``docingest ingest DIR --json`` (sniffing, the
bounded parse child, the worker): each ends in its error code or completes with its warning,
none is retried, and a good document queued after them all still completes (the worker lives).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from docingest.runtime import Runtime
from tests.conftest import make_settings, new_database, settings_env
from tests.fixtures import pipeline
from tests.fixtures.formats.books_mail import write_epub
from tests.fixtures.formats.office import sample_pptx
from tests.fixtures.formats.sheets import sample_xlsx

pytestmark = pytest.mark.integration
MAX_UNPACKED_MB = 64


def _truncated_pptx(d: Path) -> bytes:
    data = sample_pptx(d).path.read_bytes()
    return data[: len(data) // 2]


def _broken_slide_pptx(d: Path) -> bytes:
    path = sample_pptx(d).path
    with zipfile.ZipFile(path) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, content in members:
            broken = info.filename == "ppt/slides/slide3.xml"
            zf.writestr(info, b"<p:sld xmlns:p='urn:x'><p:cSld><unclosed" if broken else content)
    return path.read_bytes()


def _encrypted_xlsx(d: Path) -> bytes:
    from msoffcrypto.format.ooxml import OOXMLFile

    plain, locked = sample_xlsx(d).path, d / "locked.xlsx"
    with plain.open("rb") as src, locked.open("wb") as dst:
        OOXMLFile(src).encrypt("tomato-2024", dst)
    return locked.read_bytes()


def _zip_bomb_xlsx(d: Path) -> bytes:
    bomb = d / "bomb.xlsx"
    shutil.copy(sample_xlsx(d).path, bomb)
    with zipfile.ZipFile(bomb, "a", zipfile.ZIP_DEFLATED) as zf, zf.open("xl/media/pad.bin", "w") as member:
        for _ in range(MAX_UNPACKED_MB // 16 + 1):  # zeros: over the limit unpacked, ~70 KB packed
            member.write(bytes(16 * 1024 * 1024))
    return bomb.read_bytes()


def _missing_chapter_epub(d: Path) -> bytes:
    return write_epub(d / "book.epub", drop=["rigging.xhtml"]).read_bytes()


def _huge_png(d: Path) -> bytes:
    """A PNG header of 30,000 x 30,000 greyscale pixels: decoding it would take 900 MB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(30_001)))
        + chunk(b"IEND", b"")
    )


MAX_DOCUMENT_CHARS = 200_000


def _big_json(d: Path) -> bytes:
    """JSON whose path: value lines pass MAX_DOCUMENT_CHARS (each record about 60 characters)."""
    records = [{"order": i, "customer": {"name": f"Customer {i}"}} for i in range(6000)]
    return json.dumps({"orders": records}).encode()


#: file name -> (builder, expected state, expected error_code, a warning's words when done)
CASES: dict[str, tuple[Callable[[Path], bytes], str, str | None, str | None]] = {
    "truncated.pptx": (_truncated_pptx, "failed", "document_corrupt", None),
    "broken-slide.pptx": (_broken_slide_pptx, "done", None, "could not be read"),
    "password.xlsx": (_encrypted_xlsx, "failed", "document_encrypted", None),
    "zip-bomb.xlsx": (_zip_bomb_xlsx, "failed", "archive_too_large", None),
    "missing-chapter.epub": (_missing_chapter_epub, "done", None, "missing"),
    "huge.png": (_huge_png, "failed", "image_too_large", None),
    "big.json": (_big_json, "failed", "text_too_large", None),
}


@pytest.fixture(scope="module")
def ingested(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("format-bad")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, (build, *_) in CASES.items():
        scratch = root / "scratch" / name
        scratch.mkdir(parents=True)
        (corpus / name).write_bytes(build(scratch))
    # a good document named to sort last: ingest queues the smallest first, so it goes after them
    (corpus / "zz-after.md").write_text("# After\n\nThe worker still parses this one.\n" * 3000)
    settings = make_settings(
        new_database(pg_url, "formatbad"),
        root / "data",
        max_unpacked_mb=MAX_UNPACKED_MB,
        max_document_chars=MAX_DOCUMENT_CHARS,
        parse_memory_mb=512,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "docingest.cli.main", "ingest", str(corpus), "--json", "--user", "bad"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # 1: some documents failed, as they must
    rt = Runtime(settings, migrate=False)
    jobs = {j["filename"]: j for j in pipeline.latest_jobs(rt).values()}
    yield {"rt": rt, "jobs": jobs, "summary": json.loads(proc.stdout)}
    rt.close()


@pytest.mark.parametrize("name", list(CASES))
def test_each_bad_input_ends_in_its_code_or_its_warning(ingested: dict[str, Any], name: str) -> None:
    _, state, code, warning = CASES[name]
    job = ingested["jobs"][name]
    assert (job["state"], job["error_code"]) == (state, code), job["error_message"]
    events = pipeline.events(ingested["rt"], job["job_id"])
    assert not any(e["type"] == "retry_scheduled" for e in events), "a bad input was retried"
    if code is not None:
        message = job["error_message"]
        assert message and "/tmp" not in message and "Traceback" not in message
        assert pipeline.chunks(ingested["rt"], job["document_id"]) == []
    if warning is not None:
        warnings = [e["payload"]["message"] for e in events if e["type"] == "warning"]
        assert any(warning in w for w in warnings), warnings


def test_the_worker_lives_on_after_them(ingested: dict[str, Any]) -> None:
    after = ingested["jobs"]["zz-after.md"]
    assert after["state"] == "done"
    assert ingested["summary"]["documents"] == len(CASES) + 1
