"""Each bad input, ingested with ``docingest ingest``, ends in its expected state and code.

The whole generated corpus (tests/fixtures/make_bad_inputs.py) goes through one real
``docingest ingest DIR --json`` process; each case is then checked in the database:
state, error_code, no retry for permanent errors, and the case's own checks (NULs
counted in events, empty pages recorded, chunk limits and exact offsets, warnings).
The size-mismatch case needs the stored object changed after registration, so it
runs here in-process. The HTTP half, tests/e2e/test_bad_inputs_http.py, reuses ``CASES``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docingest.runtime import Runtime
from docingest.stages.artifacts import ParsedArtifact
from tests.conftest import make_settings, new_database, settings_env
from tests.fixtures import pipeline
from tests.fixtures.make_bad_inputs import CASES, DOCX_MIME, INGEST_CASES, MAX_FILE_BYTES, BadInput, generate

pytestmark = pytest.mark.integration
MAX_TOKENS = 256


@pytest.fixture(scope="module")
def ingested(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run ``docingest ingest`` once over the corpus; the runtime and the CLI's summary."""
    root = tmp_path_factory.mktemp("bad")
    corpus = root / "corpus"
    generate(corpus, {c.name for c in INGEST_CASES})
    settings = make_settings(
        new_database(pg_url, "bad"), root / "data", max_file_bytes=MAX_FILE_BYTES, parse_memory_mb=512
    )
    proc = subprocess.run(
        [sys.executable, "-m", "docingest.cli.main", "ingest", str(corpus), "--json", "--user", "bad"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # 1: some documents failed, as they must
    summary = json.loads(proc.stdout)
    rt = Runtime(settings, migrate=False)
    jobs = {j["filename"]: j for j in pipeline.latest_jobs(rt).values()}
    yield {"rt": rt, "summary": summary, "jobs": jobs}
    rt.close()


def test_summary_counts_failures_by_code(ingested: dict[str, Any]) -> None:
    summary = ingested["summary"]
    expected: dict[str, int] = {}
    for c in INGEST_CASES:
        if c.expected_code:
            expected[c.expected_code] = expected.get(c.expected_code, 0) + 1
    assert summary["documents"] == len(INGEST_CASES)
    assert summary["failed_by_code"] == expected
    assert summary["complete"] == sum(c.expected_state == "done" for c in INGEST_CASES)
    # A file whose name says another type than its content is named in the summary's warnings
    # (the CLI prints them after the table), not only in its job's events.
    renamed = {
        w["filename"]: w["message"] for w in summary["warnings"] if "but the content is" in w["message"]
    }
    assert set(renamed) == {c.name for c in INGEST_CASES if c.warning_mime is not None}, summary["warnings"]
    assert all(c.warning_mime in renamed[c.name] for c in INGEST_CASES if c.warning_mime is not None)


@pytest.mark.parametrize("case", INGEST_CASES, ids=lambda c: c.name)
def test_bad_input_outcome(ingested: dict[str, Any], case: BadInput) -> None:
    rt: Runtime = ingested["rt"]
    job = ingested["jobs"][case.name]
    check_outcome(rt, job, case)


def check_outcome(rt: Runtime, job: dict[str, Any], case: BadInput) -> None:
    """Every assertion a case's outcome implies (shared with the chaos test's bad inputs)."""
    assert (job["state"], job["error_code"]) == (case.expected_state, case.expected_code), (
        f"{case.name}: {job['state']} {job['error_code']}: {job['error_message']}"
    )
    evs = pipeline.events(rt, job["job_id"])
    if case.expected_state == "failed":
        assert job["retry_count"] == 0 and not any(e["type"] == "retry_scheduled" for e in evs), (
            f"{case.name}: a permanent error was retried"
        )
        assert job["error_message"]
        assert pipeline.chunks(rt, job["document_id"]) == []
        if case.expected_code == "no_text" and case.name.endswith(".pdf"):  # OCR read the pages too
            assert "no text was found" in job["error_message"] and "OCR" in job["error_message"]
        elif case.expected_code == "no_text" and case.name.endswith(".docx"):
            assert "no text was found" in job["error_message"] and "pictures" in job["error_message"]
        elif case.expected_code == "no_text" and case.name.endswith(".html"):
            assert "body has no text" in job["error_message"] and "OCR" not in job["error_message"]
        elif case.expected_code == "no_text":  # a text format: no OCR hint, it would mislead
            assert "only whitespace" in job["error_message"] and "OCR" not in job["error_message"]
        if case.expected_code == "content_type_mismatch":
            assert "text/html" in job["error_message"]
        return
    rows = pipeline.chunks(rt, job["document_id"])
    assert rows, f"{case.name} is complete with zero chunks"
    cleaned = [e["payload"] for e in evs if e["type"] == "text_cleaned"]
    if case.nul_removed is not None:
        assert cleaned and cleaned[0]["nul_removed"] == case.nul_removed
    if case.metadata_nul_removed is not None:
        assert cleaned[0]["metadata_chars_removed"] == case.metadata_nul_removed
    with rt.pool().connection() as conn:
        doc = rt.repo.get_document(conn, job["document_id"])
    assert doc is not None
    artifact = ParsedArtifact.load(rt.storage, doc)
    assert not any(ch in artifact.text for ch in "\x00\ufffe")
    assert not any("\x00" in v for v in artifact.metadata.values())
    if case.empty_pages is not None:
        assert job["progress"]["empty_pages"] == list(case.empty_pages)
        assert any(
            e["type"] == "empty_pages" and e["payload"]["pages"] == list(case.empty_pages) for e in evs
        )
    if case.pages is not None:
        assert doc.page_count == case.pages
    if case.warning_mime is not None:
        assert any(
            e["type"] == "warning" and e["payload"].get("detected_mime") == case.warning_mime for e in evs
        ), f"{case.name}: no warning naming {case.warning_mime}"
    if case.check_chunks:
        for r in rows:
            assert 0 < r["token_count"] <= MAX_TOKENS
            assert r["text"].strip()
            assert artifact.text[r["meta"]["start"] : r["meta"]["end"]] == r["text"]


def test_stored_object_larger_than_declared(runtime: Runtime, tmp_path: Path) -> None:
    """The worker refuses it from its size alone (``size_mismatch``), never reading it whole."""
    case = next(c for c in CASES if c.expected_code == "size_mismatch")
    path = generate(tmp_path / "in", {case.name})[case.name]
    reg = runtime.documents.register_file(path, user_id="bad")
    stored = runtime.settings.storage_dir / reg.document.raw_path
    with stored.open("ab") as f:  # the object grows after it was declared
        f.write(b"\0" * case.declared_bytes_len_delta)
    jobs = pipeline.run_until_terminal(runtime, [reg.document.document_id])
    job = jobs[reg.document.document_id]
    job["filename"] = case.name
    check_outcome(runtime, job, case)
    assert not stored.exists()  # a permanent mismatch deletes the object


def test_cli_parses_a_docx_named_pdf_as_the_docx_it_is(runtime: Runtime, tmp_path: Path) -> None:
    """``docingest ingest`` declares nothing: the extension is a hint, the sniffed type wins."""
    from docingest.services.ingest import ingest

    src = generate(tmp_path / "gen", {"report-docx-renamed.txt"})["report-docx-renamed.txt"]
    renamed = tmp_path / "in" / "really-docx.pdf"
    renamed.parent.mkdir()
    renamed.write_bytes(src.read_bytes())
    summary = ingest(runtime, [renamed.parent], user_id="u", concurrency=1, poll_seconds=0.1)
    assert (summary.complete, summary.failed) == (1, 0), summary.failures
    job = next(iter(pipeline.latest_jobs(runtime).values()))
    warnings = [e["payload"] for e in pipeline.events(runtime, job["job_id"]) if e["type"] == "warning"]
    assert any(
        w["extension"] == ".pdf"
        and w["detected_mime"] == DOCX_MIME
        and ".pdf" in w["message"]
        and DOCX_MIME in w["message"]
        for w in warnings
    ), warnings
    with runtime.pool().connection() as conn:
        doc = runtime.repo.get_document(conn, job["document_id"])
    assert doc is not None and doc.mime == DOCX_MIME
