"""The local storage service's refusals: Supabase Storage's body, the status and the
``error`` string each ``StorageError`` class carries, docingest's ``error_code``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from docingest.api.app import create_storage_app
from docingest.providers.storage.signing import UrlSigner, mint_service_key
from docingest.settings import Settings


@pytest.fixture
def service(tmp_path: Path) -> tuple[TestClient, Settings]:
    settings = Settings(data_dir=tmp_path / "data", environment="test")
    return TestClient(create_storage_app(settings)), settings


def _body(reply: Any) -> tuple[int, dict[str, str]]:
    return reply.status_code, reply.json()


def test_each_refusal_answers_supabase_shape_with_its_status_error_and_code(
    service: tuple[TestClient, Settings],
) -> None:
    client, settings = service
    bucket, key = settings.storage_bucket, "u1/raw/doc.txt"
    auth = {"Authorization": f"Bearer {mint_service_key(settings.jwt_secret)}"}
    signer = UrlSigner(settings.jwt_secret)
    data = b"hello storage"

    def upload_token(**claims: Any) -> str:
        return signer.sign(
            f"{bucket}/{key}", typ="upload", expires_in=60, max=settings.max_file_bytes, **claims
        )[0]

    signed = f"/storage/v1/object/upload/sign/{bucket}/{key}"
    cases: list[tuple[Any, int, str, str, str]] = [
        (
            client.get(f"/storage/v1/object/authenticated/{bucket}/{key}"),
            403,
            "Unauthorized",
            "invalid_token",
            "missing",
        ),
        # without a token the plain route serves public buckets only, as Supabase's
        (client.get(f"/storage/v1/object/{bucket}/{key}"), 404, "Bucket not found", "not_found", "does not"),
        (
            client.get(f"/storage/v1/object/other/{key}", headers=auth),
            404,
            "Bucket not found",
            "not_found",
            "bucket 'other' does not exist",
        ),
        (
            client.get(f"/storage/v1/object/{bucket}/{key}", headers=auth),
            404,
            "not_found",
            "not_found",
            "Object not found",
        ),
        (
            client.get(f"/storage/v1/object/info/{bucket}/{key}", headers=auth),
            404,
            "not_found",
            "not_found",
            "Object not found",
        ),
        (client.put(signed, content=data), 400, "InvalidJWT", "bad_request", "the signed URL has no token"),
        (
            client.put(f"{signed}?token=forged", content=data),
            403,
            "InvalidJWT",
            "invalid_token",
            "invalid signature",
        ),
        (
            client.put(
                f"{signed}?token={upload_token()}",
                content=b"--x\r\ncontent-disposition: form-data; name=cacheControl\r\n\r\n60\r\n--x--\r\n",
                headers={"content-type": "multipart/form-data; boundary=x"},
            ),
            400,
            "InvalidRequest",
            "bad_request",
            "no file part",
        ),
        (
            client.put(
                f"{signed}?token={upload_token()}",
                content=b"--x\r\ncontent-disposition: form-data; name=file; filename=a\r\n\r\nabc",
                headers={"content-type": "multipart/form-data; boundary=x"},
            ),
            400,
            "InvalidRequest",
            "bad_request",
            "ended before its closing boundary",
        ),
        (
            client.put(f"{signed}?token={upload_token(len=len(data) - 1)}", content=data),
            413,
            "Payload too large",
            "size_mismatch",
            "accepts at most",
        ),
        (
            client.put(f"{signed}?token={upload_token(len=len(data) + 1)}", content=data),
            400,
            "InvalidRequest",
            "size_mismatch",
            f"received {len(data)} bytes",
        ),
        (
            client.put(
                f"{signed}?token={upload_token(sha256=hashlib.sha256(b'other').hexdigest())}", content=data
            ),
            400,
            "InvalidChecksum",
            "checksum_mismatch",
            "SHA-256",
        ),
        (
            client.post(f"/storage/v1/object/sign/{bucket}/{key}", headers=auth, content=b"not json"),
            400,
            "InvalidRequest",
            "bad_request",
            "not JSON",
        ),
        (
            client.post(f"/storage/v1/object/sign/{bucket}/{key}", headers=auth, json={}),
            400,
            "InvalidRequest",
            "bad_request",
            "expiresIn",
        ),
        (
            client.request("DELETE", f"/storage/v1/object/{bucket}", headers=auth, json={"prefixes": 3}),
            400,
            "InvalidRequest",
            "bad_request",
            "prefixes",
        ),
    ]
    for reply, status, error, code, words in cases:
        got_status, body = _body(reply)
        assert (got_status, body["statusCode"], body["error"], body["error_code"]) == (
            status,
            str(status),
            error,
            code,
        ), body
        assert words in body["message"] and set(body) == {
            "statusCode",
            "error",
            "code",
            "message",
            "error_code",
        }
    first = client.put(f"{signed}?token={upload_token(len=len(data))}", content=data)
    assert first.status_code == 200, first.text
    again = client.put(f"{signed}?token={upload_token(len=len(data))}", content=data)
    assert _body(again) == (
        409,
        {
            "statusCode": "409",
            "error": "Duplicate",
            "code": "KeyAlreadyExists",
            "message": "The resource already exists",
            "error_code": "conflict",
        },
    )
    small = create_storage_app(Settings(data_dir=settings.data_dir, environment="test", max_file_bytes=4))
    over = TestClient(small).post(f"/storage/v1/object/{bucket}/u1/raw/big.txt", headers=auth, content=data)
    status, body = _body(over)
    assert (status, body["error"], body["error_code"]) == (413, "Payload too large", "file_too_large"), body
