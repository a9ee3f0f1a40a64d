"""Two concurrent ``POST /upload`` of the same bytes under one source make one document (race-safe)."""

from __future__ import annotations

import threading

import httpx
import pytest

from docingest.settings import Settings
from tests.e2e.client import API, ApiClient, token
from tests.e2e.conftest import SECRET

pytestmark = pytest.mark.e2e


def test_concurrent_uploads_of_the_same_bytes_under_one_source_make_one_document(
    api: tuple[str, Settings],
) -> None:
    base, _ = api
    user = "grace-dedupe"
    clients = [ApiClient(base, token(SECRET, user)) for _ in range(2)]
    for round_ in range(4):  # the limit of active jobs is 5 in this module
        data = f"# Round {round_}\n\nthe same bytes sent twice at once\n".encode()
        barrier = threading.Barrier(len(clients))
        replies: list[httpx.Response] = []

        def send(
            client: ApiClient, barrier: threading.Barrier, replies: list[httpx.Response], data: bytes
        ) -> None:
            barrier.wait()
            replies.append(client.request_upload(data, source=f"rounds/{data[8:9].decode()}"))

        threads = [threading.Thread(target=send, args=(c, barrier, replies, data)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(r.status_code for r in replies) == [200, 201], [r.text for r in replies]
        assert len({r.json()["document_id"] for r in replies}) == 1
        assert len({r.json()["job_id"] for r in replies}) == 1
    listed = clients[0].http.get(f"{API}/documents").json()["documents"]
    assert len(listed) == 4
    for c in clients:
        c.close()
