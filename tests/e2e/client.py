"""A small API client for the tests: auth headers, upload in two steps, polling."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import httpx

from docingest.api.auth import mint_token

API = "/api/v2"


def token(secret: str, user: str, **kwargs: Any) -> str:
    return mint_token(secret, user_id=user, **kwargs)


class ApiClient:
    """``httpx.Client`` on the API's base URL, authenticated as one user."""

    def __init__(self, base_url: str, bearer: str | None) -> None:
        headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=30.0)

    def request_upload(
        self,
        data: bytes,
        *,
        filename: str = "doc.md",
        mime: str = "text/markdown",
        bytes_len: int | None = None,
        sha256: str | None = None,
        source: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """``POST /upload``; ``source`` and ``meta`` are sent only when given."""
        body: dict[str, Any] = {
            "filename": filename,
            "mime": mime,
            "bytes_len": len(data) if bytes_len is None else bytes_len,
            "sha256": sha256 or hashlib.sha256(data).hexdigest(),
        }
        if source is not None:
            body["source"] = source
        if meta is not None:
            body["meta"] = meta
        return self.http.post(f"{API}/upload", json=body)

    @staticmethod
    def put(ticket: dict[str, Any], data: bytes, **kwargs: Any) -> httpx.Response:
        """PUT ``data`` to the ticket's signed URL with its headers (no API credentials)."""
        headers = dict(ticket.get("upload_headers") or {})
        headers.pop("content-length", None)  # httpx sets it from the body
        return httpx.put(ticket["signed_url"], content=data, headers=headers, timeout=30.0, **kwargs)

    def wait_document(
        self, document_id: str, *, states: tuple[str, ...] = ("done", "failed"), timeout: float = 90.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            reply = self.http.get(f"{API}/documents/{document_id}")
            reply.raise_for_status()
            doc: dict[str, Any] = reply.json()
            if doc["state"] in states:
                return doc
            if time.monotonic() > deadline:
                raise TimeoutError(f"document {document_id} still {doc['stage']}/{doc['state']}")
            time.sleep(0.2)

    def events(self, document_id: str) -> list[dict[str, Any]]:
        """The document's events from its SSE stream (which ends once the job is terminal)."""
        events = []
        with self.http.stream("GET", f"{API}/documents/{document_id}/events") as reply:
            reply.raise_for_status()
            for line in reply.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[len("data: ") :]))
        return events

    def close(self) -> None:
        self.http.close()
