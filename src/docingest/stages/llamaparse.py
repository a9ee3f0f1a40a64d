"""``parse_queued`` -> ``parsed`` with LlamaParse: submit, then poll by rescheduling the job.

Each run does one step and gives the slot back: the first run uploads the file
and stores LlamaParse's job id in the job's control state (``JobControl.llamaparse_job_id``,
``llamaparse_deadline``), returning ``StageResult(delay_seconds=...)`` so the
worker requeues the job at the same stage; later runs poll once each, with a
delay growing 1.5x from ``LLAMAPARSE_POLL_SECONDS`` to ``LLAMAPARSE_POLL_MAX_SECONDS``.
The webhook (``docingest.api.routes.webhooks``) only makes the job claimable at once.
When the remote job is ``COMPLETED``, the markdown is stored exactly as a local
parse is, by :class:`~docingest.stages.parse.ParseDocument`.

Failures: ``FAILED`` -> ``remote_parse_failed``, ``CANCELLED`` ->
``remote_parse_cancelled`` (permanent); not finished by the deadline
(``LLAMAPARSE_TIMEOUT_BASE_SECONDS + LLAMAPARSE_TIMEOUT_PER_PAGE_SECONDS * pages``)
-> ``parse_timeout`` (transient: a retry submits a new job). The remote id is
cleared first, so a retry never polls a dead job.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from docingest.domain import JobControl, JobProgress, Stage
from docingest.errors import ParseTimeout, RemoteParseCancelled, RemoteParseFailed
from docingest.providers.parsing.base import DEFAULT_OPTIONS, PageProgress, ParsedDocument, ParseOptions
from docingest.providers.parsing.llamaparse import LlamaParseClient, llamaparse_signature
from docingest.providers.storage.base import Storage
from docingest.settings import Settings
from docingest.stages.base import StageContext, StageResult
from docingest.stages.parse import ParseDocument


class _Ready:
    """A ``parse_fn`` that returns an already parsed document (picklable)."""

    def __init__(self, parsed: ParsedDocument) -> None:
        self.parsed = parsed

    def __call__(
        self,
        path: Path,
        kind: str,
        on_progress: PageProgress | None = None,
        options: ParseOptions = DEFAULT_OPTIONS,
    ) -> ParsedDocument:
        return self.parsed


def page_count(path: Path, kind: str) -> int:
    """Pages of a PDF (pypdfium2, no rendering); 1 for other kinds or an unreadable file."""
    if kind != "pdf":
        return 1
    try:
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(str(path))
        try:
            return max(1, len(pdf))
        finally:
            pdf.close()
    except Exception:  # noqa: BLE001 - only sizes the timeout; LlamaParse judges the file
        return 1


class LlamaParseDocument:
    """The ``parse_queued`` handler when ``UPLOAD_PIPELINE_PARSER=llamaparse``.

    Args:
        storage: object storage (the original is read, the artifact written).
        client: a :class:`~docingest.providers.parsing.llamaparse.LlamaParseClient`.
        settings: poll delays, timeouts, webhook base URL and secret.
    """

    stage = Stage.PARSE_QUEUED

    def __init__(self, storage: Storage, client: LlamaParseClient, settings: Settings) -> None:
        self.storage = storage
        self.client = client
        self.settings = settings

    def _webhook(self, job_id: Any) -> dict[str, Any] | None:
        s = self.settings
        if not (s.webhook_base_url and s.webhook_secret):
            return None
        return {
            "webhook_url": f"{s.webhook_base_url.rstrip('/')}/api/v2/webhooks/llamaparse/{job_id}",
            "webhook_events": ["parse.success", "parse.error", "parse.cancelled"],
            "webhook_headers": {"X-Docingest-Signature": llamaparse_signature(s.webhook_secret, job_id)},
        }

    def run(self, ctx: StageContext) -> StageResult:
        control = ctx.job.control
        remote = control.llamaparse_job_id
        if not remote:
            return self._submit(ctx)
        status, error, parsed = self.client.poll(remote)
        if parsed is not None:
            result = ParseDocument(self.storage, _Ready(parsed)).run(ctx)
            result.progress = result.progress.merge(JobProgress(llamaparse_status=status))
            result.events.append(
                ("llamaparse_completed", {"llamaparse_job_id": remote, "polls": control.llamaparse_polls})
            )
            return result
        if status in ("FAILED", "CANCELLED"):
            ctx.save_progress(
                JobProgress(llamaparse_status=status),
                control=JobControl(llamaparse_job_id=None, llamaparse_last_job_id=remote),
            )
            if status == "FAILED":
                raise RemoteParseFailed(f"LlamaParse job {remote} failed: {error or 'no reason given'}")
            raise RemoteParseCancelled(f"LlamaParse job {remote} was cancelled")
        now = time.time()
        deadline = float(control.llamaparse_deadline or now)
        if now >= deadline:
            budget = deadline - float(control.llamaparse_submitted_at or deadline)
            ctx.save_progress(
                JobProgress(llamaparse_status="TIMED_OUT"),
                control=JobControl(llamaparse_job_id=None, llamaparse_last_job_id=remote),
            )
            raise ParseTimeout(
                f"LlamaParse job {remote} was still {status} after {budget:.0f}s "
                "(LLAMAPARSE_TIMEOUT_BASE_SECONDS + PER_PAGE_SECONDS x pages)"
            )
        polls = (control.llamaparse_polls or 0) + 1
        s = self.settings
        delay = min(s.llamaparse_poll_max_seconds, s.llamaparse_poll_seconds * 1.5**polls)
        return StageResult(
            progress=JobProgress(llamaparse_status=status),
            control=JobControl(llamaparse_polls=polls),
            delay_seconds=max(0.05, min(delay, deadline - now + 0.05)),
        )

    def _submit(self, ctx: StageContext) -> StageResult:
        doc = ctx.document
        kind = ctx.job.control.detected_kind or "text"
        with self.storage.local_path(doc.raw_path) as path:
            pages = page_count(Path(path), kind)
            ext = Path(doc.raw_path).suffix or ".bin"
            remote = self.client.submit(
                Path(path),
                filename=f"{doc.document_id}{ext}",
                mime=doc.mime,
                webhook=self._webhook(ctx.job.job_id),
            )
        s = self.settings
        now = time.time()
        budget = s.llamaparse_timeout_base_seconds + s.llamaparse_timeout_per_page_seconds * pages
        return StageResult(
            progress=JobProgress(llamaparse_status="PENDING", pages_total=pages),
            control=JobControl(
                llamaparse_job_id=remote,
                llamaparse_submitted_at=now,
                llamaparse_deadline=now + budget,
                llamaparse_polls=0,
            ),
            events=[("llamaparse_submitted", {"llamaparse_job_id": remote, "timeout_s": budget})],
            delay_seconds=s.llamaparse_poll_seconds,
        )
