"""Metrics helpers, the queue-depth collector and the log configuration, without a database."""

from __future__ import annotations

import io
import json
import logging
from types import SimpleNamespace
from uuid import uuid4

import structlog
from prometheus_client import CollectorRegistry, generate_latest

from docingest.observability import logs, metrics


def test_jobs_collector_exports_counts_and_zeroes_pairs_seen_before() -> None:
    counts = [("embedding_in_progress", "working", 2), ("complete", "done", 5)]
    registry = CollectorRegistry()
    registry.register(metrics.JobsCollector(lambda: counts))
    text = generate_latest(registry).decode()
    assert 'docingest_jobs{stage="complete",state="done"} 5.0' in text
    counts = [("complete", "done", 7)]
    text = generate_latest(registry).decode()
    assert 'docingest_jobs{stage="embedding_in_progress",state="working"} 0.0' in text
    assert 'docingest_jobs{stage="complete",state="done"} 7.0' in text


def test_jobs_collector_survives_a_database_error() -> None:
    def broken() -> list[tuple[str, str, int]]:
        raise OSError("database down")

    registry = CollectorRegistry()
    registry.register(metrics.JobsCollector(broken))
    before = metrics.SCRAPE_ERRORS._value.get()
    generate_latest(registry)
    assert metrics.SCRAPE_ERRORS._value.get() == before + 1


def test_metrics_text_is_prometheus_text() -> None:
    metrics.embedding_call("unit-model", 0.2, chunks=3, tokens=30)
    body, content_type = metrics.metrics_text()
    assert content_type.startswith("text/plain")
    assert b'docingest_embedding_chunks_total{model="unit-model"} 3.0' in body


def test_json_log_lines_carry_the_bound_job_and_redact_contents() -> None:
    stream = io.StringIO()
    logs.configure_logging(logging.INFO, json=True, stream=stream)
    job = SimpleNamespace(
        job_id=uuid4(), document_id=uuid4(), stage=SimpleNamespace(value="parsed"), attempt_id=uuid4()
    )
    try:
        logs.bind_job(job, user_id="u1")
        logs.get_logger("t").info("structlog line", text="document body", api_key="sk-123")
        logging.getLogger("t.std").warning("stdlib line %s", 42)
        logs.unbind_job()
        logs.get_logger("t").info("after the job")
    finally:
        logs.unbind_job()
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in lines] == ["structlog line", "stdlib line 42", "after the job"]
    for e in lines[:2]:
        assert e["job_id"] == str(job.job_id) and e["user_id"] == "u1" and e["stage"] == "parsed"
        assert e["attempt_id"] == str(job.attempt_id) and e["document_id"] == str(job.document_id)
    assert lines[0]["text"] == lines[0]["api_key"] == "[redacted]"
    assert "job_id" not in lines[2]
