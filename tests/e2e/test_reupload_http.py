"""Asking again for the upload of bytes whose upload was refused or expired, over real HTTP.

A document is a version of its source, so ``POST /upload`` of the same SHA-256 under the same
``source`` answers the existing document. Before, a refused upload was a dead end: the reply had no
signed URL (or one for the wrong size), ``POST /jobs/{id}/retry`` kept the wrong declared
size, and only deleting the document helped. Now the request re-arms the upload with its own
declaration (``200``, ``reupload: true``, a fresh ``signed_url``), and the document completes.

One API server (uvicorn, local storage, 4 s signed URLs, no grace) and one ``docingest
worker`` process serve the module; each test is its own user.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from docingest.runtime import Runtime
from docingest.settings import Settings
from tests.e2e.client import API, ApiClient, token
from tests.e2e.conftest import SECRET, running_api
from tests.fixtures.make_bad_inputs import generate

pytestmark = pytest.mark.e2e


def _source(data: bytes) -> str:
    """The source a client names for ``data``: a re-request of the same bytes under it is the
    same document (without one, every request is a new document)."""
    return "manuals/" + hashlib.sha256(data).hexdigest()[:16]


TTL = 4

DOC = (
    b"# Tide gauges\n\nThe harbour's tide gauge is read at every high and low water, and the "
    b"readings are posted on the board beside the pilot station.\n"
)


@pytest.fixture(scope="module")
def api(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    with running_api(
        pg_url, tmp_path_factory.mktemp("reupload"), upload_url_ttl_seconds=TTL, upload_grace_seconds=0.0
    ) as stack:
        yield stack


def _doc(text: str) -> bytes:
    return DOC + f"\n{text}\n".encode()


def _reupload(client: ApiClient, data: bytes, ticket: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Ask again for the upload of ``data``: the same document and job, waiting, a fresh URL."""
    reply = client.request_upload(data, **{"source": _source(data), **kwargs})
    assert reply.status_code == 200, reply.text
    again: dict[str, Any] = reply.json()
    assert (again["document_id"], again["job_id"]) == (ticket["document_id"], ticket["job_id"])
    assert again["created"] is False and again["reupload"] is True
    assert again["state"] == "waiting" and again["signed_url"] and again["upload_expires_at"]
    return again


def _complete(client: ApiClient, ticket: dict[str, Any], data: bytes) -> dict[str, Any]:
    put = client.put(ticket, data)
    assert put.status_code == 200, put.text
    doc = client.wait_document(ticket["document_id"])
    assert (doc["stage"], doc["state"], doc["error_code"]) == ("complete", "done", None), doc
    assert doc["chunks"] >= 1 and doc["bytes_len"] == len(data)
    return doc


def test_put_refused_for_its_size_then_a_request_with_the_right_size_completes(
    api: tuple[str, Settings],
) -> None:
    base, _ = api
    client = ApiClient(base, token(SECRET, "reupload-size"))
    data = _doc("size")
    try:
        reply = client.request_upload(
            data, source=_source(data), filename="tides.md", bytes_len=len(data) - 10
        )
        assert reply.status_code == 201, reply.text
        ticket = reply.json()
        put = client.put(ticket, data)
        assert put.status_code == 413 and put.json()["error_code"] == "size_mismatch", put.text
        assert "real bytes_len" in put.json()["message"]
        # The same declaration again: still the old size, so nothing is re-declared.
        same = client.request_upload(
            data, source=_source(data), filename="tides.md", bytes_len=len(data) - 10
        )
        assert same.status_code == 200 and same.json()["reupload"] is False and same.json()["signed_url"]
        again = _reupload(client, data, ticket, filename="tides (fixed).md")
        doc = _complete(client, again, data)
        assert doc["filename"] == "tides (fixed).md"
        types = [e["type"] for e in client.events(ticket["document_id"])]
        assert types.count("reupload_requested") == 1 and types.count("upload_received") == 1
    finally:
        client.close()


def test_an_expired_upload_requested_again_completes(api: tuple[str, Settings]) -> None:
    base, _ = api
    client = ApiClient(base, token(SECRET, "reupload-expired"))
    data = _doc("expired")
    try:
        reply = client.request_upload(data, source=_source(data))
        assert reply.status_code == 201, reply.text
        ticket = reply.json()
        doc = client.wait_document(ticket["document_id"], timeout=TTL + 30)  # the sweep expires it
        assert (doc["stage"], doc["state"], doc["error_code"]) == ("uploaded", "failed", "upload_expired")
        again = _reupload(client, data, ticket)
        assert again["signed_url"] != ticket["signed_url"]
        _complete(client, again, data)
        reupload = [e for e in client.events(ticket["document_id"]) if e["type"] == "reupload_requested"]
        assert [e["payload"]["previous_error_code"] for e in reupload] == ["upload_expired"]
    finally:
        client.close()


def test_simultaneous_requests_rearm_one_job(api: tuple[str, Settings]) -> None:
    base, settings = api
    clients = [ApiClient(base, token(SECRET, "reupload-race")) for _ in range(3)]
    data = _doc("race")
    try:
        ticket = clients[0].request_upload(data, source=_source(data)).json()
        clients[0].wait_document(ticket["document_id"], timeout=TTL + 30)  # failed upload_expired
        barrier = threading.Barrier(len(clients))
        replies: list[httpx.Response] = []

        def send(client: ApiClient) -> None:
            barrier.wait()
            replies.append(client.request_upload(data, source=_source(data)))

        threads = [threading.Thread(target=send, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert [r.status_code for r in replies] == [200] * len(clients), [r.text for r in replies]
        bodies = [r.json() for r in replies]
        assert {(b["job_id"], b["state"]) for b in bodies} == {(ticket["job_id"], "waiting")}
        assert sum(b["reupload"] for b in bodies) == 1  # the others found it waiting
        rt = Runtime(settings, migrate=False)
        try:
            with rt.pool().connection() as conn:
                jobs = conn.execute(
                    "SELECT state FROM upload_pipeline.upload_jobs WHERE document_id = %s",
                    (uuid.UUID(ticket["document_id"]),),
                ).fetchall()
        finally:
            rt.close()
        assert [j["state"] for j in jobs] == ["waiting"]
        first, *others = bodies
        _complete(clients[0], first, data)
        assert all(clients[0].put(b, data).status_code == 409 for b in others)  # stored once
    finally:
        for c in clients:
            c.close()


def test_a_type_refused_by_the_worker_completes_when_requested_with_the_real_type(
    api: tuple[str, Settings],
) -> None:
    """HTML declared a PDF: the worker refuses it (``content_type_mismatch``) and deletes it;
    asked for again as HTML, the same document takes the new type and completes."""
    base, _ = api
    client = ApiClient(base, token(SECRET, "reupload-type"))
    data = (
        b"<!DOCTYPE html><html><head><title>Pilotage</title></head><body><h1>Pilotage</h1>"
        b"<p>Pilots board inbound ships two miles off the breakwater light.</p></body></html>\n"
    )
    try:
        ticket = client.request_upload(
            data, source=_source(data), filename="pilotage.pdf", mime="application/pdf"
        ).json()
        assert client.put(ticket, data).status_code == 200
        doc = client.wait_document(ticket["document_id"])
        assert (doc["stage"], doc["state"], doc["error_code"]) == (
            "uploaded",
            "failed",
            "content_type_mismatch",
        )
        again = _reupload(client, data, ticket, filename="pilotage.html", mime="text/html")
        assert again["upload_headers"]["content-type"] == "text/html"
        doc = _complete(client, again, data)
        assert (doc["filename"], doc["mime"]) == ("pilotage.html", "text/html")
    finally:
        client.close()


def test_a_document_failed_after_its_bytes_were_accepted_is_answered_as_it_is(
    api: tuple[str, Settings], tmp_path: Path
) -> None:
    """Undecodable text fails at parsing: its bytes were accepted, a new request changes
    nothing (no URL); ``POST /jobs/{id}/retry`` is the way to run it again."""
    base, _ = api
    client = ApiClient(base, token(SECRET, "reupload-parsed"))
    data = generate(tmp_path, {"undecodable.txt"})["undecodable.txt"].read_bytes()
    try:
        ticket = client.request_upload(
            data, source=_source(data), filename="noise.txt", mime="text/plain"
        ).json()
        assert client.put(ticket, data).status_code == 200
        doc = client.wait_document(ticket["document_id"])
        assert (doc["state"], doc["error_code"]) == ("failed", "document_corrupt") and doc[
            "stage"
        ] != "uploaded"
        reply = client.request_upload(data, source=_source(data), filename="noise.txt", mime="text/plain")
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert (body["job_id"], body["state"], body["signed_url"], body["reupload"]) == (
            ticket["job_id"],
            "failed",
            None,
            False,
        )
        assert client.http.get(f"{API}/documents/{ticket['document_id']}").json()["state"] == "failed"
    finally:
        client.close()
