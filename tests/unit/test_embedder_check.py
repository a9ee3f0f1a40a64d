"""``probe_embedder``: the check before a command starts work, with its short backoff."""

from __future__ import annotations

import pytest

from docingest.errors import EmbeddingDimensionMismatch, EmbeddingUnavailable
from docingest.services.embedder_check import probe_embedder


def _check(*outcomes: Exception | None):  # type: ignore[no-untyped-def]
    calls = list(outcomes)

    def check() -> None:
        outcome = calls.pop(0)
        if outcome is not None:
            raise outcome

    return check


def test_a_transient_failure_is_tried_again_after_a_backoff_and_reported() -> None:
    retries: list[tuple[int, int, str, float]] = []
    slept: list[float] = []
    result = probe_embedder(
        _check(EmbeddingUnavailable("503"), None),
        sleep=slept.append,
        on_retry=lambda a, n, e, d: retries.append((a, n, e.error_code, d)),
    )
    assert result is None
    assert [(a, n, code) for a, n, code, _ in retries] == [(1, 3, "embedding_unavailable")]
    assert slept == [retries[0][3]] and 0 < slept[0] <= 5.0


def test_a_failure_that_persists_is_returned_not_raised() -> None:
    slept: list[float] = []
    result = probe_embedder(_check(*[EmbeddingUnavailable("503")] * 3), sleep=slept.append)
    assert isinstance(result, EmbeddingUnavailable) and len(slept) == 2


def test_a_permanent_refusal_and_a_bad_configuration_are_raised_at_once() -> None:
    with pytest.raises(EmbeddingDimensionMismatch):
        probe_embedder(_check(EmbeddingDimensionMismatch("384 != 768")), sleep=lambda s: None)
    with pytest.raises(ValueError, match="no key"):
        probe_embedder(_check(ValueError("no key")), sleep=lambda s: None)
