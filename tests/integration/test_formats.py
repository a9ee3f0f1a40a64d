"""Every supported format, end to end: a document written by the format's own library, ingested
through the real pipeline (sniffing, the bounded parse child, OCR, chunking, the local
embedder, PostgreSQL), and each of its known sentences found by search in its own document,
on the right page, slide or sheet, under the right heading.

The documents come from ``tests/fixtures/formats/*.py`` (every ``sample_*`` function there).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docingest.providers.parsing import detect
from docingest.runtime import Runtime
from docingest.services.ingest import ingest
from tests.conftest import make_settings
from tests.fixtures import pipeline
from tests.fixtures.formats import FormatSample, SampleFactory
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration

SAMPLE_MODULES = ("office", "sheets", "ocr", "books_mail")
USER = "formats"


def factories() -> list[tuple[str, SampleFactory]]:
    """``(name, sample_*)`` of every sample module, in module order."""
    found = []
    for name in SAMPLE_MODULES:
        module = importlib.import_module(f"tests.fixtures.formats.{name}")
        found += [
            (fn_name.removeprefix("sample_"), fn)
            for fn_name, fn in inspect.getmembers(module, inspect.isfunction)
            if fn_name.startswith("sample_") and fn.__module__ == module.__name__
        ]
    return found


FACTORIES = factories()


def _words(text: str) -> str:
    return " ".join(text.replace("|", " ").split()).lower()


@pytest.fixture(scope="module")
def ingested(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, models_dir: Path
) -> Iterator[dict[str, Any]]:
    """Every sample written into one folder and ingested once, with the local embedder."""
    from tests.conftest import new_database

    root = tmp_path_factory.mktemp("formats")
    samples: dict[str, FormatSample] = {}
    for name, factory in FACTORIES:
        directory = root / "docs" / name
        directory.mkdir(parents=True)
        samples[name] = factory(directory)
    settings = make_settings(
        new_database(pg_url, "formats"),
        root / "data",
        embedding_provider="local",
        embedding_backend="torch",
        models_dir=models_dir,
    )
    rt = Runtime(settings, migrate=False)
    summary = ingest(rt, [root / "docs"], user_id=USER, concurrency=2, poll_seconds=0.2)
    by_source = {
        r["source"]: r["document_id"]
        for r in rows(rt, "SELECT source, document_id FROM upload_pipeline.documents")
    }
    latest = pipeline.latest_jobs(rt)
    jobs = {name: latest[by_source[f"{name}/{s.path.name}"]] for name, s in samples.items()}
    yield {"rt": rt, "samples": samples, "jobs": jobs, "summary": summary}
    rt.close()


def test_every_format_completes(ingested: dict[str, Any]) -> None:
    failed = {
        name: (job["error_code"], job["error_message"])
        for name, job in ingested["jobs"].items()
        if job["state"] != "done"
    }
    assert failed == {}
    assert set(ingested["jobs"]) == set(ingested["samples"])


@pytest.mark.parametrize(("name", "factory"), FACTORIES, ids=[n for n, _ in FACTORIES])
def test_each_sentence_is_found_on_its_page_under_its_heading(
    ingested: dict[str, Any], name: str, factory: SampleFactory
) -> None:
    rt: Runtime = ingested["rt"]
    sample: FormatSample = ingested["samples"][name]
    job = ingested["jobs"][name]
    assert job["state"] == "done", (job["error_code"], job["error_message"])
    detected = detect(sample.path)
    assert (detected.kind, detected.mime) == (sample.kind, sample.mime)
    assert len(sample.expects) >= 3
    searcher = rt.searcher()
    for expect in sample.expects:
        hits = searcher.search(expect.sentence, user_id=USER, k=3, mode="hybrid")
        assert hits, f"{name}: nothing found for {expect.sentence!r}"
        top = hits[0]
        assert top.document_id == str(job["document_id"]), (
            f"{name}: {expect.sentence!r} found first in {top.filename}, not in {sample.path.name}"
        )
        if sample.needs_ocr:  # OCR may misread a letter: most of the sentence's words are there
            wanted = _words(expect.sentence).split()
            seen = set(_words(top.text).split())
            assert sum(w in seen for w in wanted) >= 0.8 * len(wanted), (expect.sentence, top.text)
        else:
            assert _words(expect.sentence) in _words(top.text), (expect.sentence, top.text)
        if expect.page is not None:
            assert top.page == expect.page, f"{name}: {expect.sentence!r} on page {top.page}"
        if expect.heading is not None:
            assert expect.heading in top.heading_path, f"{name}: {expect.sentence!r} under {top.heading_path}"
    if sample.needs_ocr:
        events = [e for e in pipeline.events(rt, job["job_id"]) if e["type"] == "ocr_completed"]
        assert events and events[0]["payload"]["pages"], f"{name}: no ocr_completed event"
