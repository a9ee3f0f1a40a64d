"""Security over real HTTP: tokens, tenancy, signed URLs, oversized bodies, hostile filenames."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from docingest.providers.storage.signing import UrlSigner, mint_service_key
from docingest.settings import Settings
from tests.e2e.client import API, ApiClient, token
from tests.e2e.conftest import SECRET

pytestmark = pytest.mark.e2e

TEXT = b"# Tenancy\n\nThe quartermaster counted seventeen brass astrolabes in the hold.\n"


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "mallory", "aud": "authenticated", "role": "authenticated", "iat": now, "exp": now + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _bad_tokens() -> dict[str, str | None]:
    now = int(time.time())
    good = jwt.encode(_claims(), SECRET, algorithm="HS256")
    return {
        "missing": None,
        "not_bearer": "Basic " + base64.b64encode(b"a:b").decode(),
        "garbage": "Bearer not.a.jwt",
        "alg_none": "Bearer " + _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims()) + ".",
        "wrong_signature": "Bearer " + jwt.encode(_claims(), "another-secret-" + "y" * 32, algorithm="HS256"),
        "tampered_payload": "Bearer "
        + good.split(".")[0]
        + "."
        + _b64(_claims(sub="alice"))
        + "."
        + good.split(".")[2],
        "expired": "Bearer " + jwt.encode(_claims(exp=now - 5, iat=now - 100), SECRET, algorithm="HS256"),
        "not_yet_valid": "Bearer " + jwt.encode(_claims(nbf=now + 300), SECRET, algorithm="HS256"),
        "missing_sub": "Bearer " + jwt.encode(_claims(sub=None), SECRET, algorithm="HS256"),
        "empty_sub": "Bearer " + jwt.encode(_claims(sub=""), SECRET, algorithm="HS256"),
        "wrong_audience": "Bearer " + jwt.encode(_claims(aud="anon"), SECRET, algorithm="HS256"),
        "missing_exp": "Bearer " + jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"),
        "hs512": "Bearer " + jwt.encode(_claims(), SECRET, algorithm="HS512"),
    }


VARIANTS = [
    "missing",
    "not_bearer",
    "garbage",
    "alg_none",
    "wrong_signature",
    "tampered_payload",
    "expired",
    "not_yet_valid",
    "missing_sub",
    "empty_sub",
    "wrong_audience",
    "missing_exp",
    "hs512",
]


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_bad_token_answers_401(api: tuple[str, Settings], variant: str) -> None:
    base, _ = api
    tokens = _bad_tokens()
    assert set(tokens) == set(VARIANTS)
    value = tokens[variant]
    headers = {"authorization": value} if value else {}
    for method, path in (
        ("GET", "/documents"),
        ("POST", "/upload"),
        ("GET", "/search?q=x"),
        ("POST", "/search"),
        ("GET", f"/jobs/{uuid.uuid4()}"),
    ):
        reply = httpx.request(method, f"{base}{API}{path}", headers=headers, json={}, timeout=10)
        assert reply.status_code == 401, (variant, path, reply.text)
        assert reply.json()["error_code"] == "invalid_token"
        assert reply.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(f"{base}/health").status_code == 200  # health needs no token


def test_another_users_ids_answer_404_and_search_never_leaks(api: tuple[str, Settings]) -> None:
    base, _ = api
    alice = ApiClient(base, token(SECRET, "alice-tenant"))
    bob = ApiClient(base, token(SECRET, "bob-tenant"))
    ticket = alice.request_upload(TEXT, filename="hold.md").json()
    assert alice.put(ticket, TEXT).status_code == 200
    done = alice.wait_document(ticket["document_id"])
    assert done["state"] == "done"
    doc, job = ticket["document_id"], ticket["job_id"]
    assert bob.http.get(f"{API}/documents/{doc}").status_code == 404
    assert bob.http.get(f"{API}/jobs/{job}").status_code == 404
    assert bob.http.post(f"{API}/jobs/{job}/retry").status_code == 404
    assert bob.http.post(f"{API}/upload/{job}/complete").status_code == 404
    assert bob.http.delete(f"{API}/documents/{doc}").status_code == 404
    assert bob.http.get(f"{API}/documents").json()["documents"] == []
    for mode in ("vector", "hybrid"):
        hits = bob.http.get(f"{API}/search", params={"q": "quartermaster brass astrolabes", "mode": mode})
        assert hits.status_code == 200 and hits.json()["results"] == []
        mine = alice.http.get(f"{API}/search", params={"q": "quartermaster brass astrolabes", "mode": mode})
        assert mine.json()["results"][0]["document_id"] == doc
    assert alice.http.get(f"{API}/documents/{doc}").status_code == 200  # untouched by bob's delete
    # Alice deletes: rows and objects are gone, and the ids answer 404 from then on.
    assert alice.http.delete(f"{API}/documents/{doc}").status_code == 204
    assert alice.http.get(f"{API}/documents/{doc}").status_code == 404
    assert alice.http.get(f"{API}/jobs/{job}").status_code == 404
    assert alice.http.get(f"{API}/search", params={"q": "quartermaster astrolabes"}).json()["results"] == []


def _ticket(client: ApiClient, data: bytes, **kwargs: Any) -> dict[str, Any]:
    reply = client.request_upload(data, **kwargs)
    assert reply.status_code == 201, reply.text
    return reply.json()  # type: ignore[no-any-return]


def test_signed_url_tampered_expired_or_reused_is_refused(api: tuple[str, Settings]) -> None:
    base, settings = api
    carol = ApiClient(base, token(SECRET, "carol"))
    data = b"# Signed\n\nOne careful upload of a signed document.\n"
    ticket = _ticket(carol, data)
    url = ticket["signed_url"]
    prefix, tok = url.split("?token=")
    for i in (5, len(tok) // 2, len(tok) - 3):  # one character changed in header, payload, signature
        changed = tok[:i] + ("A" if tok[i] != "A" else "B") + tok[i + 1 :]
        reply = carol.put({**ticket, "signed_url": f"{prefix}?token={changed}"}, data)
        assert reply.status_code in (400, 403), reply.text
    other_key = re.sub(r"/raw/[^/?]+", f"/raw/{uuid.uuid4()}.md", prefix)
    assert carol.put({**ticket, "signed_url": f"{other_key}?token={tok}"}, data).status_code == 403
    # Expired: a token signed with the service's key whose lifetime is over.
    bucket_key = prefix.split("/object/upload/sign/")[1]
    expired, _ = UrlSigner(settings.jwt_secret).sign(
        bucket_key, typ="upload", expires_in=-30, len=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    reply = carol.put({**ticket, "signed_url": f"{prefix}?token={expired}"}, data)
    assert reply.status_code == 403 and "expired" in reply.json()["message"]
    assert reply.json()["error_code"] == "invalid_token"
    # The genuine URL works once; a second PUT is refused and the first object stays.
    assert carol.put(ticket, data).status_code == 200
    second = carol.put(ticket, data)
    assert second.status_code == 409 and second.json()["error_code"] == "conflict", second.text
    assert carol.wait_document(ticket["document_id"])["state"] == "done"


def test_put_larger_than_declared_is_cut_off_and_refused(api: tuple[str, Settings]) -> None:
    base, settings = api
    dave = ApiClient(base, token(SECRET, "dave"))
    data = b"# Size\n\n" + b"declared size matters. " * 40
    ticket = _ticket(dave, data)
    key = ticket["signed_url"].split("?")[0].split(f"/{settings.storage_bucket}/", 1)[1]
    path = settings.storage_dir / key
    # Announced too long: refused before reading.
    reply = dave.put(ticket, data + b"extra")
    assert reply.status_code == 413 and reply.json()["error_code"] == "size_mismatch"

    # Streamed without a length: cut off once past the declared size.
    def chunks() -> Any:
        yield data
        yield b"x" * 4096

    reply = httpx.put(ticket["signed_url"], content=chunks(), headers=ticket["upload_headers"], timeout=10)
    assert reply.status_code == 413 and reply.json()["error_code"] == "size_mismatch"
    assert not path.exists()
    short = dave.put(ticket, data[:-1])
    assert short.status_code == 400 and short.json()["error_code"] == "size_mismatch" and not path.exists()
    forged = dave.put(ticket, data[:-1] + b"!")
    assert forged.status_code == 400 and "SHA-256" in forged.json()["message"] and not path.exists()
    assert forged.json()["error_code"] == "checksum_mismatch"
    assert dave.http.get(f"{API}/documents/{ticket['document_id']}").json()["state"] == "waiting"
    assert dave.put(ticket, data).status_code == 200 and path.stat().st_size == len(data)


@pytest.mark.parametrize(
    "filename", ["../../x", "..\\..\\x.md", "a\x00b.md", "/etc/passwd", "\u202e\x00..md"]
)
def test_hostile_filenames_never_reach_a_storage_key(api: tuple[str, Settings], filename: str) -> None:
    base, settings = api
    erin = ApiClient(base, token(SECRET, "erin"))
    data = f"# Name\n\nfilename {filename!r} {uuid.uuid4()}\n".encode()
    reply = erin.request_upload(data, filename=filename)
    if reply.status_code == 422:  # nothing displayable left: refused, naming the field
        assert (
            reply.json()["error_code"] == "invalid_request" and "filename (body)" in reply.json()["message"]
        )
        return
    assert reply.status_code == 201, reply.text
    ticket = reply.json()
    key = ticket["signed_url"].split("?")[0].split(f"/{settings.storage_bucket}/", 1)[1]
    assert re.fullmatch(rf"erin/raw/{ticket['document_id']}\.md", key), key
    doc = erin.http.get(f"{API}/documents/{ticket['document_id']}").json()
    assert "/" not in doc["filename"] and "\\" not in doc["filename"] and "\x00" not in doc["filename"]
    assert erin.put(ticket, data).status_code == 200
    assert all(
        p.resolve().is_relative_to(settings.storage_dir.resolve()) for p in settings.storage_dir.rglob("*")
    )
    assert erin.http.delete(f"{API}/documents/{ticket['document_id']}").status_code == 204


def test_validation_limits_and_rate(api: tuple[str, Settings]) -> None:
    base, settings = api
    frank = ApiClient(base, token(SECRET, "frank"))
    bad = frank.http.post(
        f"{API}/upload", json={"filename": "a.md", "bytes_len": 10, "mime": "text/plain", "sha256": "nothex"}
    )
    assert bad.status_code == 422 and bad.json()["error_code"] == "invalid_request"
    assert "sha256 (body)" in bad.json()["message"] and "detail" not in bad.json()
    assert frank.request_upload(b"x" * 10, bytes_len=settings.max_file_bytes + 1).status_code == 413
    assert frank.request_upload(b"GIF89a....", mime="image/gif").status_code == 415
    codes = [frank.request_upload(f"doc {i}".encode(), source=f"docs/{i}").status_code for i in range(6)]
    assert codes[:5] == [201] * 5 and codes[5] == 429
    limited = frank.request_upload(b"doc 99")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    # the same bytes under the same source: a duplicate, still answered
    assert frank.request_upload(b"doc 0", source="docs/0").status_code == 200


def test_delete_while_the_worker_processes_never_fails(api: tuple[str, Settings]) -> None:
    base, settings = api
    gus = ApiClient(base, token(SECRET, "gus-delete"))
    for round_ in range(3):
        tickets = []
        for i in range(4):
            data = f"# Doc {round_}-{i}\n\n".encode() + b"words to chunk and embed. " * 200
            tickets.append((_ticket(gus, data), data))
        for ticket, data in tickets:
            assert gus.put(ticket, data).status_code == 200
        time.sleep(0.05 * round_)  # catch the worker at different stages
        for ticket, _ in tickets:
            reply = gus.http.delete(f"{API}/documents/{ticket['document_id']}")
            assert reply.status_code == 204, reply.text
            assert gus.http.get(f"{API}/jobs/{ticket['job_id']}").status_code == 404
    assert gus.http.get(f"{API}/documents").json()["documents"] == []
    assert not list((settings.storage_dir / "gus-delete" / "raw").glob("*"))


def test_storage_routes_need_the_service_key_and_take_raw_or_multipart_bodies(
    api: tuple[str, Settings],
) -> None:
    base, _ = api
    storage = f"{base}/storage/v1"
    user_token = token(SECRET, "henry")  # a user token is not a service key
    henry = ApiClient(base, user_token)
    data = b"# Multipart\n\nthe file part's bytes are checked, not the envelope's\n"
    ticket = _ticket(henry, data)
    key = ticket["signed_url"].split("?")[0].split("/object/upload/sign/documents/")[1]
    # storage3's upload_to_signed_url form: a cacheControl field, then the file part
    form = {"cacheControl": (None, b"3600"), "file": ("a.md", data, "text/markdown")}
    reply = httpx.put(ticket["signed_url"], files=form, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.json()["Key"] == f"documents/{key}"
    again = httpx.put(ticket["signed_url"], files=form, timeout=10)
    assert again.status_code == 409 and again.json()["statusCode"] == "409"  # works once
    service = {"authorization": f"Bearer {mint_service_key(SECRET)}"}
    stored = httpx.get(f"{storage}/object/authenticated/documents/{key}", headers=service)
    assert stored.content == data and stored.headers["content-type"].startswith("text/markdown")

    # no token: refused (the plain GET route serves public buckets only: "documents" is private)
    for method, path, status in (
        ("POST", f"/object/upload/sign/documents/{key}", 403),
        ("GET", f"/object/authenticated/documents/{key}", 403),
        ("GET", f"/object/documents/{key}", 404),
        ("DELETE", "/object/documents", 403),
    ):
        reply = httpx.request(method, storage + path, json={"prefixes": [key]})
        assert reply.status_code == status and reply.json()["statusCode"] == str(status), (method, path)
    # a user token: what Supabase gives the authenticated role without policies, i.e. nothing
    user = {"authorization": f"Bearer {user_token}"}
    signing = httpx.post(f"{storage}/object/upload/sign/documents/{key}", headers=user)
    assert signing.status_code == 403 and "row-level security" in signing.json()["message"]
    assert httpx.get(f"{storage}/object/authenticated/documents/{key}", headers=user).status_code == 404
    assert httpx.get(f"{storage}/object/info/documents/{key}", headers=user).status_code == 404
    removed = httpx.request("DELETE", f"{storage}/object/documents", json={"prefixes": [key]}, headers=user)
    assert removed.status_code == 200 and removed.json() == []
    assert httpx.post(f"{storage}/object/list/documents", json={"prefix": ""}, headers=user).json() == []
    assert httpx.get(f"{storage}/object/authenticated/documents/{key}", headers=service).content == data

    # the declared SHA-256 and length hold for the file part
    other = _ticket(henry, data.upper())
    wrong = httpx.put(other["signed_url"], files={"file": ("a.md", data)}, timeout=10)
    assert wrong.status_code == 400 and wrong.json()["error_code"] == "checksum_mismatch"
    longer = httpx.put(other["signed_url"], files={"file": ("a.md", data.upper() + b"!")}, timeout=10)
    assert longer.status_code == 413 and longer.json()["error_code"] == "size_mismatch"
    assert httpx.put(ticket["signed_url"].split("?")[0], content=data).status_code == 400  # no token
