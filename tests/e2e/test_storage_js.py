"""The local storage service driven by Supabase's JavaScript client, ``@supabase/storage-js``,
under node, as a browser or a Node application drives Supabase Storage.

``tests/e2e/node/storage_scenario.mjs`` runs each operation through the client and prints what
the client returned (data, or its ``StorageError``); these tests check every step. node and npm
come from the machine (``.ci/run`` installs Debian's when they are missing); the client is the
version pinned in ``tests/e2e/node/package-lock.json``, installed by ``npm ci`` on first use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from docingest.providers.storage.signing import mint_service_key
from docingest.settings import Settings
from tests.conftest import make_settings, new_database
from tests.e2e.client import ApiClient, token
from tests.e2e.conftest import SECRET, running_api
from tests.e2e.npm import NODE_DIR, pinned_package
from tests.e2e.servers import free_port, storage_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with the pinned client installed under tests/e2e/node (``npm ci``)."""
    pinned_package("@supabase/storage-js")
    node_bin = shutil.which("node")
    assert node_bin is not None
    return node_bin


def run_scenario(node: str, name: str, env: dict[str, str]) -> dict[str, Any]:
    """Run one scenario of storage_scenario.mjs; its JSON output, ``{step: {data, error}}``."""
    done = subprocess.run(
        [node, "storage_scenario.mjs", name],
        cwd=NODE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"node failed:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def anon_key(secret: str) -> str:
    """A Supabase-style anon key: a JWT with ``role: anon`` and no user."""
    now = int(time.time())
    return jwt.encode({"iss": "docingest", "role": "anon", "iat": now, "exp": now + 3600}, secret, "HS256")


@pytest.fixture(scope="module")
def objects_run(node: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The ``objects`` scenario against ``docingest storage`` alone (run once, checked by each test)."""
    tmp = tmp_path_factory.mktemp("storage-js")
    settings = make_settings(new_database(pg_url), tmp / "data", jwt_secret=SECRET, api_port=free_port())
    with storage_server(settings, tmp) as url:
        return run_scenario(
            node,
            "objects",
            {
                "STORAGE_URL": url,
                "SERVICE_KEY": mint_service_key(SECRET),
                "ANON_KEY": anon_key(SECRET),
                "BUCKET": settings.storage_bucket,
            },
        )


def ok(results: dict[str, Any], step: str) -> Any:
    """The data of a step that must have succeeded."""
    assert step in results, f"step {step} did not run"
    assert results[step]["error"] is None, f"{step}: {results[step]['error']}"
    return results[step]["data"]


def failed(results: dict[str, Any], step: str, status_code: str, code: str | None = None) -> dict[str, Any]:
    """The client's error of a step that must have failed with Supabase's ``statusCode`` (and ``code``).

    The client builds its ``StorageApiError`` from the error body ({statusCode, error, message}):
    a body it cannot parse would leave ``statusCode`` as the bare HTTP status and the message as
    "Unable to parse error message" (or the like); both are refused here.
    """
    error = results[step]["error"]
    assert error is not None, f"{step} succeeded: {results[step]['data']}"
    assert not error.get("thrown"), f"{step}: the client threw {error}"
    assert error["name"] == "StorageApiError", error
    assert error["statusCode"] == status_code, error
    assert error["message"] and "parse" not in error["message"].lower(), error
    assert not error["message"].startswith("{"), error  # a body it could not read as an error
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def test_buckets(objects_run: dict[str, Any]) -> None:
    r = objects_run
    priv, pub = r["_buckets"]["priv"], r["_buckets"]["pub"]
    assert ok(r, "createBucket") == {"name": priv}
    failed(r, "createBucketAgain", "409")
    assert ok(r, "createPublicBucket") == {"name": pub}
    bucket = ok(r, "getBucket")
    assert (bucket["id"], bucket["name"], bucket["public"]) == (priv, priv, False)
    assert bucket["file_size_limit"] == 1024
    assert bucket["allowed_mime_types"] == ["text/plain", "text/markdown", "application/json"]
    failed(r, "getMissingBucket", "404", "NoSuchBucket")
    listed = {b["name"]: b for b in ok(r, "listBuckets")}
    assert {priv, pub, "documents"} <= set(listed), listed
    assert listed[pub]["public"] is True and listed[priv]["public"] is False
    # The apikey header alone (no Authorization) carries the service role, as on Supabase.
    assert {b["name"] for b in ok(r, "listBucketsApikeyOnly")} == set(listed)
    assert "message" in ok(r, "updateBucket")
    assert ok(r, "getBucketUpdated")["file_size_limit"] == 2048


def test_uploads_raw_and_multipart(objects_run: dict[str, Any]) -> None:
    r = objects_run
    priv = r["_buckets"]["priv"]
    for step, path in [
        ("uploadString", "notes/a.txt"),
        ("uploadBlob", "notes/b.md"),
        ("uploadFile", "notes/c.json"),
    ]:
        data = ok(r, step)
        assert data["path"] == path and data["fullPath"] == f"{priv}/{path}", data
    failed(r, "uploadDuplicate", "409", "KeyAlreadyExists")
    ok(r, "uploadUpsert")
    ok(r, "update")
    assert ok(r, "downloadA") == {"text": "alpha, updated", "type": "text/plain", "size": 14}
    # The Blob's type travels in its multipart part and comes back as the download's type.
    assert ok(r, "downloadB")["type"] == "text/markdown"
    assert ok(r, "downloadB")["text"] == "# Bravo\n\nbody"


def test_upload_refusals(objects_run: dict[str, Any]) -> None:
    r = objects_run
    failed(r, "uploadWrongMime", "415", "InvalidMimeType")
    failed(r, "uploadTooLarge", "413", "EntityTooLarge")
    failed(r, "uploadInvalidKey", "400", "InvalidKey")
    failed(r, "uploadMissingBucket", "404", "NoSuchBucket")
    # No RLS policy lets the anon role write: Supabase answers 403 (row-level security).
    failed(r, "uploadAnon", "403")
    # Nor read: the object is invisible to anon, so it is not found (Supabase's RLS does the same).
    failed(r, "downloadAnon", "404", "NoSuchKey")


def test_reads_info_and_exists(objects_run: dict[str, Any]) -> None:
    r = objects_run
    failed(r, "downloadMissing", "404", "NoSuchKey")
    info = ok(r, "info")
    assert info["name"] == "notes/b.md" and info["size"] == len("# Bravo\n\nbody")
    assert info["contentType"] == "text/markdown"
    assert ok(r, "existsYes") is True
    assert r["existsNo"]["data"] is False and r["existsNo"]["error"]["statusCode"] == "404"


def names(listing: list[dict[str, Any]]) -> list[str]:
    return [entry["name"] for entry in listing]


def test_listings(objects_run: dict[str, Any]) -> None:
    r = objects_run
    root = ok(r, "listRoot")
    # A folder is listed by name with a null id, as Supabase lists prefixes.
    assert next(e for e in root if e["name"] == "notes")["id"] is None
    notes = ok(r, "listNotes")
    assert names(notes) == ["a.txt", "b.md", "c.json"]
    assert all(e["id"] and e["metadata"]["size"] > 0 for e in notes), notes
    assert notes[1]["metadata"]["mimetype"] == "text/markdown"
    assert names(ok(r, "listNotesDesc")) == ["c.json", "b.md", "a.txt"]
    assert names(ok(r, "listNotesPage")) == ["b.md"]
    assert names(ok(r, "listNotesSearch")) == ["b.md"]
    v2 = ok(r, "listV2")
    assert sorted(o["name"] for o in v2["objects"]) == ["notes/a.txt", "notes/b.md", "notes/c.json"]
    assert v2["hasNext"] is False
    # At the root, with the delimiter: the one folder so far, named with its "/" as Supabase does.
    root_v2 = ok(r, "listV2Root")
    assert [f["name"] for f in root_v2["folders"]] == ["notes/"] and root_v2["objects"] == [], root_v2
    assert ok(r, "listAnon") == []  # no policy lets anon read: an empty listing, as Supabase


def test_signed_urls(objects_run: dict[str, Any]) -> None:
    r = objects_run
    assert "token=" in ok(r, "createSignedUrl")["signedUrl"]
    fetched = ok(r, "fetchSigned")
    assert (fetched["status"], fetched["text"]) == (200, "alpha, updated")
    assert fetched["contentType"].startswith("text/plain")
    download = ok(r, "fetchSignedDownload")
    assert download["status"] == 200 and download["contentType"].startswith("text/markdown")
    assert "attachment" in download["contentDisposition"] and "bravo.md" in download["contentDisposition"]
    many = ok(r, "createSignedUrls")
    assert [m["path"] for m in many] == ["notes/a.txt", "notes/missing.txt"]
    assert many[0]["signedUrl"] and many[0]["error"] is None
    assert many[1]["signedUrl"] is None and many[1]["error"]
    assert ok(r, "fetchSignedMany")["text"] == "alpha, updated"
    ticket = ok(r, "createSignedUploadUrl")
    assert ticket["path"] == "signed/up.txt" and ticket["token"]
    assert ok(r, "uploadToSignedUrl")["path"] == "signed/up.txt"
    failed(r, "uploadToSignedUrlAgain", "409", "KeyAlreadyExists")  # a signed upload URL works once
    assert ok(r, "downloadSignedUpload")["text"] == "via a signed URL"


def test_move_and_copy(objects_run: dict[str, Any]) -> None:
    r = objects_run
    priv = r["_buckets"]["priv"]
    assert ok(r, "move")["message"]
    assert ok(r, "downloadMoved") == {"text": '{"c": 3}', "type": "application/json", "size": 8}
    failed(r, "downloadMovedAway", "404", "NoSuchKey")
    assert ok(r, "copy")["path"] == f"{priv}/copies/a.txt"
    assert ok(r, "downloadCopy")["text"] == "alpha, updated"
    failed(r, "moveMissing", "404", "NoSuchKey")


def test_public_bucket_and_public_urls(objects_run: dict[str, Any]) -> None:
    r = objects_run
    ok(r, "uploadPublic")
    public = ok(r, "fetchPublic")
    assert (public["status"], public["text"]) == (200, "public words")
    assert public["contentType"].startswith("text/plain")
    assert "attachment" in ok(r, "fetchPublicDownload")["contentDisposition"]
    # A private bucket's object has no public URL: an error body in Supabase's shape, no bytes.
    private = ok(r, "fetchPublicOfPrivate")
    assert private["status"] >= 400
    body = json.loads(private["text"])
    assert {"statusCode", "error", "message"} <= set(body), body
    assert ok(r, "downloadPublicAnon")["text"] == "public words"


def test_remove_empty_delete(objects_run: dict[str, Any]) -> None:
    r = objects_run
    removed = ok(r, "remove")
    assert sorted(names(removed)) == ["notes/a.txt", "notes/b.md"]
    assert ok(r, "listNotesAfterRemove") == []
    failed(r, "deleteNonEmptyBucket", "409")
    assert ok(r, "emptyBucket")["message"]
    assert ok(r, "deleteBucket")["message"]
    ok(r, "emptyPrivate")
    ok(r, "deletePrivate")
    failed(r, "getDeletedBucket", "404", "NoSuchBucket")


@pytest.fixture
def api_stack(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    with running_api(pg_url, tmp_path) as stack:
        yield stack


def test_document_uploaded_with_a_blob_through_the_api_signed_url(
    node: str, api_stack: tuple[str, Settings], tmp_path: Path
) -> None:
    """POST /upload, then storage-js's ``uploadToSignedUrl`` with a Blob (multipart, as a
    browser sends it) to the API's signed URL: the document is processed to ``complete``."""
    base, _ = api_stack
    data = b"# Tide tables\n\nThe harbour master posts the spring tide tables on the chandlery door.\n"
    client = ApiClient(base, token(SECRET, "storage-js-user"))
    reply = client.request_upload(data, filename="tides.md", mime="text/markdown")
    assert reply.status_code == 201, reply.text
    ticket = reply.json()
    url = urlsplit(ticket["signed_url"])
    prefix = "/storage/v1/object/upload/sign/"
    assert url.path.startswith(prefix), url
    bucket, _, path = url.path[len(prefix) :].partition("/")
    body = tmp_path / "tides.md"
    body.write_bytes(data)
    results = run_scenario(
        node,
        "signed",
        {
            "STORAGE_URL": f"{url.scheme}://{url.netloc}/storage/v1",
            "BUCKET": bucket,
            "OBJECT_PATH": path,
            "TOKEN": parse_qs(url.query)["token"][0],
            "BODY_FILE": str(body),
            "CONTENT_TYPE": "text/markdown",
        },
    )
    assert ok(results, "uploadToSignedUrl")["path"] == path
    doc = client.wait_document(ticket["document_id"])
    assert (doc["stage"], doc["state"]) == ("complete", "done"), doc
    assert doc["file_sha256"] == hashlib.sha256(data).hexdigest()
    hits = client.http.get("/api/v2/search", params={"q": "spring tide tables"}).json()
    assert any("chandlery" in h["text"] for h in hits["results"]), hits
    client.close()
