"""``stage_spans``: a document's stages with durations, tries, retries and lease takeovers,
read from its events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from docingest.services.dashboard import stage_spans

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _event(seconds_after: float, stage: str, kind: str, **payload: Any) -> dict[str, Any]:
    return {
        "created_at": T0 + timedelta(seconds=seconds_after),
        "stage": stage,
        "type": kind,
        "payload": payload,
    }


def test_each_stage_has_its_completing_attempts_times_and_every_try() -> None:
    events = [
        _event(0, "uploaded", "job_created", via="upload"),
        _event(2, "parse_queued", "stage_completed", **{"from": "uploaded", "seconds": 0.5, "worker": "w1"}),
        _event(3, "parse_queued", "retry_scheduled", error_code="parse_timeout", message="slow"),
        _event(9, "parse_queued", "lease_taken_over", lost_leases=1),
        _event(12, "parsed", "stage_completed", **{"from": "parse_queued", "seconds": 2.5, "worker": "w2"}),
        _event(13, "parsed", "failed", error_code="no_text", message="nothing to read"),
    ]
    verify, parse, validate = stage_spans(events)

    assert (verify.stage, verify.reached, verify.attempts, verify.seconds) == (
        "uploaded",
        "parse_queued",
        1,
        0.5,
    )
    assert verify.finished_at == T0 + timedelta(seconds=2)
    assert verify.started_at == T0 + timedelta(seconds=1.5) and verify.workers == ["w1"]

    assert (parse.reached, parse.seconds, parse.workers) == ("parsed", 2.5, ["w2"])
    assert (parse.attempts, parse.retries, parse.lease_takeovers) == (3, 1, 1)  # retried, lost, completed
    assert parse.error_code == "parse_timeout"

    assert (validate.stage, validate.reached, validate.finished_at, validate.seconds) == (
        "parsed",
        None,
        None,
        None,
    )
    assert (validate.attempts, validate.error_code) == (1, "no_text")


def test_stages_come_in_the_pipelines_order_and_a_repeated_stage_keeps_its_last_completion() -> None:
    events = [
        _event(
            1, "embeddings_stored", "stage_completed", **{"from": "embedding_in_progress", "seconds": 4.0}
        ),
        _event(2, "complete", "stage_completed", **{"from": "embeddings_stored", "seconds": 0.1}),
        _event(
            50, "embeddings_stored", "stage_completed", **{"from": "embedding_in_progress", "seconds": 6.0}
        ),
    ]
    spans = stage_spans(events)
    assert [s.stage for s in spans] == ["embedding_in_progress", "embeddings_stored"]
    assert (spans[0].attempts, spans[0].seconds) == (2, 6.0)
    assert stage_spans([]) == []
