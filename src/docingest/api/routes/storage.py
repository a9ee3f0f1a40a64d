"""The local storage service: Supabase Storage's REST API for objects and buckets.

Mounted by the API under ``/storage/v1`` when ``STORAGE_BACKEND=local``, or run alone by
``docingest storage`` (then it stands in for Supabase Storage: the ``supabase`` backend is
tested against it, and so are Supabase's own clients, ``storage3`` and ``@supabase/storage-js``).
The routes, bodies and answers are those of ``supabase/storage`` (``src/http/routes/object``
and ``bucket``); docs/storage.md lists them with what is not implemented (image
transformations under ``/render``, TUS resumable uploads under ``/upload/resumable``: both
answer 404 in Supabase's error shape).

Authorization, as Supabase (behind its API gateway): the token is ``Authorization: Bearer``,
else the ``apikey`` header; an HS256 JWT signed with ``JWT_SECRET`` with an ``exp``. The
``service_role`` role may do everything. Any other role (``anon``, ``authenticated``) gets
what Supabase gives it when no row-level security policy is defined: reads of public buckets'
objects, signed URLs (the token is the credential), and nothing else: writes answer 403
(``new row violates row-level security policy``), reads of private objects 404, listings and
removals nothing (``[]``), bucket reads 404 and an empty bucket list.

Uploads (``POST``/``PUT /object/{bucket}/{key}``, ``PUT /object/upload/sign/...``) take the raw
bytes as the body (content type from ``Content-Type``, ``Cache-Control`` kept, ``x-metadata``:
base64 JSON) or ``multipart/form-data`` (the first file part; fields ``cacheControl``,
``contentType``, ``metadata``), as Supabase's ``fileUploadFromRequest``. Either is streamed to a
temporary file (a multipart body through python-multipart's push parser, never held in
memory), cut off as soon as the file's bytes pass the limit (the declared length of a signed
URL, the bucket's ``file_size_limit``, ``MAX_FILE_BYTES``), checked against the declared
SHA-256 (the file's bytes, not the envelope's), and linked into place only if no object
exists there unless upserting: a signed upload URL works once. The content type must match the
bucket's ``allowed_mime_types``.

Every answer that is not a success, on every route under ``/storage/v1`` (unknown paths and
methods included), is Supabase's error body ``{"statusCode", "error", "code", "message"}``
plus docingest's ``error_code``; the HTTP status is ``statusCode`` (Supabase itself answers
most errors with HTTP 400 and the status only in the body; its clients read the body).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from docingest.api.storage_service import (
    ANON,
    WRITE_BYTES,
    Principal,
    StorageService,
    check_mime_allowed,
    decode_x_metadata,
    folder_clash,
)
from docingest.errors import (
    BodyTooLarge,
    BucketNotFound,
    DocingestError,
    InvalidObjectKey,
    ObjectExists,
    ObjectNotFound,
    RangeNotSatisfiable,
    StorageError,
    StorageMethodNotAllowed,
    StorageRouteNotFound,
    StorageUnauthorized,
)
from docingest.providers.storage.buckets import (
    Bucket,
    ObjectMeta,
    check_bucket_name,
    check_key,
    check_prefix,
    iso,
    parse_size_limit,
)

log = logging.getLogger("docingest.providers.storage")
_RLS = "new row violates row-level security policy"
_NOT_VISIBLE = "Either the object does not exist or you do not have access to it"
_LIST_COLUMNS = ("name", "updated_at", "created_at", "last_accessed_at")
_LIST_V2_COLUMNS = ("name", "updated_at", "created_at")


def storage_error_body(exc: StorageError) -> JSONResponse:
    """``exc`` as Supabase's error body ``{"statusCode", "error", "code", "message", "error_code"}``
    with its ``http_status`` (a 405 also gets ``Allow``)."""
    headers = getattr(exc, "headers", None)
    return JSONResponse(
        {
            "statusCode": str(exc.http_status),
            "error": exc.supabase_error,
            "code": exc.supabase_code,
            "message": exc.message,
            "error_code": exc.error_code,
        },
        status_code=exc.http_status,
        headers=headers,
    )


async def storage_error_handler(request: Request, exc: Exception) -> Response:
    """Exception handler: a ``StorageError`` as :func:`storage_error_body`."""
    assert isinstance(exc, StorageError)
    return storage_error_body(exc)


def _as_storage_error(exc: Exception) -> StorageError:
    """Any exception of a storage route as a ``StorageError`` (Supabase's body for all)."""
    if isinstance(exc, StorageError):
        return exc
    out = StorageError(str(exc))
    if isinstance(exc, DocingestError):
        out.http_status = exc.http_status
        out.error_code = exc.error_code
        out.message = exc.message
    elif isinstance(exc, StarletteHTTPException):
        out.http_status = exc.status_code
        out.message = str(exc.detail)
    else:
        log.exception("storage route failed", exc_info=exc)
        out.http_status = 500
        out.error_code = "internal_error"
        out.message = "Internal server error"
    if out.http_status >= 500:
        out.supabase_error = out.supabase_code = "InternalError"
    return out


class _StorageRoute(APIRoute):
    """A route whose every failure (FastAPI's validation included) answers Supabase's error body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                # Starlette's path parameters end before a trailing newline ("$" matches there),
                # so "a\n" would reach a route as the key "a": a control character in the path
                # is refused here, as check_key refuses it anywhere else in a key.
                if any(ord(c) < 0x20 or c == "\x7f" for c in request.scope["path"]):
                    raise InvalidObjectKey(f"Invalid key: control characters in {request.scope['path']!r}")
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every failure answers Supabase's body
                return storage_error_body(_as_storage_error(exc))

        return route


def _disposition(download: str | None) -> dict[str, str]:
    """``Content-Disposition`` for ``?download=`` as Supabase's renderer: ``attachment;`` for an
    empty value, else the percent-encoded file name in ``filename`` and ``filename*``."""
    if download is None:
        return {}
    if download == "":
        return {"content-disposition": "attachment;"}
    name = quote(download, safe="-_.!~*'()")  # encodeURIComponent's set
    return {"content-disposition": f"attachment; filename={name}; filename*=UTF-8''{name}"}


def _object_headers(meta: ObjectMeta) -> dict[str, str]:
    return {
        "etag": meta.etag,
        "cache-control": meta.cache_control,
        "last-modified": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(meta.updated_at)),
        "accept-ranges": "bytes",
    }


#: A ``Range`` header of byte ranges (RFC 9110, section 14.1.2); any other form is ignored.
_BYTE_RANGES = re.compile(r"bytes=\s*\d*-\d*(\s*,\s*\d*-\d*)*\s*")


def _serve(service: StorageService, request: Request, bucket: Bucket, key: str) -> Response:
    """The object's bytes (or, for ``HEAD``, its headers) with its stored content type;
    ``download`` gives a ``Content-Disposition``, a matching ``If-None-Match`` a 304, a
    ``Range`` of bytes a 206 (RFC 9110: a range header of another form is ignored).

    Raises:
        ObjectNotFound: 404. RangeNotSatisfiable: 416, every range starts past the end.
    """
    meta = service.meta(bucket, key)
    path = service.buckets.storage(bucket.id)._path(key)
    tags = {t.strip().removeprefix("W/") for t in request.headers.get("if-none-match", "").split(",")}
    if meta.etag in tags or "*" in tags:
        return Response(status_code=304, headers=_object_headers(meta))
    ranges = request.headers.get("range")
    if ranges is not None:
        specs = _byte_ranges(ranges)
        if specs is None:
            request.scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k != b"range"]
        elif not _satisfiable(specs, meta.size):
            raise RangeNotSatisfiable(f"the range {ranges!r} starts past the object's {meta.size} bytes")
    # the stored type as given (Starlette would append "; charset=utf-8" to a text/* media_type)
    headers = {
        "content-type": meta.mimetype,
        **_object_headers(meta),
        **_disposition(request.query_params.get("download")),
    }
    return FileResponse(path, media_type=meta.mimetype, headers=headers)


def _byte_ranges(header: str) -> list[tuple[str, str]] | None:
    """The ``(first, last)`` strings of a ``Range: bytes=...`` header, or None when it is not
    one RFC 9110 (section 14.1.2) allows: another form, a spec with neither end, or a last
    byte before the first. A download ignores such a header."""
    if not _BYTE_RANGES.fullmatch(header):
        return None
    specs: list[tuple[str, str]] = []
    for spec in header.split("=", 1)[1].split(","):
        first, _, last = spec.strip().partition("-")
        if (first, last) == ("", "") or (first and last and int(first) > int(last)):
            return None
        specs.append((first, last))
    return specs


def _satisfiable(specs: list[tuple[str, str]], size: int) -> bool:
    """Whether some byte range selects a byte of a ``size``-byte object."""
    for first, last in specs:
        if first == "" and last != "0" and size > 0:  # a suffix: the last N bytes
            return True
        if first != "" and int(first) < size:
            return True
    return False


def _info(bucket: Bucket, key: str, meta: ObjectMeta) -> dict[str, Any]:
    """``GET /object/info``'s body (Supabase's ``InfoRenderer``)."""
    return {
        "id": meta.id,
        "name": key,
        "version": None,
        "bucket_id": bucket.id,
        "size": meta.size,
        "content_type": meta.mimetype,
        "cache_control": meta.cache_control,
        "etag": meta.etag,
        "metadata": meta.user_metadata,
        "last_modified": iso(meta.updated_at),
        "created_at": iso(meta.created_at),
    }


def _object_row(bucket: Bucket, key: str, name: str, meta: ObjectMeta) -> dict[str, Any]:
    """An object as a row of Supabase's listings (``name`` relative or full, as the route says)."""
    return {
        "name": name,
        "id": meta.id,
        "bucket_id": bucket.id,
        "owner": meta.owner or None,
        "updated_at": iso(meta.updated_at),
        "created_at": iso(meta.created_at),
        "last_accessed_at": iso(meta.updated_at),
        "metadata": meta.supabase_metadata(),
        "user_metadata": meta.user_metadata,
    }


async def _json(request: Request) -> dict[str, Any]:
    """The JSON object body (an empty body is ``{}``).

    Raises:
        StorageError: 400, not a JSON object.
    """
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested past the parser's depth
        raise StorageError(f"the body is not JSON: {type(exc).__name__}: {exc}"[:300]) from exc
    if not isinstance(body, dict):
        raise StorageError("the body must be a JSON object")
    return body


def _int(body: dict[str, Any], name: str, default: int | None, *, minimum: int) -> int:
    """An integer field (``"60"`` accepted, as Supabase's coercing schema); required when no default.

    Raises:
        StorageError: 400.
    """
    value = body.get(name, default)
    if value is None:
        raise StorageError(f"body must have required property '{name}'")
    try:
        number = float(value) if not isinstance(value, bool) else None
        number = int(number) if number is not None and number.is_integer() and abs(number) < 2**53 else None
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum:
        raise StorageError(f"body/{name} must be an integer >= {minimum}")
    return number


def _bool(body: dict[str, Any], name: str, default: bool) -> bool:
    """A boolean field (``true``/``false``; null or absent: ``default``).

    Raises:
        StorageError: 400, anything else (``"yes"`` is not taken for true).
    """
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise StorageError(f"body/{name} must be boolean")
    return value


def _str(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise StorageError(f"body must have required string property '{name}'")
    return value


def _sort(body: dict[str, Any], columns: tuple[str, ...]) -> tuple[str, bool]:
    """``(column, descending)`` of a listing's ``sortBy``.

    Raises:
        StorageError: 400, a column or order Supabase does not accept.
    """
    sort = body.get("sortBy") or {}
    if not isinstance(sort, dict):
        raise StorageError("body/sortBy must be an object")
    column = sort.get("column", "name")
    order = str(sort.get("order") or "asc").lower()
    if column not in columns:
        raise StorageError(f"body/sortBy/column must be one of {', '.join(columns)}")
    if order not in ("asc", "desc"):
        raise StorageError("body/sortBy/order must be asc or desc")
    return column, order == "desc"


def _sort_value(meta: ObjectMeta | None, column: str) -> float:
    if meta is None:
        return 0.0
    return meta.created_at if column == "created_at" else meta.updated_at


def _rls_denied() -> StorageUnauthorized:
    return StorageUnauthorized(_RLS)


def storage_router(service: StorageService) -> APIRouter:
    """The ``/storage/v1`` routes over ``service`` (not in the API's OpenAPI schema)."""
    router = APIRouter(prefix="/storage/v1", include_in_schema=False, route_class=_StorageRoute)
    buckets = service.buckets

    def readable(principal: Principal, bucket: Bucket) -> bool:
        """Whether ``principal`` sees the objects of ``bucket`` (public, or service role)."""
        return principal.superuser or bucket.public

    # --- buckets ------------------------------------------------------------------------
    def managed_bucket(bucket_id: str, request: Request) -> Bucket:
        """The bucket a bucket route manages; only the service role sees buckets (no policy
        on ``storage.buckets``), so to any other role it does not exist.

        Raises:
            StorageUnauthorized: 403, no valid token. InvalidBucketName: 400.
            BucketNotFound: 404, no such bucket, or not the service role.
        """
        principal = service.principal(request)
        bucket = service.bucket(bucket_id)
        if not principal.superuser:
            raise BucketNotFound(f"bucket {bucket_id!r} does not exist")
        return bucket

    @router.get("/bucket")
    async def list_buckets(request: Request) -> list[dict[str, Any]]:
        principal = service.principal(request)
        if not principal.superuser:
            return []  # no policy on storage.buckets: nothing is visible
        q = request.query_params
        found = buckets.list()
        if q.get("search"):
            found = [b for b in found if q["search"].lower() in b.name.lower()]
        column = q.get("sortColumn") or "name"
        if column not in ("id", "name", "created_at", "updated_at"):
            raise StorageError("querystring/sortColumn must be one of id, name, created_at, updated_at")
        found.sort(key=lambda b: getattr(b, column), reverse=(q.get("sortOrder") or "asc").lower() == "desc")
        offset = _int(dict(q), "offset", 0, minimum=0)
        limit = _int(dict(q), "limit", len(found) or 1, minimum=1)
        return [b.to_json() for b in found[offset : offset + limit]]

    @router.post("/bucket")
    async def create_bucket(request: Request) -> dict[str, str]:
        principal = service.principal(request)
        body = await _json(request)
        name = _str(body, "name", body.get("id"))
        bucket_id = check_bucket_name(_str(body, "id", name))
        check_bucket_name(name)
        if not principal.superuser:
            raise _rls_denied()
        mimes = body.get("allowed_mime_types")
        if mimes is not None and (not isinstance(mimes, list) or not all(isinstance(m, str) for m in mimes)):
            raise StorageError("body/allowed_mime_types must be an array of strings")
        buckets.create(
            Bucket(
                id=bucket_id,
                name=name,
                public=_bool(body, "public", False),
                file_size_limit=parse_size_limit(body.get("file_size_limit")),
                allowed_mime_types=[m for m in mimes if m] if mimes else None,
                owner=principal.sub,
            )
        )
        return {"name": bucket_id}

    @router.get("/bucket/{bucket_id}")
    async def get_bucket(bucket_id: str, request: Request) -> dict[str, Any]:
        bucket = managed_bucket(bucket_id, request)
        return bucket.to_json()

    @router.put("/bucket/{bucket_id}")
    async def update_bucket(bucket_id: str, request: Request) -> dict[str, str]:
        body = await _json(request)
        bucket = managed_bucket(bucket_id, request)
        if "public" in body:
            bucket.public = _bool(body, "public", bucket.public)
        if "file_size_limit" in body:
            bucket.file_size_limit = parse_size_limit(body["file_size_limit"])
        if "allowed_mime_types" in body:
            mimes = body["allowed_mime_types"]
            if mimes is not None and not isinstance(mimes, list):
                raise StorageError("body/allowed_mime_types must be an array of strings")
            bucket.allowed_mime_types = [str(m) for m in mimes if m] if mimes else None
        await run_in_threadpool(buckets.save, bucket)
        return {"message": "Successfully updated"}

    @router.post("/bucket/{bucket_id}/empty")
    async def empty_bucket(bucket_id: str, request: Request) -> dict[str, str]:
        bucket = managed_bucket(bucket_id, request)
        buckets.check_emptiable(bucket.id)

        def empty() -> None:
            for key in list(buckets.keys(bucket.id)):
                buckets.delete_object(bucket.id, key)

        await run_in_threadpool(empty)
        return {"message": "Successfully emptied"}

    @router.delete("/bucket/{bucket_id}")
    async def delete_bucket(bucket_id: str, request: Request) -> dict[str, str]:
        managed_bucket(bucket_id, request)
        await run_in_threadpool(buckets.delete, bucket_id)
        return {"message": "Successfully deleted"}

    # --- listings, move, copy, signed URLs ----------------------------------------------
    @router.post("/object/list/{bucket_name}")
    async def list_objects(bucket_name: str, request: Request) -> list[dict[str, Any]]:
        principal = service.principal(request)
        body = await _json(request)
        prefix = check_prefix(_str(body, "prefix", ""))
        limit = _int(body, "limit", 100, minimum=1)
        offset = _int(body, "offset", 0, minimum=0)
        search = body.get("search") or ""
        if not isinstance(search, str):
            raise StorageError("body/search must be a string")
        column, desc = _sort(body, _LIST_COLUMNS)
        check_bucket_name(bucket_name)
        bucket = buckets.get(bucket_name)
        if bucket is None or not principal.superuser:
            return []  # Supabase's search finds no rows (row-level security, or no bucket)
        return await run_in_threadpool(
            _list_v1, service, bucket, prefix, search, min(limit, 1500), offset, column, desc
        )

    @router.post("/object/list-v2/{bucket_name}")
    async def list_objects_v2(bucket_name: str, request: Request) -> dict[str, Any]:
        principal = service.principal(request)
        body = await _json(request)
        prefix = check_prefix(_str(body, "prefix", ""))
        limit = min(_int(body, "limit", 1000, minimum=1), 1000)
        cursor = body.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise StorageError("body/cursor must be a string")
        delimiter = bool(body.get("with_delimiter") or False)
        column, desc = _sort(body, _LIST_V2_COLUMNS)
        check_bucket_name(bucket_name)
        bucket = buckets.get(bucket_name)
        if bucket is None or not principal.superuser:
            return {"hasNext": False, "nextCursor": None, "folders": [], "objects": []}
        return await run_in_threadpool(
            _list_v2, service, bucket, prefix, limit, cursor or None, delimiter, column, desc
        )

    async def _move_or_copy(request: Request, *, copy: bool) -> dict[str, Any]:
        principal = service.principal(request)
        body = await _json(request)
        src_bucket = service.bucket(_str(body, "bucketId"))
        src_key = check_key(_str(body, "sourceKey"))
        dst_bucket = service.bucket(_str(body, "destinationBucket", src_bucket.id) or src_bucket.id)
        dst_key = check_key(_str(body, "destinationKey"))
        if not principal.superuser:
            raise ObjectNotFound("Object not found")  # the source is not visible to this role
        src_meta = service.meta(src_bucket, src_key)
        upsert = copy and request.headers.get("x-upsert", "").lower() == "true"
        check_mime_allowed(src_meta.mimetype, dst_bucket)
        if src_meta.size > service.limit(dst_bucket):
            raise BodyTooLarge(f"The object exceeded the maximum allowed size of {dst_bucket.id!r}")
        if (src_bucket.id, src_key) == (dst_bucket.id, dst_key):
            if copy and not upsert:
                raise ObjectExists("The resource already exists")
            return {"message": "Successfully moved", "Id": src_meta.id, "Key": dst_key}
        now = time.time()
        meta = replace(src_meta, updated_at=now)
        if copy:
            meta = replace(meta, id=str(uuid.uuid4()), created_at=now, owner=principal.sub)
            extra = body.get("metadata")
            if isinstance(extra, dict):
                if isinstance(extra.get("cacheControl"), str):
                    meta.cache_control = extra["cacheControl"]
                if isinstance(extra.get("mimetype"), str):
                    meta.mimetype = extra["mimetype"]
            if body.get("copyMetadata") is False:
                meta.user_metadata = None
            user = decode_x_metadata(request.headers.get("x-metadata"))
            if user is not None:
                meta.user_metadata = user

        def copy_bytes() -> Path:
            """The source's bytes in a temporary file beside the destination."""
            fd, tmp = buckets.storage(dst_bucket.id).new_temp(dst_key)
            try:
                with (
                    os.fdopen(fd, "wb") as out,
                    buckets.storage(src_bucket.id)._path(src_key).open("rb") as f,
                ):
                    shutil.copyfileobj(f, out, WRITE_BYTES)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return tmp

        try:
            tmp = await run_in_threadpool(copy_bytes)
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            raise folder_clash(dst_key) from exc
        try:
            await service.commit(tmp, dst_bucket, dst_key, meta, overwrite=upsert)
        finally:
            tmp.unlink(missing_ok=True)
        if not copy:
            await run_in_threadpool(buckets.delete_object, src_bucket.id, src_key)
        if not copy:
            return {"message": "Successfully moved", "Id": meta.id, "Key": dst_key}
        row = _object_row(dst_bucket, dst_key, dst_key, meta)
        return {"Id": meta.id, "Key": f"{dst_bucket.id}/{dst_key}", **row}

    @router.post("/object/move")
    async def move_object(request: Request) -> dict[str, Any]:
        return await _move_or_copy(request, copy=False)

    @router.post("/object/copy")
    async def copy_object(request: Request) -> dict[str, Any]:
        return await _move_or_copy(request, copy=True)

    def _sign_download(bucket: Bucket, key: str, expires_in: int) -> str:
        token, _ = service.signer.sign(f"{bucket.id}/{key}", typ="download", expires_in=expires_in)
        return f"/object/sign/{bucket.id}/{key}?token={token}"

    @router.post("/object/sign/{bucket_name}")
    async def create_signed_urls(bucket_name: str, request: Request) -> list[dict[str, Any]]:
        principal = service.principal(request)
        body = await _json(request)
        expires_in = _int(body, "expiresIn", None, minimum=1)
        paths = body.get("paths")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise StorageError("body/paths must be a non-empty array of strings")
        if len(paths) > 1000:
            raise StorageError("body/paths must have at most 1000 items")
        bucket = service.bucket(bucket_name)
        out = []
        for path in paths:
            try:
                key = check_key(path)
                if not principal.superuser:
                    raise ObjectNotFound(_NOT_VISIBLE)
                service.meta(bucket, key)
            except StorageError:
                out.append({"error": _NOT_VISIBLE, "path": path, "signedURL": None})
                continue
            out.append({"error": None, "path": path, "signedURL": _sign_download(bucket, key, expires_in)})
        return out

    @router.post("/object/sign/{bucket_name}/{path:path}")
    async def create_signed_url(bucket_name: str, path: str, request: Request) -> dict[str, str]:
        principal = service.principal(request)
        body = await _json(request)
        expires_in = _int(body, "expiresIn", None, minimum=1)
        if body.get("transform"):
            raise StorageRouteNotFound("image transformations are not implemented by docingest's storage")
        bucket = service.bucket(bucket_name)
        key = check_key(path)
        if not principal.superuser:
            raise ObjectNotFound("Object not found")
        service.meta(bucket, key)
        return {"signedURL": _sign_download(bucket, key, expires_in)}

    @router.get("/object/sign/{bucket_name}/{path:path}")
    async def download_signed(bucket_name: str, path: str, request: Request) -> Response:
        key = check_key(path)
        service.verify(request.query_params.get("token"), bucket_name, key, "download")
        return _serve(service, request, service.bucket(bucket_name), key)

    def writable(request: Request, bucket_name: str, path: str) -> tuple[Principal, Bucket, str]:
        """The caller, bucket and key of an object write (upload, signed upload URL): only the
        service role writes (no policy on ``storage.objects``).

        Raises:
            StorageUnauthorized: 403, no valid token, or a role that may not write.
            InvalidBucketName, InvalidObjectKey: 400. BucketNotFound: 404.
        """
        principal = service.principal(request)
        bucket = service.bucket(bucket_name)
        key = check_key(path)
        if not principal.superuser:
            raise _rls_denied()
        return principal, bucket, key

    @router.post("/object/upload/sign/{bucket_name}/{path:path}")
    async def create_signed_upload_url(bucket_name: str, path: str, request: Request) -> dict[str, str]:
        principal, bucket, key = writable(request, bucket_name, path)
        upsert = request.headers.get("x-upsert", "").lower() == "true"
        token, _ = service.signer.sign(
            f"{bucket.id}/{key}",
            typ="upload",
            expires_in=service.upload_ttl_seconds,
            max=service.limit(bucket),
            upsert=upsert or None,
            owner=principal.sub or None,
        )
        return {"url": f"/object/upload/sign/{bucket.id}/{key}?token={token}", "token": token}

    @router.put("/object/upload/sign/{bucket_name}/{path:path}")
    async def upload_to_signed_url(bucket_name: str, path: str, request: Request) -> dict[str, str]:
        key = check_key(path)
        claims = service.verify(request.query_params.get("token"), bucket_name, key, "upload")
        bucket = service.bucket(bucket_name)
        expected = claims.get("len")
        limit = min(int(claims.get("max") or service.max_bytes), service.limit(bucket))
        if expected is not None:
            limit = min(limit, int(expected))
        await service.receive(
            request,
            bucket,
            key,
            expected_len=expected,
            sha256=claims.get("sha256"),
            limit=limit,
            overwrite=bool(claims.get("upsert")),
            owner=str(claims.get("owner") or ""),
        )
        if bucket.id == service.storage.bucket:
            await run_in_threadpool(service.stored, key)
        return {"Key": f"{bucket.id}/{key}"}

    # --- info, download, upload, remove ---------------------------------------------------
    def _visible(principal: Principal, bucket_name: str, path: str) -> tuple[Bucket, str]:
        """The bucket and key of an object ``principal`` may read (Supabase's ``getObject``)."""
        bucket = buckets.get(check_bucket_name(bucket_name))
        if bucket is None or (principal is ANON and not bucket.public):
            raise BucketNotFound(f"bucket {bucket_name!r} does not exist")
        key = check_key(path)
        if not readable(principal, bucket):
            raise ObjectNotFound("Object not found")
        return bucket, key

    def _public(bucket_name: str, path: str) -> tuple[Bucket, str]:
        bucket = buckets.get(check_bucket_name(bucket_name))
        if bucket is None or not bucket.public:
            raise BucketNotFound(f"bucket {bucket_name!r} does not exist or is not public")
        return bucket, check_key(path)

    @router.get("/object/info/public/{bucket_name}/{path:path}")
    async def info_public(bucket_name: str, path: str) -> dict[str, Any]:
        bucket, key = _public(bucket_name, path)
        return _info(bucket, key, service.meta(bucket, key))

    async def _info_route(bucket_name: str, path: str, request: Request) -> dict[str, Any]:
        bucket, key = _visible(service.principal(request), bucket_name, path)
        return _info(bucket, key, service.meta(bucket, key))

    router.add_api_route("/object/info/authenticated/{bucket_name}/{path:path}", _info_route, methods=["GET"])
    router.add_api_route("/object/info/{bucket_name}/{path:path}", _info_route, methods=["GET"])

    @router.api_route("/object/public/{bucket_name}/{path:path}", methods=["GET", "HEAD"])
    async def get_public(bucket_name: str, path: str, request: Request) -> Response:
        bucket, key = _public(bucket_name, path)
        return _serve(service, request, bucket, key)

    @router.api_route("/object/authenticated/{bucket_name}/{path:path}", methods=["GET", "HEAD"])
    async def get_authenticated(bucket_name: str, path: str, request: Request) -> Response:
        bucket, key = _visible(service.principal(request), bucket_name, path)
        return _serve(service, request, bucket, key)

    @router.api_route("/object/{bucket_name}/{path:path}", methods=["GET", "HEAD"])
    async def get_object(bucket_name: str, path: str, request: Request) -> Response:
        bucket, key = _visible(service.principal(request, optional=True), bucket_name, path)
        return _serve(service, request, bucket, key)

    @router.api_route("/object/{bucket_name}/{path:path}", methods=["POST", "PUT"])
    async def upload(bucket_name: str, path: str, request: Request) -> dict[str, str]:
        principal, bucket, key = writable(request, bucket_name, path)
        upsert = request.method == "PUT" or request.headers.get("x-upsert", "false").lower() == "true"
        meta = await service.receive(
            request,
            bucket,
            key,
            expected_len=None,
            sha256=None,
            limit=service.limit(bucket),
            overwrite=upsert,
            owner=principal.sub,
        )
        return {"Id": meta.id, "Key": f"{bucket.id}/{key}"}

    @router.delete("/object/{bucket_name}/{path:path}")
    async def remove_one(bucket_name: str, path: str, request: Request) -> dict[str, str]:
        principal = service.principal(request)
        bucket = service.bucket(bucket_name)
        key = check_key(path)
        if not principal.superuser or not await run_in_threadpool(buckets.delete_object, bucket.id, key):
            raise ObjectNotFound("Object not found")
        return {"message": "Successfully deleted"}

    @router.delete("/object/{bucket_name}")
    async def remove(bucket_name: str, request: Request) -> list[dict[str, Any]]:
        principal = service.principal(request)
        body = await _json(request)
        prefixes = body.get("prefixes")
        if not isinstance(prefixes, list) or not prefixes or not all(isinstance(p, str) for p in prefixes):
            raise StorageError('body must be {"prefixes": [paths]} with at least one path')
        if len(prefixes) > 1000:
            raise StorageError("Bulk object requests are limited to 1000 objects per request.")
        check_bucket_name(bucket_name)
        bucket = buckets.get(bucket_name)
        if bucket is None or not principal.superuser:
            return []  # nothing visible to delete
        removed = []
        for p in prefixes:
            key = check_key(p)
            meta = buckets.meta(bucket.id, key)
            if meta is not None and await run_in_threadpool(buckets.delete_object, bucket.id, key):
                removed.append(_object_row(bucket, key, key, meta))
        return removed

    # --- not implemented, unknown routes, wrong methods --------------------------------------
    not_here = {
        "/render/{rest:path}": "image transformations (/render/image) are not implemented by docingest's "
        "storage; download the object itself",
        "/upload/resumable{rest:path}": "TUS resumable uploads (/upload/resumable) are not implemented by "
        "docingest's storage; upload in one request (raw body or multipart)",
    }
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    for path, message in not_here.items():

        async def unimplemented(request: Request, message: str = message) -> Response:
            raise StorageRouteNotFound(message)

        router.add_api_route(path, unimplemented, methods=methods)

    async def unknown(request: Request) -> Response:
        allowed: set[str] = set()
        for route in router.routes:
            if isinstance(route, APIRoute) and route.endpoint is not unknown:
                match, _ = route.matches(request.scope)
                if match is Match.PARTIAL:
                    allowed |= route.methods or set()
        if allowed:
            exc = StorageMethodNotAllowed(f"Route {request.method}:{request.url.path} not allowed")
            exc.headers = {"allow": ", ".join(sorted(allowed))}  # type: ignore[attr-defined]
            raise exc
        raise StorageRouteNotFound(f"Route {request.method}:{request.url.path} not found")

    router.add_api_route("/{rest:path}", unknown, methods=methods)
    return router


def _list_v1(
    service: StorageService,
    bucket: Bucket,
    prefix: str,
    search: str,
    limit: int,
    offset: int,
    column: str,
    desc: bool,
) -> list[dict[str, Any]]:
    """``POST /object/list``: the folders and objects one level under ``prefix`` whose names
    start with ``search`` (case-insensitive), as Supabase's ``storage.search``: by name the
    folders and objects sort together (case-insensitive), by another column the folders first."""
    folder = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    folders: set[str] = set()
    files: dict[str, str] = {}
    needle = search.lower()
    for key in service.buckets.keys(bucket.id, folder):
        head, sep, _ = key[len(folder) :].partition("/")
        if not head.lower().startswith(needle):
            continue
        if sep:
            folders.add(head)
        else:
            files[head] = key
    metas = {name: service.buckets.meta(bucket.id, key) for name, key in files.items()}
    rows: list[tuple[str, ObjectMeta | None]] = [(n, None) for n in folders]
    rows += [(n, m) for n, m in metas.items() if m is not None]
    if column == "name":
        rows.sort(key=lambda r: (r[0].lower(), r[0]), reverse=desc)
    else:
        folder_rows = sorted((r for r in rows if r[1] is None), key=lambda r: r[0], reverse=desc)
        file_rows = sorted(
            (r for r in rows if r[1] is not None),
            key=lambda r: (_sort_value(r[1], column), r[0]),
            reverse=desc,
        )
        rows = folder_rows + file_rows
    out: list[dict[str, Any]] = []
    for name, meta in rows[offset : offset + limit]:
        if meta is None:
            out.append(
                {
                    "name": name,
                    "id": None,
                    "updated_at": None,
                    "created_at": None,
                    "last_accessed_at": None,
                    "metadata": None,
                }
            )
        else:
            out.append(_object_row(bucket, files[name], name, meta))
    return out


def _list_v2(
    service: StorageService,
    bucket: Bucket,
    prefix: str,
    limit: int,
    cursor: str | None,
    delimiter: bool,
    column: str,
    desc: bool,
) -> dict[str, Any]:
    """``POST /object/list-v2``: the objects whose keys start with ``prefix`` (full keys as
    names), or with ``with_delimiter`` the objects directly under it and its sub-folders
    (``name`` ending in ``/``); ``limit`` per page, ``cursor`` the opaque ``nextCursor``."""
    items: dict[str, ObjectMeta | None] = {}
    for key in service.buckets.keys(bucket.id, prefix):
        rest = key[len(prefix) :]
        if delimiter and "/" in rest:
            items[prefix + rest.split("/", 1)[0] + "/"] = None
        else:
            items[key] = service.buckets.meta(bucket.id, key)

    def order(item: tuple[str, ObjectMeta | None]) -> tuple[float, str]:
        return (0.0 if column == "name" else _sort_value(item[1], column), item[0])

    rows = sorted(
        ((k, m) for k, m in items.items() if k.endswith("/") or m is not None), key=order, reverse=desc
    )
    if cursor:
        try:
            after = json.loads(base64.urlsafe_b64decode(cursor.encode()))
            mark = (float(after[0]), str(after[1]))
        except (ValueError, TypeError, IndexError, binascii.Error) as exc:
            raise StorageError("body/cursor is not a cursor this service returned") from exc
        rows = [r for r in rows if (order(r) < mark if desc else order(r) > mark)]
    page, more = rows[:limit], len(rows) > limit
    folders, objects = [], []
    for name, meta in page:
        if meta is None:
            folders.append({"name": name, "key": name})
        else:
            objects.append({**_object_row(bucket, name, name, meta), "key": name})
    next_cursor = None
    if more:
        next_cursor = base64.urlsafe_b64encode(json.dumps(list(order(page[-1]))).encode()).decode()
    return {"hasNext": more, "nextCursor": next_cursor, "folders": folders, "objects": objects}
