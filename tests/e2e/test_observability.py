"""A ``docingest worker --metrics-port`` process ingests a few documents; its /metrics and its
JSON log lines are checked against the database (issue 6: metrics and structured logs)."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from docingest.domain import STAGES, Stage
from docingest.runtime import Runtime
from tests.conftest import make_settings, new_database
from tests.e2e.workers import start_worker, stop_all, wait_for
from tests.integration.helpers import register, rows, write_docs

pytestmark = pytest.mark.e2e
WORK_STAGES = [s.value for s in STAGES if s is not Stage.COMPLETE]
N_DOCS = 3


@pytest.fixture(scope="module")
def ingested(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three Markdown documents and one empty file through one worker process with /metrics."""
    tmp = tmp_path_factory.mktemp("obs")
    settings = make_settings(new_database(pg_url, "obs"), tmp / "data")
    rt = Runtime(settings, migrate=False)
    paths = write_docs(tmp / "in", N_DOCS, words=400, prefix="secretword")
    empty = tmp / "in" / "empty.txt"
    empty.write_bytes(b"")
    register(rt, [*paths, empty], user_id="obs-user")
    proc = start_worker(settings, tmp / "logs", "w", concurrency=2, args=("--metrics-port", "0"))
    log_path = tmp / "logs" / "w.log"
    try:
        port = wait_for(
            lambda: re.search(rb"metrics on http://[\d.]+:(\d+)/metrics", log_path.read_bytes()), timeout=60
        )
        url = f"http://127.0.0.1:{int(port.group(1))}/metrics"
        wait_for(
            lambda: (
                rows(
                    rt, "SELECT count(*) n FROM upload_pipeline.upload_jobs WHERE state IN ('done', 'failed')"
                )[0]["n"]
                == N_DOCS + 1
            ),
            timeout=120,
        )
        text = urllib.request.urlopen(url, timeout=10).read().decode()
    finally:
        stop_all([proc])
    yield {"rt": rt, "metrics": text, "log": log_path.read_text(encoding="utf-8"), "paths": paths}
    rt.close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(s: dict[Any, float], name: str, **labels: str) -> float:
    return s.get((name, tuple(sorted(labels.items()))), 0.0)


def test_worker_metrics_match_the_database(ingested: dict[str, Any]) -> None:
    s = samples(ingested["metrics"])
    rt = ingested["rt"]
    chunks = rows(rt, "SELECT count(*) n, sum(token_count) t FROM upload_pipeline.document_chunks")[0]
    docs = rows(rt, "SELECT sum(bytes_len) b FROM upload_pipeline.documents")[0]
    assert chunks["n"] >= N_DOCS
    assert value(s, "docingest_jobs_finished_total", outcome="done") == N_DOCS
    assert value(s, "docingest_jobs_finished_total", outcome="failed") == 1
    assert value(s, "docingest_job_failures_total", stage="uploaded", error_code="empty_file") == 1
    assert value(s, "docingest_stage_transitions_total", stage="complete") == N_DOCS
    for stage in WORK_STAGES:
        count = value(s, "docingest_stage_duration_seconds_count", stage=stage)
        assert count == N_DOCS, (stage, count)  # successful runs only: the empty file failed
        assert value(s, "docingest_stage_duration_seconds_bucket", stage=stage, le="+Inf") == count
    assert value(s, "docingest_embedding_chunks_total", model="hashing-bow-v1") == chunks["n"]
    assert value(s, "docingest_embedding_tokens_total", model="hashing-bow-v1") == chunks["t"]
    assert value(s, "docingest_embedding_requests_total", model="hashing-bow-v1", outcome="ok") >= N_DOCS
    assert value(s, "docingest_parsed_documents_total", kind="markdown") == N_DOCS
    assert value(s, "docingest_upload_bytes_total") == docs["b"]  # the empty file adds 0 bytes
    assert value(s, "docingest_jobs", stage="complete", state="done") == N_DOCS
    assert value(s, "docingest_jobs", stage="uploaded", state="failed") == 1
    assert value(s, "docingest_lease_takeovers_total") == 0
    labels = {k for (_, pairs) in s for k, _ in pairs}
    assert not labels & {"document_id", "job_id", "user_id", "attempt_id", "filename"}


def test_each_job_log_line_carries_the_job_ids(ingested: dict[str, Any]) -> None:
    rt = ingested["rt"]
    job = rows(
        rt,
        "SELECT j.job_id, j.document_id, d.user_id FROM upload_pipeline.upload_jobs j "
        "JOIN upload_pipeline.documents d USING (document_id) WHERE j.state = 'done' "
        "ORDER BY j.created_at LIMIT 1",
    )[0]
    attempts = {
        r["a"]
        for r in rows(
            rt,
            "SELECT DISTINCT payload->>'attempt_id' a FROM "
            "upload_pipeline.events WHERE job_id = %s AND "
            "type = 'stage_completed'",
            (job["job_id"],),
        )
    }
    lines = [json.loads(line) for line in ingested["log"].splitlines() if line.startswith("{")]
    assert lines, "the worker wrote no JSON log line (stderr is not a terminal)"
    mine = [e for e in lines if str(job["job_id"]) in json.dumps(e)]
    assert len(mine) >= 1 + len(WORK_STAGES)  # claimed, then one line per stage completed
    for e in mine:
        assert e["job_id"] == str(job["job_id"]), e
        assert e["document_id"] == str(job["document_id"]), e
        assert e["user_id"] == job["user_id"] == "obs-user", e
        assert e["attempt_id"] in attempts, e
        assert e["stage"] in [s.value for s in STAGES], e
        assert {"event", "level", "timestamp", "logger"} <= e.keys()
    assert {e["stage"] for e in mine if e["event"] == "stage completed"} == set(WORK_STAGES)
    failed = [e for e in lines if e.get("error_code") == "empty_file" or "empty_file" in e["event"]]
    assert failed and all(e.get("job_id") and e.get("user_id") == "obs-user" for e in failed)


def test_logs_hold_no_file_contents(ingested: dict[str, Any]) -> None:
    """The documents' words (``secretword<i>-word<j>``) are in no line; their file names
    (``secretword-0000.md``) may be: the worker's job lines name the file."""
    assert re.search(r"secretword\d+-word\d+", ingested["log"]) is None
    assert "secretword-0000.md" in ingested["log"], "the job lines name the file (the log is the worker's)"
