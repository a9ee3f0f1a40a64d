"""``GET /api/v2/documents/{id}/events`` streams a document's stage changes as SSE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from docingest.api.app import create_app
from docingest.api.auth import mint_token
from docingest.domain import Stage
from docingest.runtime import Runtime
from tests.integration.helpers import register, write_docs

pytestmark = pytest.mark.e2e


def test_sse_follows_one_document_from_uploaded_to_complete(runtime: Runtime, tmp_path: Path) -> None:
    [reg] = register(runtime, write_docs(tmp_path / "in", 1, words=800), user_id="sse-user")
    token = mint_token(runtime.settings.jwt_secret, user_id="sse-user")
    worker = runtime.worker(concurrency=1)
    worker.start()
    try:
        with TestClient(create_app(runtime, sweep=False)) as client:
            url = f"/api/v2/documents/{reg.document.document_id}/events"
            events = []
            with client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status_code == 200
                assert resp.headers["content-type"].startswith("text/event-stream")
                for line in resp.iter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[len("data: ") :]))
            other = client.get(
                url,
                headers={
                    "Authorization": "Bearer " + mint_token(runtime.settings.jwt_secret, user_id="intruder")
                },
            )
            assert other.status_code == 404
    finally:
        worker.stop()
    reached = [e["stage"] for e in events if e["type"] == "stage_completed"]
    assert reached == [s.value for s in Stage][1:], reached
    ids = [e["event_id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
