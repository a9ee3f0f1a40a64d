"""The local storage service driven by Supabase's own Python clients (``storage3``, and
``supabase.create_client(...).storage``), unchanged, against ``docingest storage`` on loopback:
every object and bucket operation they offer, each result checked (bytes, content type,
listings, errors by status and shape, public vs private, anon vs service role)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from storage3 import SyncStorageClient
from storage3.exceptions import StorageApiError
from storage3.types import CreateSignedUploadUrlOptions
from supabase import create_client

from docingest.api.auth import mint_token
from docingest.providers.storage.signing import mint_service_key
from docingest.settings import Settings
from tests.e2e import conftest as api_conftest
from tests.e2e.client import ApiClient
from tests.e2e.servers import storage_server

pytestmark = pytest.mark.e2e

SECRET = "storage-clients-secret-" + "x" * 32
LIMIT = 256 * 1024  # MAX_FILE_BYTES of the service under test


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """``docingest storage`` alone; yields its ``/storage/v1`` URL and settings."""
    tmp = tmp_path_factory.mktemp("storage-clients")
    settings = Settings(data_dir=tmp / "data", environment="test", jwt_secret=SECRET, max_file_bytes=LIMIT)
    with storage_server(settings, tmp) as url:
        yield url, settings


SERVICE_KEY = mint_service_key(SECRET)
ANON_KEY = mint_token(SECRET, user_id=None, role="anon", audience="anon")
USER_TOKEN = mint_token(SECRET, user_id="alice")


def client(url: str, key: str) -> SyncStorageClient:
    """storage3 as a Supabase project gives it: the key as ``apikey`` and as the bearer."""
    return SyncStorageClient(url + "/", {"apikey": key, "Authorization": f"Bearer {key}"})


@pytest.fixture(scope="module")
def admin(service: tuple[str, Settings]) -> SyncStorageClient:
    return client(service[0], SERVICE_KEY)


def _api_error(call: Any) -> StorageApiError:
    with pytest.raises(StorageApiError) as info:
        call()
    err = info.value
    assert "Unable to parse error message" not in err.message  # Supabase's shape, always
    return err


def _supabase_error(reply: httpx.Response, status: int) -> dict[str, Any]:
    """The reply is ``status`` with Supabase's error body (plus docingest's ``error_code``)."""
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert {"statusCode", "error", "message", "error_code"} <= set(body), body
    assert body["statusCode"] == str(status)
    return body


def test_buckets_create_get_list_update_empty_delete(admin: SyncStorageClient) -> None:
    assert admin.create_bucket("photos", options={"public": True, "file_size_limit": "100KB"}) == {
        "name": "photos"
    }
    bucket = admin.get_bucket("photos")
    assert (bucket.id, bucket.name, bucket.public, bucket.file_size_limit) == (
        "photos",
        "photos",
        True,
        100_000,
    )
    assert bucket.allowed_mime_types is None
    names = {b.name for b in admin.list_buckets()}
    assert {"photos", "documents"} <= names  # documents: the settings' bucket, always there

    err = _api_error(lambda: admin.create_bucket("photos"))
    assert (err.status, err.code) == ("409", "Duplicate")
    err = _api_error(lambda: admin.get_bucket("nope"))
    assert (err.status, err.code) == ("404", "Bucket not found")
    err = _api_error(lambda: admin.create_bucket("bad/name"))
    assert err.status == "400"

    assert admin.update_bucket(
        "photos", {"public": False, "allowed_mime_types": ["image/*", "text/plain"], "file_size_limit": 2048}
    ) == {"message": "Successfully updated"}
    bucket = admin.get_bucket("photos")
    assert (bucket.public, bucket.file_size_limit, bucket.allowed_mime_types) == (
        False,
        2048,
        ["image/*", "text/plain"],
    )

    photos = admin.from_("photos")
    photos.upload("a/cat.png", b"\x89PNG cat", {"content-type": "image/png"})
    err = _api_error(lambda: admin.delete_bucket("photos"))
    assert (err.status, err.code) == ("409", "ResourceNotEmpty")
    assert admin.empty_bucket("photos") == {"message": "Successfully emptied"}
    assert photos.list() == []
    assert admin.delete_bucket("photos") == {"message": "Successfully deleted"}
    assert "photos" not in {b.name for b in admin.list_buckets()}
    err = _api_error(lambda: admin.get_bucket("photos"))
    assert err.status == "404"


def test_bucket_limits_are_enforced_on_upload(
    admin: SyncStorageClient, service: tuple[str, Settings]
) -> None:
    admin.create_bucket("limited", options={"file_size_limit": 10, "allowed_mime_types": ["text/*"]})
    limited = admin.from_("limited")
    assert limited.upload("ok.txt", b"0123456789", {"content-type": "text/plain"})
    err = _api_error(lambda: limited.upload("big.txt", b"01234567890", {"content-type": "text/plain"}))
    assert (err.status, err.code) == ("413", "Payload too large")
    err = _api_error(lambda: limited.upload("cat.png", b"png", {"content-type": "image/png"}))
    assert (err.status, err.code) == ("415", "invalid_mime_type")
    # a raw body is held to the same rules
    url = f"{service[0]}/object/limited/raw.png"
    auth = {"authorization": f"Bearer {SERVICE_KEY}"}
    reply = httpx.post(url, content=b"png", headers={**auth, "content-type": "image/png"})
    assert _supabase_error(reply, 415)["code"] == "InvalidMimeType"
    reply = httpx.post(
        url.replace(".png", ".txt"), content=b"x" * 11, headers={**auth, "content-type": "text/plain"}
    )
    assert _supabase_error(reply, 413)["error_code"] == "file_too_large"
    assert {o["name"] for o in limited.list()} == {"ok.txt"}


def test_upload_download_keeps_content_type_cache_control_and_metadata(
    admin: SyncStorageClient, service: tuple[str, Settings]
) -> None:
    docs = admin.from_("documents")
    data = b"# Notes\n\nhello storage\n"
    reply = docs.upload(
        "notes/hello.md",
        data,
        {"content-type": "text/markdown", "cache-control": "120", "metadata": {"k": "v"}},
    )
    assert reply.path == "notes/hello.md" and reply.full_path == "documents/notes/hello.md"
    assert docs.download("notes/hello.md") == data

    info = docs.info("notes/hello.md")
    assert info["name"] == "notes/hello.md" and info["bucket_id"] == "documents"
    assert (info["size"], info["content_type"], info["cache_control"]) == (
        len(data),
        "text/markdown",
        "max-age=120",
    )
    assert info["metadata"] == {"k": "v"} and info["etag"].startswith('"')
    assert docs.exists("notes/hello.md") is True
    assert docs.exists("notes/missing.md") is False

    base, auth = service[0], {"authorization": f"Bearer {SERVICE_KEY}"}
    got = httpx.get(f"{base}/object/authenticated/documents/notes/hello.md", headers=auth)
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "text/markdown"  # as stored, nothing appended
    assert got.headers["cache-control"] == "max-age=120" and "content-disposition" not in got.headers
    head = httpx.head(f"{base}/object/documents/notes/hello.md", headers=auth)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
    assert head.headers["content-type"].startswith("text/markdown") and head.content == b""

    # a raw body: Content-Type, Cache-Control and x-metadata (base64 JSON) as storage-js sends them
    meta = base64.b64encode(json.dumps({"source": "raw"}).encode()).decode()
    raw = httpx.post(
        f"{base}/object/documents/raw/page.html",
        content=b"<p>hi</p>",
        headers={**auth, "content-type": "text/html", "cache-control": "max-age=60", "x-metadata": meta},
    )
    assert raw.status_code == 200 and raw.json()["Key"] == "documents/raw/page.html" and raw.json()["Id"]
    info = docs.info("raw/page.html")
    assert (info["content_type"], info["cache_control"], info["metadata"]) == (
        "text/html",
        "max-age=60",
        {"source": "raw"},
    )

    # no upsert: 409; x-upsert / update replace the bytes and the content type
    err = _api_error(lambda: docs.upload("notes/hello.md", b"other"))
    assert (err.status, err.code) == ("409", "Duplicate")
    docs.upload("notes/hello.md", b"second", {"upsert": "true", "content-type": "text/plain"})
    assert docs.download("notes/hello.md") == b"second"
    docs.update("notes/hello.md", b'{"third": 3}', {"content-type": "application/json"})
    assert docs.download("notes/hello.md") == b'{"third": 3}'
    assert docs.info("notes/hello.md")["content_type"] == "application/json"


def test_download_parameter_sets_content_disposition(
    admin: SyncStorageClient, service: tuple[str, Settings]
) -> None:
    docs = admin.from_("documents")
    docs.upload("dl/report.txt", b"report", {"content-type": "text/plain"})
    base, auth = service[0], {"authorization": f"Bearer {SERVICE_KEY}"}
    named = httpx.get(
        f"{base}/object/documents/dl/report.txt", params={"download": "my report.txt"}, headers=auth
    )
    assert named.headers["content-disposition"] == (
        "attachment; filename=my%20report.txt; filename*=UTF-8''my%20report.txt"
    )
    bare = httpx.get(f"{base}/object/documents/dl/report.txt?download=", headers=auth)
    assert bare.headers["content-disposition"] == "attachment;"
    signed = docs.create_signed_url("dl/report.txt", 60, {"download": "r.txt"})["signedURL"]
    reply = httpx.get(signed)
    assert reply.content == b"report" and reply.headers["content-disposition"].startswith(
        "attachment; filename=r.txt"
    )


def test_list_v1_prefix_limit_offset_sort_and_search(admin: SyncStorageClient) -> None:
    admin.create_bucket("listing")
    b = admin.from_("listing")
    for name in ("b.txt", "A.txt", "c.md", "sub/x.txt", "sub/deeper/y.txt", "other/z.txt"):
        b.upload(f"dir/{name}", name.encode(), {"content-type": "text/plain"})
    b.upload("top.txt", b"top")

    rows = b.list("dir")
    assert [r["name"] for r in rows] == [
        "A.txt",
        "b.txt",
        "c.md",
        "other",
        "sub",
    ]  # folders and files by name
    folder = next(r for r in rows if r["name"] == "sub")
    assert folder["id"] is None and folder["metadata"] is None
    file = next(r for r in rows if r["name"] == "c.md")
    assert file["id"] and file["metadata"]["size"] == 4 and file["metadata"]["mimetype"] == "text/plain"
    assert [r["name"] for r in b.list("dir/", {"limit": 2, "offset": 1})] == ["b.txt", "c.md"]
    desc = b.list("dir", {"sortBy": {"column": "name", "order": "desc"}})
    assert [r["name"] for r in desc] == ["sub", "other", "c.md", "b.txt", "A.txt"]
    assert [r["name"] for r in b.list("dir", {"search": "a"})] == ["A.txt"]  # case-insensitive, name start
    assert [r["name"] for r in b.list("dir/sub")] == ["deeper", "x.txt"]
    assert [r["name"] for r in b.list()] == ["dir", "top.txt"]
    by_time = b.list("dir", {"sortBy": {"column": "created_at", "order": "asc"}})
    assert [r["name"] for r in by_time] == ["other", "sub", "b.txt", "A.txt", "c.md"]  # folders first
    assert b.list("nothing-here") == []
    err = _api_error(lambda: b.list("dir", {"sortBy": {"column": "size"}}))
    assert err.status == "400"


def test_list_v2_with_and_without_delimiter_and_cursor(admin: SyncStorageClient) -> None:
    admin.create_bucket("listing2")
    b = admin.from_("listing2")
    for name in ("p/a.txt", "p/b.txt", "p/c.txt", "p/q/d.txt", "p/q/r/e.txt", "z.txt"):
        b.upload(name, name.encode())
    flat = b.list_v2({"prefix": "p/"})
    assert [o.name for o in flat.objects] == ["p/a.txt", "p/b.txt", "p/c.txt", "p/q/d.txt", "p/q/r/e.txt"]
    assert flat.folders == [] and flat.hasNext is False
    nested = b.list_v2({"prefix": "p/", "with_delimiter": True})
    assert [o.name for o in nested.objects] == ["p/a.txt", "p/b.txt", "p/c.txt"]
    assert [f.name for f in nested.folders] == ["p/q/"]
    assert nested.objects[0].metadata is not None and nested.objects[0].metadata["size"] == len(b"p/a.txt")

    page = b.list_v2({"prefix": "p/", "limit": 2})
    seen = [o.name for o in page.objects]
    while page.hasNext:
        assert page.nextCursor
        page = b.list_v2({"prefix": "p/", "limit": 2, "cursor": page.nextCursor})
        seen += [o.name for o in page.objects]
    assert seen == [o.name for o in flat.objects]
    desc = b.list_v2({"prefix": "p/", "sortBy": {"column": "name", "order": "desc"}})
    assert [o.name for o in desc.objects] == list(reversed(seen))


def test_move_copy_remove(admin: SyncStorageClient) -> None:
    admin.create_bucket("moving")
    b = admin.from_("moving")
    b.upload("m/one.txt", b"one", {"content-type": "text/plain", "metadata": {"n": 1}})
    moved = b.move("m/one.txt", "m/two.txt")
    assert moved["message"] == "Successfully moved"
    assert b.exists("m/one.txt") is False and b.download("m/two.txt") == b"one"
    assert b.info("m/two.txt")["content_type"] == "text/plain"

    copied = b.copy("m/two.txt", "m/three.txt")
    assert copied["Key"] == "moving/m/three.txt"
    assert b.download("m/three.txt") == b"one" and b.download("m/two.txt") == b"one"
    assert b.info("m/three.txt")["metadata"] == {"n": 1}
    err = _api_error(lambda: b.copy("m/two.txt", "m/three.txt"))
    assert (err.status, err.code) == ("409", "Duplicate")
    err = _api_error(lambda: b.move("m/missing.txt", "m/four.txt"))
    assert (err.status, err.code) == ("404", "not_found")

    removed = b.remove(["m/two.txt", "m/absent.txt"])
    assert [r["name"] for r in removed] == ["m/two.txt"]
    assert [r["name"] for r in b.list("m")] == ["three.txt"]
    assert b.remove(["m/two.txt"]) == []


def test_signed_urls_one_and_many_and_signed_uploads(admin: SyncStorageClient) -> None:
    docs = admin.from_("documents")
    docs.upload("signed/a.txt", b"A", {"content-type": "text/plain"})
    docs.upload("signed/b.txt", b"B", {"content-type": "text/plain"})
    one = docs.create_signed_url("signed/a.txt", 60)["signedURL"]
    got = httpx.get(one)
    assert got.content == b"A" and got.headers["content-type"].startswith("text/plain")
    many = docs.create_signed_urls(["signed/a.txt", "signed/b.txt", "signed/none.txt"], 60)
    assert [m["path"] for m in many] == ["signed/a.txt", "signed/b.txt", "signed/none.txt"]
    assert httpx.get(many[1]["signedURL"]).content == b"B"
    assert many[2]["signedURL"] is None and many[2]["error"]
    err = _api_error(lambda: docs.create_signed_url("signed/none.txt", 60))
    assert err.status == "404"
    forged = httpx.get(one.replace("a.txt", "b.txt"))
    assert _supabase_error(forged, 403)["error"] == "InvalidJWT"

    ticket = docs.create_signed_upload_url("signed/up.pdf")
    up = docs.upload_to_signed_url(
        "signed/up.pdf", ticket["token"], b"%PDF-1.4 bytes", {"content-type": "application/pdf"}
    )
    assert up.full_path == "documents/signed/up.pdf"
    assert docs.download("signed/up.pdf") == b"%PDF-1.4 bytes"
    assert docs.info("signed/up.pdf")["content_type"] == "application/pdf"
    err = _api_error(lambda: docs.upload_to_signed_url("signed/up.pdf", ticket["token"], b"again"))
    assert (err.status, err.code) == ("409", "Duplicate")  # a signed upload URL works once
    upsert = docs.create_signed_upload_url("signed/up.pdf", CreateSignedUploadUrlOptions(upsert="true"))
    docs.upload_to_signed_url("signed/up.pdf", upsert["token"], b"replaced")
    assert docs.download("signed/up.pdf") == b"replaced"


def test_public_bucket_is_readable_without_a_key(
    admin: SyncStorageClient, service: tuple[str, Settings]
) -> None:
    base = service[0]
    admin.create_bucket("open", options={"public": True})
    admin.create_bucket("closed")
    admin.from_("open").upload("pic.svg", b"<svg/>", {"content-type": "image/svg+xml"})
    admin.from_("closed").upload("pic.svg", b"<svg/>", {"content-type": "image/svg+xml"})

    url = admin.from_("open").get_public_url("pic.svg")
    assert url == f"{base}/object/public/open/pic.svg"
    got = httpx.get(url)
    assert (
        got.status_code == 200 and got.content == b"<svg/>" and got.headers["content-type"] == "image/svg+xml"
    )
    assert httpx.get(f"{base}/object/open/pic.svg").content == b"<svg/>"  # no token at all
    assert httpx.get(f"{base}/object/info/public/open/pic.svg").json()["size"] == 6
    for path in (
        "/object/public/closed/pic.svg",
        "/object/closed/pic.svg",
        "/object/info/public/closed/pic.svg",
    ):
        assert _supabase_error(httpx.get(base + path), 404)["error"] == "Bucket not found"
    assert _supabase_error(httpx.get(f"{base}/object/public/open/none.svg"), 404)["code"] == "NoSuchKey"


def test_anon_and_authenticated_roles_get_what_supabase_gives_without_policies(
    admin: SyncStorageClient, service: tuple[str, Settings]
) -> None:
    base = service[0]
    admin.create_bucket("shared", options={"public": True})
    admin.from_("shared").upload("s.txt", b"shared")
    admin.from_("documents").upload("secret/p.txt", b"private")
    for key in (ANON_KEY, USER_TOKEN):
        user = client(base, key)
        assert user.list_buckets() == []
        err = _api_error(lambda u=user: u.get_bucket("documents"))  # type: ignore[misc]
        assert err.status == "404"
        err = _api_error(lambda u=user: u.create_bucket("mine"))  # type: ignore[misc]
        assert (err.status, err.code) == ("403", "Unauthorized")
        docs = user.from_("documents")
        err = _api_error(lambda d=docs: d.upload("secret/q.txt", b"x"))  # type: ignore[misc]
        assert (err.status, err.code) == ("403", "Unauthorized") and "row-level security" in err.message
        err = _api_error(lambda d=docs: d.download("secret/p.txt"))  # type: ignore[misc]
        assert (err.status, err.code) == ("404", "not_found")
        assert docs.exists("secret/p.txt") is False
        assert docs.list("secret") == []
        assert docs.remove(["secret/p.txt"]) == []
        err = _api_error(lambda d=docs: d.create_signed_url("secret/p.txt", 60))  # type: ignore[misc]
        assert err.status == "404"
        err = _api_error(lambda d=docs: d.create_signed_upload_url("secret/r.txt"))  # type: ignore[misc]
        assert err.status == "403"
        err = _api_error(lambda d=docs: d.move("secret/p.txt", "secret/moved.txt"))  # type: ignore[misc]
        assert err.status == "404"
        assert user.from_("shared").download("s.txt") == b"shared"  # a public bucket: readable
    assert admin.from_("documents").download("secret/p.txt") == b"private"  # nothing was removed


def test_apikey_header_alone_and_bad_tokens(service: tuple[str, Settings]) -> None:
    base = service[0]
    reply = httpx.post(f"{base}/object/list/documents", json={"prefix": ""}, headers={"apikey": SERVICE_KEY})
    assert reply.status_code == 200 and isinstance(reply.json(), list)
    bad = mint_service_key("another-secret-" + "y" * 32)
    for headers in (
        {},
        {"apikey": bad},
        {"authorization": f"Bearer {bad}"},
        {"authorization": "Bearer junk"},
    ):
        reply = httpx.post(f"{base}/object/list/documents", json={"prefix": ""}, headers=headers)
        assert _supabase_error(reply, 403)["error"] == "Unauthorized"


def test_keys_are_validated_as_supabase_does(admin: SyncStorageClient, service: tuple[str, Settings]) -> None:
    docs = admin.from_("documents")
    ok = "odd/ name!*'()&$@=;:+,-_.txt"
    docs.upload(ok, b"odd", {"content-type": "text/plain"})
    assert docs.download(ok) == b"odd"
    for bad in ("caf\u00e9.txt", "a#b.txt", "a%b", "a\\b", "tab\t.txt"):
        err = _api_error(lambda k=bad: docs.upload(k, b"x"))  # type: ignore[misc]
        assert (err.status, err.code) == ("400", "InvalidKey"), bad
    docs.upload("clash/x.txt", b"x")  # objects are files: a key cannot also be a folder
    for clash, upsert in (("clash", "true"), ("clash/x.txt/y", "false")):
        err = _api_error(lambda k=clash, u=upsert: docs.upload(k, b"y", {"upsert": u}))  # type: ignore[misc]
        assert (err.status, err.code) == ("400", "InvalidKey") and "folder" in err.message, clash
    assert docs.download("clash/x.txt") == b"x"
    auth = {"authorization": f"Bearer {SERVICE_KEY}"}
    for bad in ("a//b.txt", "a/%2e%2e/b.txt"):
        reply = httpx.post(f"{service[0]}/object/documents/{bad}", content=b"x", headers=auth)
        assert _supabase_error(reply, 400)["error"] == "InvalidKey", bad


def test_unknown_routes_wrong_methods_and_unimplemented_features_answer_supabase_shape(
    service: tuple[str, Settings], admin: SyncStorageClient
) -> None:
    base, auth = service[0], {"authorization": f"Bearer {SERVICE_KEY}"}
    assert _supabase_error(httpx.get(f"{base}/nothing/here", headers=auth), 404)["error"] == "Not Found"
    assert (
        _supabase_error(httpx.get(base.removesuffix("/storage/v1") + "/nothing"), 404)["statusCode"] == "404"
    )
    wrong = httpx.patch(f"{base}/object/move", headers=auth)
    assert _supabase_error(wrong, 405)["error"] == "Method Not Allowed" and "POST" in wrong.headers["allow"]
    assert (
        "not implemented"
        in _supabase_error(httpx.get(f"{base}/render/image/public/open/pic.svg"), 404)["message"]
    )
    assert "TUS" in _supabase_error(httpx.post(f"{base}/upload/resumable", headers=auth), 404)["message"]
    garbage = httpx.post(f"{base}/object/list/documents", content=b"{not json", headers=auth)
    assert _supabase_error(garbage, 400)["error_code"] == "bad_request"
    # storage3 reads them all: no "Unable to parse error message"
    err = _api_error(lambda: admin.from_("documents").download("x", {"transform": {"width": 10}}))
    assert err.status == "404"


def test_multipart_uploads_are_streamed_and_limited_on_the_file_bytes(
    admin: SyncStorageClient, service: tuple[str, Settings]
) -> None:
    docs = admin.from_("documents")
    exact = b"z" * LIMIT  # the envelope is larger than the limit; the file is not
    assert docs.upload("mp/exact.bin", exact, {"content-type": "application/octet-stream"})
    assert docs.info("mp/exact.bin")["size"] == LIMIT
    err = _api_error(lambda: docs.upload("mp/over.bin", exact + b"z"))
    assert (err.status, err.code) == ("413", "Payload too large")
    assert docs.exists("mp/over.bin") is False
    # storage-js's Blob form: the file under the empty field name, cacheControl before it
    auth = {"authorization": f"Bearer {SERVICE_KEY}"}
    reply = httpx.post(
        f"{service[0]}/object/documents/mp/blob.txt",
        files=[("cacheControl", (None, b"30")), ("", ("blob", b"from a blob", "text/plain"))],
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    info = docs.info("mp/blob.txt")
    assert (info["content_type"], info["cache_control"], info["size"]) == ("text/plain", "max-age=30", 11)
    no_file = httpx.post(
        f"{service[0]}/object/documents/mp/none.txt", files=[("cacheControl", (None, b"1"))], headers=auth
    )
    assert _supabase_error(no_file, 400)["message"].startswith("No content provided")


def test_supabase_create_client_storage_works_unchanged(
    service: tuple[str, Settings], tmp_path: Path
) -> None:
    project = service[0].removesuffix("/storage/v1")
    storage = create_client(project, SERVICE_KEY).storage
    bucket = storage.from_("documents")
    src = tmp_path / "page.md"
    src.write_text("# From supabase-py\n")
    bucket.upload("py/page.md", src, {"content-type": "text/markdown"})
    assert bucket.download("py/page.md") == b"# From supabase-py\n"
    assert [r["name"] for r in bucket.list("py")] == ["page.md"]
    assert "documents" in {b.id for b in storage.list_buckets()}


def test_a_document_uploaded_with_storage3_to_the_apis_signed_url_is_processed(
    api: tuple[str, Settings],
) -> None:
    """The API's own signed upload URL, used as a Supabase client uses one: storage3's
    ``upload_to_signed_url`` (multipart); the worker takes the document to ``complete``."""
    base, _ = api
    bearer = mint_token(api_conftest.SECRET, user_id="storage3-user")
    user = ApiClient(base, bearer)
    data = b"# Tide tables\n\nThe harbour master posted the spring tide tables on the quay each Monday.\n"
    try:
        reply = user.request_upload(data, filename="tides.md")
        assert reply.status_code == 201, reply.text
        ticket = reply.json()
        signed_path, token = ticket["signed_url"].split("/object/upload/sign/documents/")[1].split("?token=")
        storage = create_client(base, bearer).storage  # the project URL: /storage/v1 is the API's
        up = storage.from_("documents").upload_to_signed_url(
            signed_path, token, data, {"content-type": "text/markdown"}
        )
        assert up.full_path == f"documents/{signed_path}"
        doc = user.wait_document(ticket["document_id"])
        assert (doc["stage"], doc["state"], doc["filename"]) == ("complete", "done", "tides.md"), doc
        assert doc["chunks"] >= 1
    finally:
        user.close()


def test_multipart_past_the_declared_size_is_cut_off_leaving_nothing(api: tuple[str, Settings]) -> None:
    """On the API's signed URL a multipart file longer than declared is refused (413) while it
    streams, its temporary file removed and the URL still unused; the right file then goes in."""
    base, settings = api
    user = ApiClient(base, mint_token(api_conftest.SECRET, user_id="multipart-cutoff"))
    data = b"# Cut off\n\n" + b"only the declared bytes. " * 50
    try:
        ticket = user.request_upload(data, filename="cut.md").json()
        key = ticket["signed_url"].split("?")[0].split(f"/{settings.storage_bucket}/", 1)[1]
        folder = (settings.storage_dir / key).parent
        sent = 0

        def body() -> Iterator[bytes]:  # no Content-Length: only the file's bytes can stop it
            nonlocal sent
            yield b'--B\r\ncontent-disposition: form-data; name="file"; filename="cut.md"\r\n\r\n'
            for _ in range(64):  # 64 x 16 KiB after the declared bytes, unless cut off
                block = data if sent == 0 else b"x" * 16384
                sent += len(block)
                yield block
            yield b"\r\n--B--\r\n"

        headers = {"content-type": "multipart/form-data; boundary=B"}
        reply = httpx.put(ticket["signed_url"], content=body(), headers=headers, timeout=30)
        assert reply.status_code == 413 and reply.json()["error_code"] == "size_mismatch", reply.text
        assert reply.json()["statusCode"] == "413"
        assert not (settings.storage_dir / key).exists()
        assert not folder.exists() or not any(folder.iterdir())  # no temporary file left
        done = httpx.put(ticket["signed_url"], files={"file": ("cut.md", data, "text/markdown")}, timeout=30)
        assert done.status_code == 200, done.text
        assert (settings.storage_dir / key).read_bytes() == data
        assert user.wait_document(ticket["document_id"])["state"] == "done"
    finally:
        user.close()


def test_serve_answers_supabase_shape_on_unknown_storage_routes(api: tuple[str, Settings]) -> None:
    """Mounted by ``serve``, the storage routes keep Supabase's error body for routing errors
    (the API's own routes keep ``{error_code, message}``)."""
    base, _ = api
    auth = {"authorization": f"Bearer {mint_service_key(api_conftest.SECRET)}"}
    missing = httpx.get(f"{base}/storage/v1/no/such/route", headers=auth)
    assert _supabase_error(missing, 404)["error"] == "Not Found"
    wrong = httpx.put(f"{base}/storage/v1/object/copy", headers=auth)
    assert (
        _supabase_error(wrong, 405)["error_code"] == "method_not_allowed" and "POST" in wrong.headers["allow"]
    )
    assert httpx.get(f"{base}/storage/v1/bucket/documents", headers=auth).json()["id"] == "documents"
    api_missing = httpx.get(f"{base}/api/v2/no-such-route")
    assert api_missing.status_code == 404 and set(api_missing.json()) == {"error_code", "message"}


# --- what a new user's trial broke: every refusal a 4xx in Supabase's shape, nothing stored -----


def _raw(url: str, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {SERVICE_KEY}", **kw.pop("headers", {})}
    return httpx.request(method, f"{url}{path}", headers=headers, timeout=30, **kw)


@pytest.fixture(scope="module")
def trial_bucket(service: tuple[str, Settings]) -> str:
    url, _ = service
    assert _raw(url, "POST", "/bucket", json={"name": "trial"}).status_code == 200
    return "trial"


@pytest.mark.parametrize("route", ["list", "list-v2"])
@pytest.mark.parametrize(
    "prefix", ["../", "../../", "../../../../../etc/pass", "/etc/host", "a/../../", "./"]
)
def test_a_listing_prefix_never_leaves_its_bucket(
    service: tuple[str, Settings], trial_bucket: str, route: str, prefix: str
) -> None:
    url, _ = service
    reply = _raw(url, "POST", f"/object/{route}/{trial_bucket}", json={"prefix": prefix})
    assert _supabase_error(reply, 400)["code"] == "InvalidKey"


def _not_stored(url: str, bucket: str, key: str) -> None:
    """Nothing is served under ``key`` (an invalid key is refused, a valid one not found)."""
    assert _raw(url, "GET", f"/object/{bucket}/{key}").status_code in (400, 404)


def test_keys_the_disk_cannot_hold_are_refused_before_anything_is_written(
    service: tuple[str, Settings], trial_bucket: str
) -> None:
    url, settings = service
    b = trial_bucket
    # A segment of 251 bytes (its metadata file would pass 255); a key over 1,024 bytes.
    for key in ["k" * 251, "/".join(["a" * 200] * 6)]:
        reply = _raw(url, "POST", f"/object/{b}/{key}", content=b"x")
        assert _supabase_error(reply, 400)["code"] == "InvalidKey"
        _not_stored(url, b, key)
    assert _raw(url, "POST", f"/object/{b}/{'k' * 250}", content=b"x").status_code == 200
    # A key that is another key's metadata name ("q" keeps q.json) and the reverse order.
    assert _raw(url, "POST", f"/object/{b}/q", content=b"Q").status_code == 200
    assert _raw(url, "POST", f"/object/{b}/q.json/r", content=b"R").status_code == 200
    assert _raw(url, "POST", f"/object/{b}/p.json/r", content=b"R").status_code == 200
    assert _raw(url, "POST", f"/object/{b}/p", content=b"P").status_code == 200
    for key, body in [("q", b"Q"), ("q.json/r", b"R"), ("p.json/r", b"R"), ("p", b"P")]:
        got = _raw(url, "GET", f"/object/{b}/{key}")
        assert (got.status_code, got.content) == (200, body), key
    # A key under an object, by upload or by move: 400, the source kept.
    reply = _raw(url, "POST", f"/object/{b}/q/under", content=b"x")
    assert _supabase_error(reply, 400)["code"] == "InvalidKey"
    moved = _raw(url, "POST", "/object/move", json={"bucketId": b, "sourceKey": "p", "destinationKey": "q/x"})
    assert _supabase_error(moved, 400)["code"] == "InvalidKey"
    assert _raw(url, "GET", f"/object/{b}/p").content == b"P"
    # A trailing newline is not another spelling of the key.
    reply = _raw(url, "POST", f"/object/{b}/nl%0A", content=b"x")
    assert _supabase_error(reply, 400)["code"] == "InvalidKey"
    _not_stored(url, b, "nl")
    leftovers = [p for p in (settings.data_dir / "storage").rglob("*") if p.name.startswith(".upload-")]
    assert leftovers == []


def test_the_documents_bucket_is_neither_emptied_nor_deleted(service: tuple[str, Settings]) -> None:
    url, settings = service
    assert (
        _raw(url, "POST", f"/object/{settings.storage_bucket}/kept.txt", content=b"kept").status_code == 200
    )
    for method, path in [("POST", "/empty"), ("DELETE", "")]:
        reply = _raw(url, method, f"/bucket/{settings.storage_bucket}{path}")
        assert "docingest stores documents" in _supabase_error(reply, 409)["message"]
    assert _raw(url, "GET", f"/object/{settings.storage_bucket}/kept.txt").content == b"kept"


def test_a_bucket_flag_that_is_not_a_boolean_is_refused(service: tuple[str, Settings]) -> None:
    url, _ = service
    reply = _raw(url, "POST", "/bucket", json={"name": "yes-bucket", "public": "yes"})
    assert "public" in _supabase_error(reply, 400)["message"]
    assert _raw(url, "GET", "/bucket/yes-bucket").status_code == 404


def test_downloads_honour_ranges_and_conditional_requests(
    service: tuple[str, Settings], trial_bucket: str
) -> None:
    url, _ = service
    path = f"/object/{trial_bucket}/ranged.txt"
    assert (
        _raw(url, "POST", path, content=b"0123456789", headers={"content-type": "text/plain"}).status_code
        == 200
    )
    whole = _raw(url, "GET", path)
    assert whole.status_code == 200 and whole.content == b"0123456789"
    part = _raw(url, "GET", path, headers={"range": "bytes=2-4"})
    assert (part.status_code, part.content) == (206, b"234")
    # A range header of another form is ignored (RFC 9110), not refused.
    for invalid in ("bytes=abc", "bytes=4-2", "bytes=-"):
        ignored = _raw(url, "GET", path, headers={"range": invalid})
        assert (ignored.status_code, ignored.content) == (200, b"0123456789"), invalid
    past = _raw(url, "GET", path, headers={"range": "bytes=50-"})
    assert _supabase_error(past, 416)["code"] == "InvalidRange"
    same = _raw(url, "GET", path, headers={"if-none-match": whole.headers["etag"]})
    assert same.status_code == 304 and same.content == b""
    other = _raw(url, "GET", path, headers={"if-none-match": '"another"'})
    assert other.status_code == 200 and other.content == b"0123456789"


def test_a_json_body_nested_past_the_parsers_depth_is_a_400(
    service: tuple[str, Settings], trial_bucket: str
) -> None:
    url, _ = service
    deep = b'{"prefix": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    reply = _raw(
        url,
        "POST",
        f"/object/list/{trial_bucket}",
        content=deep,
        headers={"content-type": "application/json"},
    )
    assert "not JSON" in _supabase_error(reply, 400)["message"]
