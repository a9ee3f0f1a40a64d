"""The API routes the dashboard reads, over a real API server and worker on loopback:
``GET /documents`` filters and total, ``POST /auth/local``, CORS, the user-wide ``GET /events``
stream, a document's chunks and timeline, ``GET /summary``, ``POST /documents/{id}/download``."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from docingest.providers.storage import Storage, make_storage
from docingest.providers.storage.signing import mint_service_key
from docingest.settings import Settings
from tests.e2e.client import API, ApiClient, token
from tests.e2e.conftest import SECRET, running_api
from tests.e2e.servers import moto_server, storage_server

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
    assert httpx.get(f"{base}{API}/auth/local").status_code == 404  # not 405: no such route at all
    assert "/api/v2/auth/local" not in httpx.get(f"{base}/openapi.json").json()["paths"]


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
        ids = {m["data"]["document_id"] for m in reader.messages if m["event"] != "documents_changed"}
        assert ids == {reader.until}, ids  # its user's document only
        # its user's list grew by one (said unless the first poll ran after the upload's request)
        changed = [m["data"] for m in reader.messages if m["event"] == "documents_changed"]
        assert changed in ([], [{"total": 1}]), changed
        events = [m for m in reader.messages if "id" in m]
        assert [m["data"]["stage"] for m in events if m["event"] == "stage_completed"][-1] == "complete"
        assert all(m["data"]["event_id"] == m["id"] and m["event"] == m["data"]["type"] for m in events)
        views = [m["data"] for m in reader.messages if m["event"] == "document"]
        assert all("id" not in m for m in reader.messages if m["event"] == "document")
        assert views[-1]["state"] == "done" and views[-1]["stage"] == "complete" and views[-1]["chunks"] > 0
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


def test_a_document_deleted_elsewhere_tells_the_stream_the_list_changed(user: ApiClient) -> None:
    """A done document the stream never saw in flight, deleted by another client: no
    ``document_deleted``, a ``documents_changed`` with the new total."""
    old = _upload(user, _md("Old notes"), filename="old.md")
    assert user.wait_document(old)["state"] == "done"
    tab = StreamReader(ApiClient(str(user.http.base_url), user.http.headers["authorization"].split()[1]))
    tab.until = "never"  # read on until the client closes
    tab.start()
    assert tab.opened.wait(30) and tab.error is None, tab.error
    new = _upload(user, _md("New notes"), filename="new.md")
    deadline = time.monotonic() + 60

    def wait_for(event: str, **data: Any) -> None:
        while not any(
            m["event"] == event and all(m["data"].get(k) == v for k, v in data.items()) for m in tab.messages
        ):
            assert time.monotonic() < deadline and tab.error is None, tab.messages
            time.sleep(0.05)

    wait_for("document", document_id=new, state="done")  # the stream has polled since both exist
    assert user.http.delete(f"{API}/documents/{old}").status_code == 204  # "another tab"
    wait_for("documents_changed", total=1)
    time.sleep(1)  # a few more polls: nothing else about the deleted document comes
    tab.client.close()
    assert not any(m["data"].get("document_id") == old for m in tab.messages), tab.messages
    changed = [m["data"] for m in tab.messages if m["event"] == "documents_changed"]
    assert changed[-1] == {"total": 1} and changed.count({"total": 1}) == 1, changed


def test_the_event_stream_needs_a_token(api: tuple[str, Settings]) -> None:
    reply = httpx.get(f"{api[0]}{API}/events")
    assert reply.status_code == 401 and reply.json()["error_code"] == "invalid_token"


def _read_until_it_ends(client: ApiClient, path: str) -> list[str] | None:
    """The lines of the stream at ``path``, or None if it is still open after 60 s."""
    lines: list[str] = []
    ended = threading.Event()

    def read() -> None:
        with client.http.stream("GET", path, timeout=httpx.Timeout(30, read=None)) as reply:
            assert reply.status_code == 200, reply.read()
            lines.extend(reply.iter_lines())
        ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(60)
    return lines if ended.is_set() else None


@pytest.mark.parametrize("stream", ["user", "document"])
def test_the_event_stream_ends_when_its_token_expires_and_the_reconnect_is_refused(
    dev_api: tuple[str, Settings], stream: str
) -> None:
    """A token of 3 s: the stream ends (bounded by a 60 s join, far below SSE_MAX_SECONDS=300
    with keep-alives every 15 s that would hold it open; no worker, so the document's job never
    ends), and reconnecting with it is a 401."""
    base, settings = dev_api
    assert settings.sse_max_seconds >= 300
    user_id = f"exp-{uuid.uuid4().hex[:6]}"
    path = f"{API}/events"
    if stream == "document":
        owner = ApiClient(base, token(SECRET, user_id))
        path = f"{API}/documents/{_upload(owner, _md('Waiting'), filename='w.md')}/events"
        owner.close()
    client = ApiClient(base, token(SECRET, user_id, ttl_seconds=3))
    try:
        lines = _read_until_it_ends(client, path)
        assert lines is not None and lines[0] == "retry: 2000", lines
        time.sleep(1.1)  # exp has whole seconds: step past it
        again = client.http.get(path)
        assert again.status_code == 401 and again.json()["error_code"] == "invalid_token"
        assert "expired" in again.json()["message"]
    finally:
        client.close()


# --- a document's chunks and timeline ----------------------------------------------------------
def test_a_documents_chunks_and_timeline(user: ApiClient, api: tuple[str, Settings]) -> None:
    sections = "\n\n".join(
        f"## Watch {i}\n\n" + " ".join(f"watch{i}-w{j}" for j in range(120)) for i in range(5)
    )
    data = f"# Night watches\n\n{sections}\n".encode()
    waiting = user.request_upload(_md("Never sent"), filename="never.md").json()["document_id"]
    empty = user.http.get(f"{API}/documents/{waiting}/chunks").json()
    assert empty == {"chunks": [], "total": 0, "limit": 50, "offset": 0}

    doc_id = _upload(user, data, filename="watches.md")
    assert user.wait_document(doc_id)["state"] == "done"
    listed = user.http.get(f"{API}/documents/{doc_id}/chunks", params={"limit": 500}).json()
    chunks = listed["chunks"]
    assert listed["total"] == len(chunks) >= 5 and [c["ordinal"] for c in chunks] == list(range(len(chunks)))
    assert {c["heading_path"][-1] for c in chunks if c["heading_path"]} >= {f"Watch {i}" for i in range(5)}
    assert all(c["page"] is None and c["token_count"] > 0 for c in chunks)  # Markdown has no pages
    page = user.http.get(f"{API}/documents/{doc_id}/chunks", params={"limit": 2, "offset": 1}).json()
    assert [c["chunk_id"] for c in page["chunks"]] == [c["chunk_id"] for c in chunks[1:3]]

    timeline = user.http.get(f"{API}/documents/{doc_id}/timeline").json()
    assert timeline["document_id"] == doc_id and not timeline["truncated"]
    types = [e["type"] for e in timeline["events"]]
    assert types[0] == "job_created" and "upload_received" in types and types.count("stage_completed") == 9
    stages = timeline["stages"]
    assert stages[0]["stage"] == "uploaded" and stages[-1]["reached"] == "complete" and len(stages) == 9
    assert all(s["seconds"] >= 0 and s["attempts"] == 1 and s["retries"] == 0 for s in stages)

    stranger = ApiClient(api[0], token(SECRET, "stranger"))
    try:
        for path in ("chunks", "timeline"):
            reply = stranger.http.get(f"{API}/documents/{doc_id}/{path}")
            assert reply.status_code == 404 and reply.json()["error_code"] == "not_found"
    finally:
        stranger.close()


# --- GET /summary ------------------------------------------------------------------------------
def test_the_summary_shows_the_users_queue_and_failures_and_the_installations_workers(
    user: ApiClient, api: tuple[str, Settings]
) -> None:
    doc_id = _upload(user, _md("Tide tables"), filename="tides.md")
    bad = user.request_upload(b"%PDF-1.4 no", filename="bad.pdf", mime="application/pdf").json()
    assert user.put(bad, b"%PDF-1.4 no").status_code in (200, 201)
    assert user.wait_document(doc_id)["state"] == "done"
    assert user.wait_document(bad["document_id"])["state"] == "failed"

    got = user.http.get(f"{API}/summary").json()
    assert got["user_id"].startswith("dash-")
    assert {(j["stage"], j["state"], j["count"]) for j in got["jobs"]} == {
        ("complete", "done", 1),
        ("parse_queued", "failed", 1),  # a corrupt PDF fails parsing
    }
    [failure] = got["failures"]
    assert failure["error_code"] == "pdf_corrupt" and failure["count"] == 1 and failure["message"]
    assert got["workers"] and all(w["worker_id"].count(":") >= 2 for w in got["workers"])
    assert got["embedder"]["provider"] == "hashing" and got["embedder"]["dimensions"] == 384
    assert got["generations"][0]["chunks"] > 0

    stranger = ApiClient(api[0], token(SECRET, f"stranger-{uuid.uuid4().hex[:6]}"))
    try:
        theirs = stranger.http.get(f"{API}/summary").json()
    finally:
        stranger.close()
    assert theirs["jobs"] == [] and theirs["failures"] == [] and theirs["generations"] == []
    assert theirs["workers"] and theirs["embedder"] == got["embedder"]  # installation facts


# --- POST /documents/{id}/download ---------------------------------------------------------------
def test_a_download_is_a_short_lived_signed_url_of_the_original_saved_under_its_name(
    user: ApiClient, api: tuple[str, Settings]
) -> None:
    data = _md("Ship's manifest")
    doc_id = _upload(user, data, filename="Ship's manifest été.md")
    user.wait_document(doc_id)
    before = time.time()
    reply = user.http.post(f"{API}/documents/{doc_id}/download")
    assert reply.status_code == 200, reply.text
    ticket = reply.json()
    assert ticket["filename"] == "Ship's manifest été.md"
    expires = datetime.fromisoformat(ticket["expires_at"]).timestamp()
    assert before + 55 <= expires <= time.time() + 61
    got = httpx.get(ticket["signed_url"])  # no Authorization: the URL is the credential
    assert got.status_code == 200 and got.content == data
    disposition = got.headers["content-disposition"]
    assert (
        disposition.startswith("attachment;")
        and quote("Ship's manifest été.md", safe="-_.!~*'()") in disposition
    )
    tampered = httpx.get(ticket["signed_url"].replace("token=", "token=x"))
    assert tampered.status_code in (400, 403)

    waiting = user.request_upload(_md("Never sent either"), filename="never.md").json()["document_id"]
    refused = user.http.post(f"{API}/documents/{waiting}/download")
    assert refused.status_code == 409 and refused.json()["error_code"] == "conflict"
    assert "no stored original" in refused.json()["message"]
    stranger = ApiClient(api[0], token(SECRET, "stranger"))
    try:
        other = stranger.http.post(f"{API}/documents/{doc_id}/download")
        assert other.status_code == 404 and other.json()["error_code"] == "not_found"
    finally:
        stranger.close()


@pytest.fixture(params=["local", "supabase", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """Each backend against its test server on loopback: the local storage service (for local
    and for Supabase's API), moto's S3."""
    with ExitStack() as stack:
        common: dict[str, Any] = {"data_dir": tmp_path / "data", "environment": "test", "jwt_secret": SECRET}
        if request.param == "s3":
            import boto3

            endpoint = stack.enter_context(moto_server(tmp_path))
            keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys).create_bucket(
                Bucket="documents"
            )
            settings = Settings(
                **common,
                storage_backend="s3",
                storage_url=endpoint,
                storage_access_key_id="testing",
                storage_secret_access_key="testing",
            )
        else:
            url = stack.enter_context(storage_server(Settings(**common), tmp_path))
            if request.param == "supabase":
                settings = Settings(
                    **common,
                    storage_backend="supabase",
                    storage_url=url,
                    storage_service_key=mint_service_key(SECRET),
                )
            else:  # the service serves the directory LocalStorage writes, and checks its tokens
                settings = Settings(**common, api_port=int(url.split(":")[2].split("/")[0]))
        backend = make_storage(settings)
        stack.callback(backend.close)
        yield backend


def test_every_storage_backend_presigns_a_download_with_an_attachment_name(
    storage: Storage, tmp_path: Path
) -> None:
    data = b"%PDF-1.4 pretend\n" + bytes(range(256)) * 40
    key = "dash-user/raw/3f0c5d2e-6a7b-4c8d-9e0f-123456789abc.pdf"
    storage.put_stream(key, io.BytesIO(data))
    before = time.time()
    name = "Q3 report – final.pdf"
    signed = storage.presign_download(key, filename=name, expires_in=60)
    assert before + 59 <= signed.expires_at <= time.time() + 61
    got = httpx.get(signed.url)
    assert got.status_code == 200, got.text
    assert got.content == data
    disposition = got.headers["content-disposition"]
    assert disposition.startswith("attachment;") and f"filename*=UTF-8''{quote(name, safe='')}" in disposition
