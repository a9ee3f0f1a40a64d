"""Stages whose handler only records the milestone (queueing points: docs/architecture.md, section 2)."""

from __future__ import annotations

from docingest.domain import Stage
from docingest.stages.base import StageContext, StageResult


class Passthrough:
    """``parse_validated``, ``chunks_stored`` and ``embedding_queued``: advance, no work."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    def run(self, ctx: StageContext) -> StageResult:
        return StageResult()
