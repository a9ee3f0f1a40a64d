"""The local storage service: the part of Supabase Storage's REST API docingest uses.

Mounted by the API under ``/storage/v1`` when ``STORAGE_BACKEND=local``, or run alone by
``docingest storage`` (then it stands in for Supabase Storage: the ``supabase`` backend
is tested against it). Routes, as Supabase Storage (storage-js ``StorageFileApi``):

- ``POST /object/upload/sign/{bucket}/{path}`` (service key) -> ``{"url": "/object/upload/sign/...?token=...", "token"}``
- ``PUT  /object/upload/sign/{bucket}/{path}?token=`` (the token is the credential) -> ``{"Key"}``
- ``POST /object/{bucket}/{path}`` (service key; ``x-upsert``) -> ``{"Key"}``
- ``HEAD|GET /object/{bucket}/{path}`` and ``/object/authenticated/...`` (service key)
- ``GET  /object/info/{bucket}/{path}`` (service key) -> ``{"name", "size", ...}``
- ``DELETE /object/{bucket}`` ``{"prefixes": [...]}`` (service key)
- ``POST /object/sign/{bucket}/{path}`` ``{"expiresIn"}`` -> ``{"signedURL"}``; ``GET`` it with ``?token=``

Uploads are streamed to a temporary file (never held in memory), cut off as soon as they
pass the declared length (or the size limit), checked against the declared SHA-256, and
linked into place only if no object exists there (``x-upsert: false``): a signed upload
URL works once. Errors (:class:`~docingest.errors.StorageError` and its subclasses, which
carry the status, Supabase's ``error`` string and docingest's ``error_code``) answer
Supabase's ``{"statusCode", "error", "message"}`` plus ``error_code``. Only raw bodies are
accepted (not ``multipart/form-data``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from docingest.api.auth import bearer, verify_service_key
from docingest.errors import (
    BodyChecksumMismatch,
    BodyLongerThanDeclared,
    BodySizeMismatch,
    BodyTooLarge,
    BucketNotFound,
    ClientDisconnected,
    InvalidObjectKey,
    MultipartRefused,
    ObjectExists,
    ObjectNotFound,
    SignedUrlTokenMissing,
    StorageError,
    StorageUnauthorized,
    Unauthorized,
)
from docingest.providers.storage.local import LocalStorage
from docingest.providers.storage.signing import UrlSigner

log = logging.getLogger("docingest.providers.storage")
OnStored = Callable[[str], None]
_WRITE_BYTES = 1024 * 1024


class StorageService:
    """The service's state: one bucket on local disk, the URL signer and the JWT secret.

    Args:
        storage: the bucket's ``LocalStorage``.
        signer: signs and verifies URL tokens.
        jwt_secret: verifies service-role keys.
        max_bytes: the bucket's size limit.
        on_stored: called (in a thread) with the key after each signed upload completes.
    """

    def __init__(
        self,
        storage: LocalStorage,
        *,
        signer: UrlSigner,
        jwt_secret: str,
        max_bytes: int,
        upload_ttl_seconds: float = 7200,
        on_stored: OnStored | None = None,
    ) -> None:
        self.storage = storage
        self.signer = signer
        self.jwt_secret = jwt_secret
        self.max_bytes = max_bytes
        self.upload_ttl_seconds = upload_ttl_seconds
        self.on_stored = on_stored

    def authorize(self, request: Request) -> None:
        try:
            verify_service_key(bearer(request.headers.get("authorization")), self.jwt_secret)
        except Unauthorized as exc:
            raise StorageUnauthorized(exc.message) from exc

    def key(self, bucket: str, path: str) -> str:
        if bucket != self.storage.bucket:
            raise BucketNotFound(f"bucket {bucket!r} does not exist")
        key = path.strip("/")
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or "\x00" in key or "\\" in key:
            raise InvalidObjectKey(f"invalid object key {path!r}")
        try:
            self.storage._path(key)
        except ValueError as exc:
            raise InvalidObjectKey(str(exc)) from exc
        return key

    def verify(self, token: str | None, bucket: str, key: str, typ: str) -> dict[str, Any]:
        if not token:
            raise SignedUrlTokenMissing("the signed URL has no token")
        return self.signer.verify(token, url=f"{bucket}/{key}", typ=typ)  # or SignedUrlError

    async def receive(
        self,
        request: Request,
        key: str,
        *,
        expected_len: int | None,
        sha256: str | None,
        limit: int,
        overwrite: bool,
    ) -> int:
        """Stream the request body to ``key``; returns its size.

        Raises:
            ObjectExists: 409, an object is stored under ``key`` (and not ``overwrite``).
            BodyLongerThanDeclared: 413 ``size_mismatch``, longer than declared; reading
                stops there.
            BodyTooLarge: 413 ``file_too_large``, longer than the limit; reading stops there.
            BodySizeMismatch: 400 ``size_mismatch``, shorter than declared.
            BodyChecksumMismatch: 400 ``checksum_mismatch``, another SHA-256.
            MultipartRefused: 415, a multipart body.
            ClientDisconnected: 400 ``bad_request``, the client hung up before the end of
                the body (one warning logged, the partial temporary file removed: the signed
                URL is still unused, the client can PUT again).
        """
        if request.headers.get("content-type", "").startswith("multipart/"):
            raise MultipartRefused("send the raw bytes as the body, not multipart/form-data")
        too_long: type[StorageError] = (
            BodyLongerThanDeclared if expected_len is not None and expected_len <= limit else BodyTooLarge
        )
        announced = request.headers.get("content-length")
        if announced is not None and announced.isdigit() and int(announced) > limit:
            raise too_long(
                f"the body has {announced} bytes; this URL accepts at most {limit}"
                + (
                    ", the size declared for it: request a new upload declaring the file's real bytes_len"
                    if too_long is BodyLongerThanDeclared
                    else ""
                )
            )
        if not overwrite and self.storage.head(key) is not None:
            raise ObjectExists("The resource already exists")
        fd, tmp = await run_in_threadpool(self.storage.new_temp, key)
        out = os.fdopen(fd, "wb")
        try:
            digest, size, pending = hashlib.sha256(), 0, bytearray()
            try:
                async for block in request.stream():
                    size += len(block)
                    if size > limit:
                        raise too_long(f"the body is longer than the {limit} bytes this URL accepts")
                    digest.update(block)
                    pending += block
                    if len(pending) >= _WRITE_BYTES:
                        await run_in_threadpool(out.write, bytes(pending))
                        pending.clear()
            except ClientDisconnect:
                # Not a server error: nobody is left to answer; the partial file goes (finally).
                log.warning(
                    "upload of %s interrupted: the client disconnected after %d bytes%s; "
                    "partial data discarded",
                    key,
                    size,
                    f" of {expected_len}" if expected_len is not None else "",
                )
                raise ClientDisconnected(f"the client disconnected after {size} bytes") from None
            await run_in_threadpool(out.write, bytes(pending))
            out.close()
            if expected_len is not None and size != expected_len:
                raise BodySizeMismatch(f"received {size} bytes, declared {expected_len}")
            if sha256 is not None and digest.hexdigest() != sha256:
                raise BodyChecksumMismatch(
                    f"the SHA-256 of the body is {digest.hexdigest()}, declared {sha256}"
                )
            if not await run_in_threadpool(self.storage.commit_temp, tmp, key, overwrite=overwrite):
                raise ObjectExists("The resource already exists")
            return size
        finally:
            out.close()
            tmp.unlink(missing_ok=True)

    def stored(self, key: str) -> None:
        if self.on_stored is None:
            return
        try:
            self.on_stored(key)
        except Exception:
            log.exception("upload of %s stored but its job was not queued", key)


def storage_router(service: StorageService) -> APIRouter:
    """The ``/storage/v1`` routes over ``service`` (not in the API's OpenAPI schema)."""
    router = APIRouter(prefix="/storage/v1", include_in_schema=False)

    @router.post("/object/upload/sign/{bucket}/{path:path}")
    async def create_signed_upload_url(bucket: str, path: str, request: Request) -> dict[str, str]:
        service.authorize(request)
        key = service.key(bucket, path)
        token, _ = service.signer.sign(
            f"{bucket}/{key}", typ="upload", expires_in=service.upload_ttl_seconds, max=service.max_bytes
        )
        return {"url": f"/object/upload/sign/{bucket}/{key}?token={token}", "token": token}

    @router.put("/object/upload/sign/{bucket}/{path:path}")
    async def upload_to_signed_url(
        bucket: str, path: str, request: Request, token: str | None = None
    ) -> dict[str, str]:
        key = service.key(bucket, path)
        claims = service.verify(token, bucket, key, "upload")
        expected = claims.get("len")
        limit = min(int(claims.get("max") or service.max_bytes), service.max_bytes)
        if expected is not None:
            limit = min(limit, int(expected))
        await service.receive(
            request, key, expected_len=expected, sha256=claims.get("sha256"), limit=limit, overwrite=False
        )
        await run_in_threadpool(service.stored, key)
        return {"Key": f"{bucket}/{key}"}

    @router.post("/object/sign/{bucket}/{path:path}")
    async def create_signed_url(bucket: str, path: str, request: Request) -> dict[str, str]:
        service.authorize(request)
        key = service.key(bucket, path)
        try:
            body = await request.json()
            expires_in = float(body.get("expiresIn", 60))
        except (ValueError, AttributeError, TypeError) as exc:
            raise StorageError('body must be {"expiresIn": seconds}') from exc
        token, _ = service.signer.sign(f"{bucket}/{key}", typ="download", expires_in=expires_in)
        return {"signedURL": f"/object/sign/{bucket}/{key}?token={token}"}

    @router.get("/object/sign/{bucket}/{path:path}")
    async def download_signed(bucket: str, path: str, token: str | None = None) -> Response:
        key = service.key(bucket, path)
        service.verify(token, bucket, key, "download")
        return _file(service, key)

    @router.get("/object/info/{bucket}/{path:path}")
    async def info(bucket: str, path: str, request: Request) -> dict[str, Any]:
        service.authorize(request)
        key = service.key(bucket, path)
        head = service.storage.head(key)
        if head is None:
            raise ObjectNotFound("Object not found")
        return {"name": key, "bucket_id": bucket, "size": head.size, "id": key}

    @router.delete("/object/{bucket}")
    async def remove(bucket: str, request: Request) -> list[dict[str, str]]:
        service.authorize(request)
        try:
            prefixes = (await request.json())["prefixes"]
            assert isinstance(prefixes, list) and all(isinstance(p, str) for p in prefixes)
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise StorageError('body must be {"prefixes": [paths]}') from exc
        removed = []
        for p in prefixes:
            key = service.key(bucket, p)
            if service.storage.head(key) is not None:
                await run_in_threadpool(service.storage.delete, key)
                removed.append({"name": key, "bucket_id": bucket})
        return removed

    for prefix in ("/object/authenticated", "/object"):
        router.add_api_route(prefix + "/{bucket}/{path:path}", _make_get(service), methods=["GET", "HEAD"])
    router.add_api_route("/object/{bucket}/{path:path}", _make_upload(service), methods=["POST", "PUT"])
    return router


def _file(service: StorageService, key: str) -> Response:
    if service.storage.head(key) is None:
        raise ObjectNotFound("Object not found")
    return FileResponse(service.storage._path(key), media_type="application/octet-stream")


def _make_get(service: StorageService) -> Callable[..., Any]:
    async def get_object(bucket: str, path: str, request: Request) -> Response:
        service.authorize(request)
        key = service.key(bucket, path)
        if request.method == "HEAD":
            head = service.storage.head(key)
            if head is None:
                return Response(status_code=404)
            return Response(
                headers={"content-length": str(head.size), "content-type": "application/octet-stream"}
            )
        return _file(service, key)

    return get_object


def _make_upload(service: StorageService) -> Callable[..., Any]:
    async def upload(bucket: str, path: str, request: Request) -> dict[str, str]:
        service.authorize(request)
        key = service.key(bucket, path)
        upsert = request.method == "PUT" or request.headers.get("x-upsert", "false").lower() == "true"
        await service.receive(
            request, key, expected_len=None, sha256=None, limit=service.max_bytes, overwrite=upsert
        )
        return {"Key": f"{bucket}/{key}"}

    return upload


async def storage_error_handler(request: Request, exc: Exception) -> Response:
    """Exception handler: a ``StorageError`` as Supabase's error body
    ``{"statusCode", "error", "message", "error_code"}`` with its ``http_status``."""
    assert isinstance(exc, StorageError)
    return JSONResponse(
        {
            "statusCode": str(exc.http_status),
            "error": exc.supabase_error,
            "message": exc.message,
            "error_code": exc.error_code,
        },
        status_code=exc.http_status,
    )
