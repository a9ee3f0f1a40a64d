"""Backoff bounds, the error table, classification, the stage order."""

from __future__ import annotations

import random

import pytest

from docingest import errors
from docingest.backoff import backoff_seconds
from docingest.domain import STAGES, Stage, State


@pytest.mark.parametrize("retry", [0, 1, 3, 10, 100])
def test_backoff_stays_within_the_exponential_ceiling(retry: int) -> None:
    rng = random.Random(retry)
    delays = [backoff_seconds(retry, base=1.0, cap=30.0, rng=rng) for _ in range(200)]
    ceiling = min(30.0, 2.0**retry)
    assert all(0.0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling / 2  # jitter spreads over the range, not a constant


def test_backoff_honours_retry_after_as_a_floor() -> None:
    assert all(backoff_seconds(0, base=0.1, retry_after=7.0) >= 7.0 for _ in range(50))


def test_backoff_rejects_negative_counts() -> None:
    with pytest.raises(ValueError):
        backoff_seconds(-1)


def test_error_codes_are_unique_and_classified() -> None:
    table = errors.error_table()
    codes = [row.code for row in table]
    assert len(codes) == len(set(codes))
    by_code = {row.code: row for row in table}
    for code in (
        "pdf_encrypted",
        "pdf_corrupt",
        "no_text",
        "empty_file",
        "file_too_large",
        "embedding_dimension_mismatch",
        "worker_lost",
        "content_type_mismatch",
    ):
        assert by_code[code].retryable is False
    for code in ("storage_unavailable", "embedding_unavailable", "parse_timeout", "internal_error"):
        assert by_code[code].retryable is True
    assert all(row.user_action for row in table)


def test_classify_wraps_unknown_exceptions_as_transient_internal_errors() -> None:
    err = errors.classify(KeyError("x"))
    assert err.error_code == "internal_error" and err.retryable
    original = errors.PdfCorrupt("bad xref")
    assert errors.classify(original) is original


def test_stages_are_in_pipeline_order() -> None:
    assert [s.value for s in STAGES] == [
        "uploaded",
        "parse_queued",
        "parsed",
        "parse_validated",
        "chunking",
        "chunks_stored",
        "embedding_queued",
        "embedding_in_progress",
        "embeddings_stored",
        "complete",
    ]
    assert Stage.UPLOADED.next() is Stage.PARSE_QUEUED
    with pytest.raises(ValueError):
        Stage.COMPLETE.next()
    assert State.DONE.terminal and State.FAILED.terminal and not State.RETRYABLE.terminal
