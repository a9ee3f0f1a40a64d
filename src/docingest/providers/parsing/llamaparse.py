"""LlamaParse client: the LlamaCloud Parse API v2 REST flow, one call per method.

Flow (LlamaCloud docs, "REST API Guide", "Retrieving Results", "Parse response format"):

1. ``POST {base}/api/v2/parse/upload``, multipart ``file`` + ``configuration`` (a JSON
   string: ``tier``, ``version``, optional ``webhook_configurations``), header
   ``Authorization: Bearer KEY`` -> ``{"id": JOB_ID, "status": "PENDING", ...}``.
2. ``GET {base}/api/v2/parse/{JOB_ID}?expand=markdown`` -> ``{"job": {"id", "status",
   "error_message"}, "markdown": {"pages": [{"page_number", "markdown"}]}}``, the content
   present once ``status`` is ``COMPLETED`` (else ``PENDING``/``RUNNING``/``FAILED``/``CANCELLED``).
   The ``fast`` tier produces no markdown (LlamaParse refuses ``expand=markdown`` on its jobs
   with 400), so for it the client asks ``expand=text`` -> ``{"text": {"pages": [{"page_number",
   "text"}]}}`` and keeps each page's plain text.

Errors at this edge: network errors, timeouts, 408/429/5xx and unreadable bodies
raise ``ParserUnavailable`` (transient; ``retry_after`` from ``Retry-After``); other
4xx raise ``RemoteParseFailed`` (permanent: bad key, unsupported file).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docingest.errors import ParserUnavailable, RemoteParseFailed
from docingest.providers.parsing.base import ParsedDocument, ParsedPage

if TYPE_CHECKING:
    from docingest.providers.ratelimit import RateLimiter

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
PAGE_SEPARATOR = "\n\n"


def llamaparse_signature(secret: str, job_id: Any) -> str:
    """The webhook token of one job: ``hex(HMAC-SHA256(secret, "llamaparse:" + job_id))``.

    Registered as the ``X-Docingest-Signature`` header of the job's webhook and checked by
    the webhook route (``api/routes/webhooks.py``).
    """
    return hmac.new(secret.encode(), f"llamaparse:{job_id}".encode(), hashlib.sha256).hexdigest()


def remote_job_id(body: Any) -> str | None:
    """LlamaParse's job id in a webhook body (``data.job_id``, ``data.id``, ``job_id`` or ``id``);
    None when there is none."""
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    if not isinstance(data, dict):
        data = {}
    for value in (data.get("job_id"), data.get("id"), body.get("job_id"), body.get("id")):
        if isinstance(value, str) and value:
            return value
    return None


def pages_to_document(pages: list[dict[str, Any]]) -> ParsedDocument:
    """Join LlamaParse's per-page markdown into one text with each page's character span."""
    parts: list[str] = []
    spans: list[ParsedPage] = []
    offset = 0
    for i, page in enumerate(sorted(pages, key=lambda p: int(p.get("page_number") or 0))):
        text = str(page.get("markdown") or "")
        if i:
            parts.append(PAGE_SEPARATOR)
            offset += len(PAGE_SEPARATOR)
        number = int(page.get("page_number") or i + 1)
        spans.append(ParsedPage(number, offset, offset + len(text), not text.strip()))
        parts.append(text)
        offset += len(text)
    return ParsedDocument(
        markdown="".join(parts), kind="markdown", pages=spans, metadata={"Parser": "llamaparse"}
    )


class LlamaParseClient:
    """Synchronous client (httpx); every request first takes a token from ``limiter``.

    Args:
        base_url: e.g. ``https://api.cloud.llamaindex.ai`` or the mock's ``http://127.0.0.1:8001``.
        api_key: the LlamaCloud key (``LLAMA_CLOUD_API_KEY``).
        limiter: ``SharedRateLimiter`` or ``LocalBackoff`` (429s block every worker).
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        tier: str = "cost_effective",
        version: str = "latest",
        timeout_seconds: float = 60.0,
        limiter: RateLimiter | None = None,
    ) -> None:
        import httpx

        self._httpx = httpx
        self.base_url = base_url.rstrip("/")
        self.tier = tier
        self.version = version
        self.limiter = limiter
        self.client = httpx.Client(
            timeout=timeout_seconds, headers={"Authorization": f"Bearer {api_key or ''}"}
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        httpx = self._httpx
        if self.limiter is not None:
            self.limiter.acquire()
        try:
            resp = self.client.request(method, f"{self.base_url}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise ParserUnavailable(f"LlamaParse {method} {path}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code == 429 or resp.status_code >= 500 or resp.status_code == 408:
            from docingest.providers.embedding.openai import retry_after_seconds

            wait = retry_after_seconds(resp.headers)
            if resp.status_code == 429 and self.limiter is not None:
                self.limiter.block(wait or 1.0)
            raise ParserUnavailable(
                f"LlamaParse answered {resp.status_code} to {method} {path}", retry_after=wait
            )
        if resp.status_code >= 400:
            raise RemoteParseFailed(
                f"LlamaParse refused {method} {path} ({resp.status_code}): {resp.text[:300]}"
            )
        try:
            body = resp.json()
        except ValueError as exc:
            raise ParserUnavailable(f"LlamaParse sent an unreadable body to {method} {path}") from exc
        if not isinstance(body, dict):
            raise ParserUnavailable(f"LlamaParse sent an unexpected body to {method} {path}")
        return body

    def submit(
        self,
        path: Path,
        *,
        filename: str,
        mime: str = "application/octet-stream",
        webhook: dict[str, Any] | None = None,
    ) -> str:
        """Upload ``path`` and start a parse job; returns LlamaParse's job id."""
        configuration: dict[str, Any] = {"tier": self.tier, "version": self.version}
        if webhook:
            configuration["webhook_configurations"] = [webhook]
        with path.open("rb") as f:
            body = self._request(
                "POST",
                "/api/v2/parse/upload",
                files={"file": (filename, f, mime)},
                data={"configuration": json.dumps(configuration)},
            )
        job_id = body.get("id") or (body.get("job") or {}).get("id")
        if not isinstance(job_id, str) or not job_id:
            raise ParserUnavailable("LlamaParse's upload reply has no job id")
        return job_id

    def poll(self, job_id: str) -> tuple[str, str | None, ParsedDocument | None]:
        """``(status, error_message, document)``; ``document`` only when ``COMPLETED``: each
        page's markdown, or its plain text on the ``fast`` tier (which has no markdown)."""
        field = "text" if self.tier == "fast" else "markdown"
        body = self._request("GET", f"/api/v2/parse/{job_id}", params={"expand": field})
        job = body.get("job") or {}
        status = str(job.get("status") or "").upper()
        if status not in TERMINAL + ("PENDING", "RUNNING"):
            raise ParserUnavailable(f"LlamaParse job {job_id} has an unknown status {status!r}")
        if status != "COMPLETED":
            return status, job.get("error_message"), None
        pages = (body.get(field) or {}).get("pages")
        if isinstance(pages, list) and field == "text":
            pages = [{"page_number": p.get("page_number"), "markdown": p.get("text")} for p in pages]
        if not isinstance(pages, list):
            if isinstance(body.get("markdown_full"), str):
                pages = [{"page_number": 1, "markdown": body["markdown_full"]}]
            else:
                raise ParserUnavailable(f"LlamaParse job {job_id} completed without {field}")
        return status, None, pages_to_document(pages)

    def close(self) -> None:
        self.client.close()
