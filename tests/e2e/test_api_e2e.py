"""End to end over real HTTP: uvicorn on loopback, a worker process, the embedded Postgres.

For each storage backend (local, supabase against the local storage service, s3 against
moto's server): request an upload, PUT the bytes to ``signed_url``, poll the document
until ``complete``, find it with ``GET /search``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from docingest.providers.storage import make_storage, parsed_key, raw_key
from docingest.providers.storage.signing import mint_service_key
from tests.conftest import make_settings
from tests.e2e.client import API, ApiClient, token
from tests.e2e.conftest import SECRET, running_api
from tests.e2e.servers import api_server, free_port, moto_server, storage_server, worker

pytestmark = pytest.mark.e2e

DOC = (
    b"# Lighthouse keeping\n\nThe keeper of the Skerryvore lighthouse trimmed the paraffin lamp "
    b"every four hours and logged the barometer readings.\n\n## Fog signals\n\nIn fog the keeper "
    b"sounded the diaphone twice a minute.\n"
)


def _stack(backend: str, db_url: str, tmp: Path) -> Iterator[dict[str, Any]]:
    common: dict[str, Any] = {"jwt_secret": SECRET, "api_port": free_port(), "upload_sweep_seconds": 0.5}
    with ExitStack() as stack:
        if backend == "supabase":
            store_settings = make_settings(db_url, tmp / "storage-data", **common)
            url = stack.enter_context(storage_server(store_settings, tmp))
            common.update(
                storage_backend="supabase", storage_url=url, storage_service_key=mint_service_key(SECRET)
            )
        elif backend == "supabase-compose":
            # As compose.yaml sets it up: no service key (one is signed with the shared JWT
            # secret), and clients reach the storage service by another address than the
            # workers do (STORAGE_PUBLIC_URL).
            store_settings = make_settings(db_url, tmp / "storage-data", **common)
            url = stack.enter_context(storage_server(store_settings, tmp))
            common.update(
                storage_backend="supabase",
                storage_url=url,
                storage_public_url=url.replace("127.0.0.1", "localhost"),
            )
        elif backend == "s3":
            import boto3

            endpoint = stack.enter_context(moto_server(tmp))
            boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            ).create_bucket(Bucket="documents")
            common.update(
                storage_backend="s3",
                storage_url=endpoint,
                storage_access_key_id="testing",
                storage_secret_access_key="testing",
            )
        settings = make_settings(db_url, tmp / "data", **common)
        base = stack.enter_context(api_server(settings, tmp))
        stack.enter_context(worker(settings, tmp))
        yield {"base": base, "settings": settings, "backend": backend}


@pytest.fixture(params=["local", "supabase", "supabase-compose", "s3"])
def stack(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield from _stack(request.param, db_url, tmp_path)


def test_upload_put_poll_search(stack: dict[str, Any]) -> None:
    client = ApiClient(stack["base"], token(SECRET, "alice"))
    try:
        ready = client.http.get("/ready")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "storage": "ok"}
        reply = client.request_upload(DOC, filename="keeper's log.md", source="logs/keeper", meta={"k": "v"})
        assert reply.status_code == 201, reply.text
        ticket = reply.json()
        assert ticket["state"] == "waiting" and ticket["signed_url"]
        if stack["backend"] == "supabase-compose":
            assert ticket["signed_url"].startswith(
                stack["settings"].storage_public_url + "/object/upload/sign/"
            )
        assert ticket["upload_expires_at"]
        put = client.put(ticket, DOC)
        assert put.status_code == 200, put.text
        # S3 and Supabase do not call us back: with Supabase the client says it is done; with
        # S3 it does not, and the sweep (API and worker) finds the object.
        if stack["backend"].startswith("supabase"):
            done = client.http.post(f"{API}/upload/{ticket['job_id']}/complete")
            assert done.status_code == 200, done.text
            assert done.json()["state"] in ("queued", "working", "done")
        doc = client.wait_document(ticket["document_id"])
        assert (doc["stage"], doc["state"]) == ("complete", "done"), doc
        assert doc["chunks"] >= 1 and doc["filename"] == "keeper's log.md"
        assert (doc["source"], doc["meta"], doc["serving_document_id"]) == (
            "logs/keeper",
            {"k": "v"},
            doc["document_id"],
        )
        listed = client.http.get(f"{API}/documents").json()["documents"]
        assert [(d["document_id"], d["chunks"]) for d in listed] == [(ticket["document_id"], doc["chunks"])]
        found = client.http.get(f"{API}/search", params={"q": "diaphone fog signal", "k": 3})
        assert found.status_code == 200, found.text
        results = found.json()["results"]
        assert results and results[0]["document_id"] == ticket["document_id"]
        assert results[0]["source"] == "logs/keeper"
        again = client.request_upload(DOC, filename="copy.md", source="logs/keeper")
        assert again.status_code == 200 and again.json()["document_id"] == ticket["document_id"]
        assert again.json()["job_id"] == ticket["job_id"] and again.json()["signed_url"] is None
        # Delete: rows and every object (original, parsed text, page map) are gone.
        storage = make_storage(stack["settings"])
        doc_id = uuid.UUID(ticket["document_id"])
        keys = [
            raw_key("alice", doc_id, "md"),
            parsed_key("alice", doc_id),
            parsed_key("alice", doc_id, "json"),
        ]
        assert all(storage.head(k) is not None for k in keys)
        assert client.http.delete(f"{API}/documents/{doc_id}").status_code == 204
        assert all(storage.head(k) is None for k in keys)
        assert client.http.get(f"{API}/documents/{doc_id}").status_code == 404
    finally:
        client.close()


def test_storage_down_answers_503_and_ready_names_it(pg_url: str, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/storage/v1"
    with running_api(
        pg_url,
        tmp_path,
        with_worker=False,
        storage_backend="supabase",
        storage_url=dead,
        storage_service_key=mint_service_key(SECRET),
    ) as (base, _):
        client = ApiClient(base, token(SECRET, "ivy"))
        ready = client.http.get("/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] == "ok"
        assert ready.json()["checks"]["storage"].startswith("error")
        reply = client.request_upload(DOC)
        assert reply.status_code == 503 and reply.json()["error_code"] == "storage_unavailable"
        client.close()
