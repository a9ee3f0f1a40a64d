"""The API routes the dashboard reads, over a real API server and worker on loopback:
``GET /documents`` filters and total, ``POST /auth/local``, CORS, the user-wide ``GET /events``
stream, a document's chunks and timeline, ``GET /summary``, ``POST /documents/{id}/download``."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from docingest.settings import Settings
from tests.e2e.client import API, ApiClient, token
from tests.e2e.conftest import SECRET, running_api

pytestmark = pytest.mark.e2e

DASHBOARD_ORIGIN = "http://dashboard.example:5173"


def _md(title: str, words: int = 80) -> bytes:
    body = " ".join(f"{title.lower()}-word{i}" for i in range(words))
    return f"# {title}\n\n{body}\n".encode()


def _upload(client: ApiClient, data: bytes, *, filename: str, source: str | None = None) -> str:
    reply = client.request_upload(data, filename=filename, source=source)
    assert reply.status_code == 201, reply.text
    ticket = reply.json()
    assert client.put(ticket, data).status_code in (200, 201)
    return str(ticket["document_id"])


@pytest.fixture
def user(api: tuple[str, Settings]) -> Iterator[ApiClient]:
    """A client of a new user of the module's API."""
    client = ApiClient(api[0], token(SECRET, f"dash-{uuid.uuid4().hex[:8]}"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def dev_api(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """An API in development with CORS for one origin (no worker)."""
    with running_api(
        pg_url,
        tmp_path_factory.mktemp("dev-api"),
        with_worker=False,
        environment="development",
        cors_origins=DASHBOARD_ORIGIN,
    ) as stack:
        yield stack


# --- GET /documents ------------------------------------------------------------------------
def test_documents_are_filtered_by_state_and_name_with_the_total_of_every_match(user: ApiClient) -> None:
    ids = {name: _upload(user, _md(name), filename=f"{name}.md") for name in ("Harbour_log", "harbourXlog")}
    failed = user.request_upload(b"%PDF-1.4 not really", filename="broken.pdf", mime="application/pdf")
    assert failed.status_code == 201
    assert user.put(failed.json(), b"%PDF-1.4 not really").status_code in (200, 201)
    for doc_id in ids.values():
        assert user.wait_document(doc_id)["state"] == "done"
    assert user.wait_document(failed.json()["document_id"])["state"] == "failed"

    page = user.http.get(f"{API}/documents", params={"limit": 2}).json()
    assert page["total"] == 3 and len(page["documents"]) == 2 and (page["limit"], page["offset"]) == (2, 0)
    assert page["documents"][0]["filename"] == "broken.pdf"  # newest first
    assert user.http.get(f"{API}/documents", params={"limit": 2, "offset": 2}).json()["total"] == 3

    done = user.http.get(f"{API}/documents", params={"state": "done"}).json()
    assert done["total"] == 2 and {d["document_id"] for d in done["documents"]} == set(ids.values())
    both = user.http.get(f"{API}/documents", params=[("state", "done"), ("state", "failed")]).json()
    assert both["total"] == 3
    failed_page = user.http.get(f"{API}/documents", params={"state": "failed"}).json()
    assert [d["error_code"] for d in failed_page["documents"]] == ["pdf_corrupt"]

    literal = user.http.get(f"{API}/documents", params={"q": "HARBOUR_"}).json()
    assert [d["document_id"] for d in literal["documents"]] == [ids["Harbour_log"]] and literal["total"] == 1
    assert user.http.get(f"{API}/documents", params={"q": "harbour"}).json()["total"] == 2
    assert user.http.get(f"{API}/documents", params={"q": "harbour", "state": "failed"}).json()["total"] == 0

    bad = user.http.get(f"{API}/documents", params={"state": "stalled"})
    assert bad.status_code == 422 and bad.json()["error_code"] == "invalid_request"


# --- POST /auth/local ----------------------------------------------------------------------
def test_the_local_user_signs_in_with_one_request_in_development_on_loopback(
    dev_api: tuple[str, Settings],
) -> None:
    base, _ = dev_api
    reply = httpx.post(f"{base}{API}/auth/local")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["token_type"] == "bearer" and body["user_id"] == "local" and body["expires_in"] > 0
    local = ApiClient(base, body["access_token"])
    try:
        listed = local.http.get(f"{API}/documents")
        assert listed.status_code == 200 and listed.json()["total"] == 0
    finally:
        local.close()
    # through a proxy the loopback peer says nothing about the client: the route is not there
    proxied = httpx.post(f"{base}{API}/auth/local", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 404 and proxied.json()["error_code"] == "not_found"


def test_outside_development_the_local_sign_in_is_an_unknown_route(api: tuple[str, Settings]) -> None:
    base, settings = api
    assert settings.environment == "test"
    reply = httpx.post(f"{base}{API}/auth/local")
    unknown = httpx.post(f"{base}{API}/auth/nowhere")
    assert reply.status_code == unknown.status_code == 404
    assert reply.json() == {"error_code": "not_found", "message": f"no such resource: POST {API}/auth/local"}
    assert unknown.json()["message"] == f"no such resource: POST {API}/auth/nowhere"


# --- CORS ------------------------------------------------------------------------------------
def test_cors_lets_the_configured_origin_call_the_api_and_no_other(
    dev_api: tuple[str, Settings], api: tuple[str, Settings]
) -> None:
    base, _ = dev_api
    preflight = httpx.options(
        f"{base}{API}/documents",
        headers={
            "Origin": DASHBOARD_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, last-event-id",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == DASHBOARD_ORIGIN
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "last-event-id" in allowed
    # an actual request (a refusal too) carries the header, so the page can read the error
    refused = httpx.get(f"{base}{API}/documents", headers={"Origin": DASHBOARD_ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == DASHBOARD_ORIGIN
    # the storage service, for the PUT of a signed upload from the page
    put_preflight = httpx.options(
        f"{base}/storage/v1/object/upload/sign/documents/x",
        headers={
            "Origin": DASHBOARD_ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type, x-upsert",
        },
    )
    assert put_preflight.status_code == 200
    assert put_preflight.headers["access-control-allow-origin"] == DASHBOARD_ORIGIN

    other = httpx.options(
        f"{base}{API}/documents",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in other.headers
    # off by default
    default_base, _ = api
    off = httpx.get(f"{default_base}{API}/health", headers={"Origin": DASHBOARD_ORIGIN})
    assert "access-control-allow-origin" not in off.headers


# --- GET /events ----------------------------------------------------------------------------
def _messages(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """SSE messages as ``{"event", "id"?, "data"}`` from a stream's lines."""
    message: dict[str, Any] = {}
    for line in lines:
        if not line:
            if "data" in message:
                yield message
            message = {}
        elif line.startswith("data: "):
            message["data"] = json.loads(line[len("data: ") :])
        elif line.startswith("event: "):
            message["event"] = line[len("event: ") :]
        elif line.startswith("id: "):
            message["id"] = int(line[len("id: ") :])


class StreamReader(threading.Thread):
    """Reads a user's ``GET /events`` until a ``document`` message says ``until`` is done."""

    def __init__(self, client: ApiClient, **params: Any) -> None:
        super().__init__(daemon=True)
        self.client, self.params = client, params
        self.until: str | None = None
        self.messages: list[dict[str, Any]] = []
        self.opened = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.client.http.stream("GET", f"{API}/events", params=self.params) as reply:
                assert reply.status_code == 200 and reply.headers["content-type"].startswith(
                    "text/event-stream"
                )
                self.opened.set()
                for message in _messages(reply.iter_lines()):
                    self.messages.append(message)
                    data = message["data"]
                    if (
                        message.get("event") == "document"
                        and data["document_id"] == self.until
                        and data["state"] in ("done", "failed")
                    ):
                        return
        except (httpx.HTTPError, AssertionError) as exc:  # reported by the test
            self.error = exc
            self.opened.set()


def test_one_stream_per_user_brings_every_event_and_progress_to_complete_and_nothing_of_others(
    api: tuple[str, Settings],
) -> None:
    base, _ = api
    ana = ApiClient(base, token(SECRET, f"ana-{uuid.uuid4().hex[:6]}"))
    bo = ApiClient(base, token(SECRET, f"bo-{uuid.uuid4().hex[:6]}"))
    readers = [StreamReader(ana), StreamReader(bo)]
    try:
        for reader in readers:
            reader.start()
            assert reader.opened.wait(30) and reader.error is None, reader.error
        time.sleep(0.3)  # the stream starts after the newest event: let its first poll pass
        readers[0].until = _upload(ana, _md("Ana's harbour", words=600), filename="ana.md")
        readers[1].until = _upload(bo, _md("Bo's lighthouse", words=600), filename="bo.md")
        for reader in readers:
            reader.join(120)
            assert not reader.is_alive() and reader.error is None, reader.error
    finally:
        ana.close()
        bo.close()
    for reader in readers:
        ids = {m["data"]["document_id"] for m in reader.messages}
        assert ids == {reader.until}, ids  # its user's document only
        events = [m for m in reader.messages if "id" in m]
        assert [m["data"]["stage"] for m in events if m["event"] == "stage_completed"][-1] == "complete"
        assert all(m["data"]["event_id"] == m["id"] and m["event"] == m["data"]["type"] for m in events)
        views = [m["data"] for m in reader.messages if m["event"] == "document"]
        assert all("id" not in m for m in reader.messages if m["event"] == "document")
        assert views[-1]["state"] == "done" and views[-1]["stage"] == "complete" and views[-1]["chunks"] > 0
        assert "working" in {v["state"] for v in views}  # polls see it between its events
        embedded = [v["progress"].get("chunks_embedded") for v in views if v["progress"].get("chunks_total")]
        assert embedded and embedded[-1] == views[-1]["progress"]["chunks_total"]

    # Last-Event-ID resumes: the events after the one named, nothing before it
    first, *later = [m for m in readers[0].messages if "id" in m]
    resumed = StreamReader(ApiClient(base, ana.http.headers["authorization"].split()[1]))
    resumed.until = "no such document"  # read until the last event, then stop
    got: list[int] = []
    with resumed.client.http.stream(
        "GET", f"{API}/events", headers={"Last-Event-ID": str(first["id"])}
    ) as reply:
        for message in _messages(reply.iter_lines()):
            if "id" in message:
                got.append(message["id"])
                if message["id"] == later[-1]["id"]:
                    break
    resumed.client.close()
    assert got == [m["id"] for m in later]


def test_the_event_stream_needs_a_token(api: tuple[str, Settings]) -> None:
    reply = httpx.get(f"{api[0]}{API}/events")
    assert reply.status_code == 401 and reply.json()["error_code"] == "invalid_token"
