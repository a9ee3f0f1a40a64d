"""An upload that arrives after its document was deleted leaves no object behind, on every
backend: the local storage service deletes an object no document names as it arrives; the raw
key of a document deleted while its signed URL is valid stays in the object outbox until the URL's
window ends, and the sweep then deletes whatever arrived late (S3/Supabase take the client's PUT
without telling the API)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from docingest.api.app import create_app
from docingest.api.auth import mint_token
from docingest.runtime import Runtime
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

API = "/api/v2"
MD = b"# Late\n\nThe ferry's manifest arrived after the ferry had been struck from the register.\n"


def _outbox(rt: Runtime) -> list[dict[str, Any]]:
    with rt.pool().connection() as conn:
        return conn.execute(
            "SELECT object_key, retain_until > now() AS retained FROM upload_pipeline.object_deletions"
            " ORDER BY object_key"
        ).fetchall()


def _age_outbox(rt: Runtime, *, window_ended: bool) -> None:
    """Move the outbox's clock on instead of sleeping: queued two minutes ago (past the sweep's
    one-minute floor) and, with ``window_ended``, the signed URL's window over."""
    with rt.pool().connection() as conn:
        conn.execute("UPDATE upload_pipeline.object_deletions SET queued_at = now() - interval '2 minutes'")
        if window_ended:
            conn.execute(
                "UPDATE upload_pipeline.object_deletions SET retain_until = now() - interval '1 second'"
            )


def test_a_put_to_the_local_storage_after_the_delete_is_deleted_as_it_arrives(runtime: Runtime) -> None:
    headers = {"Authorization": f"Bearer {mint_token(runtime.settings.jwt_secret, user_id='late')}"}
    with TestClient(create_app(runtime, sweep=False), headers=headers) as client:
        body = {
            "filename": "late.md",
            "mime": "text/markdown",
            "bytes_len": len(MD),
            "sha256": hashlib.sha256(MD).hexdigest(),
        }
        upload = client.post(f"{API}/upload", json=body)
        assert upload.status_code == 201, upload.text
        document_id, signed = upload.json()["document_id"], upload.json()["signed_url"]
        key = f"late/raw/{document_id}.md"
        assert client.delete(f"{API}/documents/{document_id}").status_code == 204
        url = urlsplit(signed)
        put = client.put(
            f"{url.path}?{url.query}",
            content=MD,
            headers={"content-type": "text/markdown", "Authorization": ""},
        )
        assert put.status_code == 200, put.text  # the storage took it (it knows no documents) ...
    assert runtime.storage.head(key) is None  # ... and the API deleted it at once


@pytest.fixture(params=["local", "s3"])
def rt(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    overrides: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "s3":
            import boto3
            import moto

            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                mp.setenv(name, "testing")
            mock = moto.mock_aws()
            mock.start()
            request.addfinalizer(mock.stop)
            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="documents")
            overrides = {
                "storage_backend": "s3",
                "storage_access_key_id": "testing",
                "storage_secret_access_key": "testing",
            }
        runtime = Runtime(make_settings(db_url, tmp_path / "data", **overrides), migrate=False)
        yield runtime
        runtime.close()


def test_a_late_upload_of_a_deleted_document_is_deleted_by_the_sweep_after_the_url_expired(
    rt: Runtime,
) -> None:
    ticket = rt.documents.request_upload(
        "eve",
        filename="late.md",
        bytes_len=len(MD),
        mime="text/markdown",
        sha256=hashlib.sha256(MD).hexdigest(),
        source=None,
    )
    key = ticket.document.raw_path
    rt.documents.delete("eve", ticket.document.document_id)
    # The artifacts' keys are done with; the original's stays while its signed URL is valid.
    assert _outbox(rt) == [{"object_key": key, "retained": True}]
    rt.storage.put_stream(key, io.BytesIO(MD))  # the client's PUT to the signed URL, late
    _age_outbox(rt, window_ended=False)
    assert rt.documents.sweep()["objects_deleted"] == 0  # the URL may still write it: kept
    assert rt.storage.head(key) is not None and [r["object_key"] for r in _outbox(rt)] == [key]
    _age_outbox(rt, window_ended=True)
    assert rt.documents.sweep()["objects_deleted"] == 1
    assert rt.storage.head(key) is None
    assert _outbox(rt) == []


def test_a_file_registered_document_keeps_no_key_in_the_outbox(rt: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "kept.md"
    path.write_bytes(MD)
    registered = rt.documents.register_file(path, user_id="eve")
    rt.documents.delete("eve", registered.document.document_id)
    assert rt.storage.head(registered.document.raw_path) is None
    assert _outbox(rt) == []  # no signed URL was minted: nothing to wait for


def test_a_storage_clients_own_signed_upload_is_not_taken_for_an_orphan(runtime: Runtime) -> None:
    runtime.storage.put_stream("signed/up.pdf", io.BytesIO(b"%PDF-1.4 bytes"))
    runtime.documents.on_stored("signed/up.pdf")  # as the storage service calls it
    assert runtime.storage.head("signed/up.pdf") is not None
