"""Bounded parsing inside the worker, transient errors exhausting their retries, and
``docingest retry JOB`` requeueing a failed job from its last good stage."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from docingest.cli.main import app
from docingest.providers.parsing.sandbox import ParseLimits, SandboxedParser
from docingest.runtime import Runtime
from docingest.services.ingest import ingest
from tests.conftest import make_settings, settings_env
from tests.fixtures import pipeline

pytestmark = pytest.mark.integration


def test_hanging_crashing_bloated_parsers_fail_after_retries_and_the_worker_goes_on(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        db_url,
        tmp_path / "data",
        max_retries=1,
        parse_timeout_seconds=1.0,
        parse_timeout_seconds_per_mb=0.0,
        parse_memory_mb=256,
    )
    rt = Runtime(settings, migrate=False)
    evil = SandboxedParser(
        ParseLimits.from_settings(settings), target="tests.fixtures.evil_parsers:parse_file"
    )
    monkeypatch.setattr(rt, "parse_fn", lambda: evil)
    files = {
        "hang.txt": "EVIL:HANG",
        "segv.txt": "EVIL:SEGV",
        "bloat.txt": "EVIL:RSS",
        "good.txt": "An ordinary document about leases, written after the bad ones.",
    }
    for name, text in files.items():
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / name).write_text(text + " " + name)
    try:
        summary = ingest(rt, [tmp_path / "in"], user_id="evil", concurrency=2)
        jobs = {j["filename"]: j for j in pipeline.latest_jobs(rt).values()}
        assert summary.complete == 1 and jobs["good.txt"]["state"] == "done"
        expected = {"hang.txt": "parse_timeout", "segv.txt": "parse_crashed", "bloat.txt": "parse_oom"}
        for name, code in expected.items():
            job = jobs[name]
            assert (job["state"], job["error_code"], job["stage"]) == ("failed", code, "parse_queued")
            retries = [e for e in pipeline.events(rt, job["job_id"]) if e["type"] == "retry_scheduled"]
            assert [e["payload"]["error_code"] for e in retries] == [code]  # retried once, then failed
            assert job["attempts"] == 2
    finally:
        rt.close()


def test_transient_failure_then_docingest_retry_resumes_from_last_good_stage(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc_path = tmp_path / "doc.md"
    doc_path.write_text("# Retry\n\n" + "A paragraph about leases and fencing tokens. " * 200)
    failing = make_settings(db_url, tmp_path / "data", max_retries=2, fault_embedding_error_rate=1.0)
    rt = Runtime(failing, migrate=False)
    try:
        reg = rt.documents.register_file(doc_path, user_id="u")
        doc_id = reg.document.document_id
        job = pipeline.run_until_terminal(rt, [doc_id])[doc_id]
        assert (job["state"], job["error_code"], job["stage"]) == (
            "failed",
            "embedding_unavailable",
            "embedding_in_progress",
        )
        assert job["retry_count"] == 2 and "injected fault" in job["error_message"]
    finally:
        rt.close()

    clean = make_settings(db_url, tmp_path / "data")
    for key, value in settings_env(clean).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    result = runner.invoke(app, ["retry", str(job["job_id"])])
    assert result.exit_code == 0, result.output
    assert "embedding_in_progress" in result.output
    again = runner.invoke(app, ["retry", str(job["job_id"])])  # not failed any more
    assert again.exit_code == 1

    rt = Runtime(clean, migrate=False)
    try:
        done = pipeline.run_until_terminal(rt, [doc_id])[doc_id]
        assert done["state"] == "done" and done["job_id"] == job["job_id"]
        evs = pipeline.events(rt, job["job_id"])
        requeued = next(
            i for i, e in enumerate(evs) if e["type"] == "retry_requested" and e["payload"]["via"] == "cli"
        )
        after = [e["payload"]["from"] for e in evs[requeued:] if e["type"] == "stage_completed"]
        assert after == ["embedding_in_progress", "embeddings_stored"]  # not parsed again
        assert len(pipeline.chunks(rt, doc_id)) == done["progress"]["chunks_total"] > 1
        assert pipeline.buffer_rows(rt) == 0
    finally:
        rt.close()


def test_retry_of_unknown_job_fails(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in settings_env(make_settings(db_url, tmp_path / "data")).items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["retry", "00000000-0000-0000-0000-000000000000"])
    assert result.exit_code == 1


def test_retry_of_a_job_whose_file_was_not_kept_says_to_ingest_again(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(db_url, tmp_path / "data")
    bad = tmp_path / "bad.docx"
    bad.write_bytes(b"zip\x00\x01")
    rt = Runtime(settings, migrate=False)
    try:
        reg = rt.documents.register_file(bad, user_id="local")
        job = pipeline.run_until_terminal(rt, [reg.document.document_id])[reg.document.document_id]
        assert (job["state"], job["stage"]) == ("failed", "uploaded")
        assert rt.storage.head(reg.document.raw_path) is None  # refused: not kept
    finally:
        rt.close()
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["retry", str(job["job_id"])])
    assert result.exit_code == 1
    assert "docingest ingest" in result.output and "bad.docx" in result.output
    rt = Runtime(settings, migrate=False)
    try:  # nothing was requeued
        assert (
            pipeline.latest_jobs(rt, [reg.document.document_id])[reg.document.document_id]["state"]
            == "failed"
        )
    finally:
        rt.close()
