"""The parse stage saves pages parsed of pages total while parsing, at a bounded rate."""

from __future__ import annotations

from typing import Any

import pytest

from docingest.domain import JobProgress
from docingest.stages import parse as parse_stage
from docingest.stages.parse import PageProgressSaver


class FakeCtx:
    def __init__(self) -> None:
        self.saved: list[dict[str, Any]] = []

    def save_progress(self, progress: JobProgress, persist: Any = None, *, control: Any = None) -> None:
        self.saved.append(progress.as_dict())


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_report_at_once_then_at_most_one_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(parse_stage.time, "monotonic", clock)
    ctx = FakeCtx()
    saver = PageProgressSaver(ctx, interval_seconds=0.5)  # type: ignore[arg-type]
    clock.now += 1.0
    saver(10, 100)  # 10 pages in 1 s: 90 left at 10 pages/s
    assert ctx.saved == [{"pages_parsed": 10, "pages_total": 100, "eta_s": 9.0}]
    for pages in range(11, 20):  # 0.4 s more: throttled
        clock.now += 0.04
        saver(pages, 100)
    assert len(ctx.saved) == 1
    clock.now += 0.2
    saver(25, 100)
    assert ctx.saved[-1]["pages_parsed"] == 25 and len(ctx.saved) == 2
    clock.now += 10
    saver(100, 100)  # the last page: the stage's result records it
    assert len(ctx.saved) == 2 and saver.saves == 2
