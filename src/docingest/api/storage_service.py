"""The local storage service's state and uploads: who is calling (:class:`Principal`, from a
Supabase-style JWT), the buckets on local disk, and the streamed receipt of an upload's bytes,
raw or ``multipart/form-data`` (python-multipart's push parser), with its limits and checks.

The routes that use it are ``api/routes/storage.py`` (its docstring has the contract: routes,
authorization, uploads, errors).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from docingest.errors import (
    BodyChecksumMismatch,
    BodyLongerThanDeclared,
    BodySizeMismatch,
    BodyTooLarge,
    ClientDisconnected,
    InvalidObjectKey,
    MimeTypeNotAllowed,
    ObjectExists,
    ObjectNotFound,
    SignedUrlTokenMissing,
    StorageError,
    StorageUnauthorized,
)
from docingest.providers.storage.buckets import (
    Bucket,
    LocalBuckets,
    ObjectMeta,
    check_bucket_name,
    mime_allowed,
)
from docingest.providers.storage.local import LocalStorage
from docingest.providers.storage.signing import UrlSigner

log = logging.getLogger("docingest.providers.storage")
OnStored = Callable[[str], None]
WRITE_BYTES = 1024 * 1024
#: What a multipart envelope may add to the file's bytes (boundaries, part headers, fields).
_FORM_OVERHEAD = 1024 * 1024
_MAX_FIELD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's ``role`` and ``sub`` (``anon`` without a valid token)."""

    role: str
    sub: str = ""

    @property
    def superuser(self) -> bool:
        """The service role bypasses row-level security (Supabase's ``service_role``)."""
        return self.role == "service_role"


ANON = Principal("anon")


@dataclass
class _Upload:
    """What an upload's body said about the object besides its bytes."""

    mimetype: str
    cache_control: str
    user_metadata: dict[str, Any] | None


class StorageService:
    """The service's state: the buckets on local disk, the URL signer and the JWT secret.

    Args:
        storage: the settings' bucket (``STORAGE_BUCKET``), whose directory's parent is the
            storage root holding every bucket.
        signer: signs and verifies URL tokens.
        jwt_secret: verifies the callers' JWTs.
        max_bytes: the size limit of every upload (a bucket's ``file_size_limit`` may lower it).
        upload_ttl_seconds: lifetime of signed upload URLs (Supabase: 2 hours).
        on_stored: called (in a thread) with the key after each signed upload into the settings'
            bucket completes.
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
        self.buckets = LocalBuckets(storage.root.parent, default_bucket=storage.bucket, default_store=storage)
        self.signer = signer
        self.jwt_secret = jwt_secret
        self.max_bytes = max_bytes
        self.upload_ttl_seconds = upload_ttl_seconds
        self.on_stored = on_stored

    # --- who and what ---------------------------------------------------------------------
    def principal(self, request: Request, *, optional: bool = False) -> Principal:
        """The caller, from ``Authorization: Bearer <jwt>`` or else the ``apikey`` header.

        Raises:
            StorageUnauthorized: 403, no token or an invalid one (unless ``optional``: then
                the caller is ``anon``, as Supabase's ``allowInvalidJwt`` routes).
        """
        header = request.headers.get("authorization", "")
        scheme, _, rest = header.partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" else header.strip()
        token = token or request.headers.get("apikey", "").strip()
        if not token:
            if optional:
                return ANON
            raise StorageUnauthorized("missing Authorization: Bearer <token> (or an apikey header)")
        try:
            claims = jwt.decode(
                token,
                self.jwt_secret,
                algorithms=["HS256"],
                options={"require": ["exp"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            if optional:
                return ANON
            raise StorageUnauthorized(f"invalid token: {exc}") from exc
        role = claims.get("role")
        sub = claims.get("sub")
        return Principal(
            role if isinstance(role, str) and role else "anon", sub if isinstance(sub, str) else ""
        )

    def bucket(self, name: str) -> Bucket:
        """The bucket ``name`` (looked up as Supabase does, bypassing row-level security).

        Raises:
            InvalidBucketName: 400. BucketNotFound: 404.
        """
        return self.buckets.require(check_bucket_name(name))

    def limit(self, bucket: Bucket) -> int:
        """The largest upload ``bucket`` accepts, in bytes."""
        return min(bucket.file_size_limit or self.max_bytes, self.max_bytes)

    def meta(self, bucket: Bucket, key: str) -> ObjectMeta:
        """The object's metadata.

        Raises:
            ObjectNotFound: 404.
        """
        found = self.buckets.meta(bucket.id, key)
        if found is None:
            raise ObjectNotFound("Object not found")
        return found

    def verify(self, token: str | None, bucket: str, key: str, typ: str) -> dict[str, Any]:
        """The claims of a signed URL's token for ``bucket/key`` and ``typ``.

        Raises:
            SignedUrlTokenMissing: 400. SignedUrlError: 403.
        """
        if not token:
            raise SignedUrlTokenMissing("the signed URL has no token")
        return self.signer.verify(token, url=f"{bucket}/{key}", typ=typ)

    # --- uploads --------------------------------------------------------------------------
    async def receive(
        self,
        request: Request,
        bucket: Bucket,
        key: str,
        *,
        expected_len: int | None,
        sha256: str | None,
        limit: int,
        overwrite: bool,
        owner: str = "",
    ) -> ObjectMeta:
        """Stream the request's file (raw body or multipart) to ``key``; returns its metadata.

        Raises:
            ObjectExists: 409, an object is stored under ``key`` (and not ``overwrite``).
            MimeTypeNotAllowed: 415, a content type outside the bucket's ``allowed_mime_types``.
            BodyLongerThanDeclared: 413 ``size_mismatch``, the file is longer than declared;
                reading stops there.
            BodyTooLarge: 413 ``file_too_large``, longer than the limit; reading stops there.
            BodySizeMismatch: 400 ``size_mismatch``, shorter than declared.
            BodyChecksumMismatch: 400 ``checksum_mismatch``, another SHA-256.
            StorageError: 400, a multipart body without a file part, or cut short.
            ClientDisconnected: 400 ``bad_request``, the client hung up before the end of
                the body (one warning logged, the partial temporary file removed: the signed
                URL is still unused, the client can send it again).
        """
        ctype = request.headers.get("content-type", "")
        multipart = ctype.lower().startswith("multipart/form-data")
        too_long: type[StorageError] = (
            BodyLongerThanDeclared if expected_len is not None and expected_len <= limit else BodyTooLarge
        )

        def refuse_length(size: int | str) -> StorageError:
            """The refusal of a file of ``size`` bytes: an exact count (a raw body's
            Content-Length) or, once reading passed the limit, a lower bound."""
            has = f"{size} bytes" if isinstance(size, str) else f"more than {limit} bytes"
            if too_long is BodyLongerThanDeclared:
                return too_long(
                    f"the file has {has}; this signed URL accepts at most {limit}, the size declared "
                    "for it: request a new upload declaring the file's real bytes_len"
                )
            return too_long(
                f"the file has {has}; this upload accepts at most {limit} bytes (the bucket's "
                "file_size_limit or UPLOAD_PIPELINE_MAX_FILE_BYTES, the smaller)"
            )

        announced = request.headers.get("content-length")
        envelope_limit = limit + _FORM_OVERHEAD if multipart else limit
        if announced is not None and announced.isdigit() and int(announced) > envelope_limit:
            raise refuse_length(announced if not multipart else limit + 1)
        if not multipart:
            upload = _Upload(
                ctype or "application/octet-stream",
                request.headers.get("cache-control") or "no-cache",
                decode_x_metadata(request.headers.get("x-metadata")),
            )
            check_mime_allowed(upload.mimetype, bucket)
        previous = self.buckets.meta(bucket.id, key)
        if not overwrite and previous is not None:
            raise ObjectExists("The resource already exists")
        store = self.buckets.storage(bucket.id)
        try:
            fd, tmp = await run_in_threadpool(store.new_temp, key)
        except (NotADirectoryError, FileExistsError) as exc:
            raise folder_clash(key) from exc
        out = os.fdopen(fd, "wb")
        sink = _FileSink(limit, refuse_length)
        try:
            try:
                # a multipart body's file part reaches the sink through the form's parser
                form = _Form(ctype, sink, bucket, envelope_limit, refuse_length) if multipart else None
                feed = form.write if form is not None else sink.feed
                async for block in request.stream():
                    feed(block)
                    if len(sink.pending) >= WRITE_BYTES:
                        await run_in_threadpool(out.write, sink.take())
                if form is not None:
                    upload = form.finish()
            except ClientDisconnect:
                # Not a server error: nobody is left to answer; the partial file goes (finally).
                log.warning(
                    "upload of %s interrupted: the client disconnected after %d bytes%s; "
                    "partial data discarded",
                    key,
                    sink.size,
                    f" of {expected_len}" if expected_len is not None else "",
                )
                raise ClientDisconnected(f"the client disconnected after {sink.size} bytes") from None
            await run_in_threadpool(out.write, sink.take())
            out.close()
            if expected_len is not None and sink.size != expected_len:
                raise BodySizeMismatch(f"received {sink.size} bytes, declared {expected_len}")
            if sha256 is not None and sink.sha256.hexdigest() != sha256:
                raise BodyChecksumMismatch(
                    f"the SHA-256 of the file is {sink.sha256.hexdigest()}, declared {sha256}"
                )
            now = time.time()
            meta = ObjectMeta(
                id=str(uuid.uuid4()),
                mimetype=upload.mimetype,
                cache_control=upload.cache_control,
                etag=f'"{sink.md5.hexdigest()}"',
                size=sink.size,
                created_at=previous.created_at if previous is not None else now,
                updated_at=now,
                user_metadata=upload.user_metadata,
                owner=owner,
            )

            await self.commit(tmp, bucket, key, meta, overwrite=overwrite)
            return meta
        finally:
            out.close()
            tmp.unlink(missing_ok=True)

    async def commit(self, tmp: Path, bucket: Bucket, key: str, meta: ObjectMeta, *, overwrite: bool) -> None:
        """Store the finished temporary file ``tmp`` as ``key`` of ``bucket`` with ``meta``
        (:meth:`LocalBuckets.commit`, in a thread).

        Raises:
            ObjectExists: 409, an object is there and not ``overwrite``.
            InvalidObjectKey: 400, ``key`` is a folder of other keys or lies under another key.
        """
        try:
            committed = await run_in_threadpool(
                self.buckets.commit, tmp, bucket.id, key, meta, overwrite=overwrite
            )
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            raise folder_clash(key) from exc
        if not committed:
            raise ObjectExists("The resource already exists")

    def stored(self, key: str) -> None:
        """Tell the API a signed upload into its bucket completed (errors logged, not raised)."""
        if self.on_stored is None:
            return
        try:
            self.on_stored(key)
        except Exception:
            log.exception("upload of %s stored but its job was not queued", key)


class _FileSink:
    """The file's bytes as they arrive: counted, hashed (SHA-256, MD5) and buffered."""

    def __init__(self, limit: int, refuse: Callable[[int], StorageError]) -> None:
        self.limit = limit
        self.refuse = refuse
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.pending = bytearray()

    def feed(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise self.refuse(self.size)
        self.sha256.update(data)
        self.md5.update(data)
        self.pending += data

    def take(self) -> bytes:
        out = bytes(self.pending)
        self.pending.clear()
        return out


class _Form:
    """A ``multipart/form-data`` body fed block by block to python-multipart's push parser.

    The first part with a file name (or named ``file`` or ``""``, storage-js's name for a
    ``Blob``) is the file: its bytes go to the sink. Other parts are fields (at most 64 KiB
    each): ``cacheControl``, ``contentType`` and ``metadata`` (or ``userMetadata``), as
    Supabase's uploader reads them. Later file parts are ignored, as Supabase does.
    """

    def __init__(
        self,
        content_type: str,
        sink: _FileSink,
        bucket: Bucket,
        envelope_limit: int,
        refuse: Callable[[int], StorageError],
    ) -> None:
        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if not boundary:
            raise StorageError("multipart/form-data without a boundary")
        self.sink = sink
        self.bucket = bucket
        self.envelope_limit = envelope_limit
        self.refuse = refuse
        self.received = 0
        self.fields: dict[str, bytearray] = {}
        self.headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self.part: str | None = None  # "file", a field's name, or None (ignored)
        self.file_type: str | None = None
        self.done = False
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_end": self._end,
            },
        )

    def write(self, block: bytes) -> None:
        self.received += len(block)
        if self.received > self.envelope_limit:
            raise self.refuse(self.received)
        try:
            self.parser.write(block)
        except StorageError:
            raise
        except Exception as exc:  # python-multipart's MultipartParseError and kin
            raise StorageError(f"malformed multipart/form-data body: {exc}") from exc

    def _part_begin(self) -> None:
        self.headers = {}
        self.part = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self.headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, disposition = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        is_file = b"filename" in disposition or name in ("", "file")
        if is_file and self.file_type is None:
            declared = self.headers.get(b"content-type", b"").decode("latin-1").strip()
            self.file_type = self._text("contentType") or declared or "application/octet-stream"
            check_mime_allowed(self.file_type, self.bucket)
            self.part = "file"
        elif is_file:
            self.part = None
        else:
            self.part = name
            self.fields[name] = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part == "file":
            self.sink.feed(memoryview(data)[start:end])
        elif self.part is not None:
            value = self.fields[self.part]
            value += data[start:end]
            if len(value) > _MAX_FIELD_BYTES:
                raise StorageError(f"the form field {self.part!r} is longer than {_MAX_FIELD_BYTES} bytes")

    def _end(self) -> None:
        self.done = True

    def _text(self, name: str) -> str | None:
        value = self.fields.get(name)
        return value.decode("utf-8", "replace") if value else None

    def finish(self) -> _Upload:
        """What the form said, once the whole body was fed.

        Raises:
            StorageError: 400, the body ended before its closing boundary, or had no file.
        """
        if not self.done:
            raise StorageError("the multipart/form-data body ended before its closing boundary")
        if self.file_type is None:
            raise StorageError("No content provided: the multipart/form-data body has no file part")
        cache = self._text("cacheControl")
        metadata = self._text("metadata") or self._text("userMetadata")
        user: dict[str, Any] | None = None
        if metadata:
            try:
                parsed = json.loads(metadata)
                user = parsed if isinstance(parsed, dict) else None
            except ValueError:
                user = None
        return _Upload(self.file_type, f"max-age={cache}" if cache else "no-cache", user)


def folder_clash(key: str) -> InvalidObjectKey:
    """The refusal of a key that is a folder of other keys, or lies under another key."""
    return InvalidObjectKey(
        f"Invalid key: {key!r}: a key cannot be a folder of other keys nor lie under another key "
        "(objects are files here)"
    )


def check_mime_allowed(mime: str, bucket: Bucket) -> None:
    if not mime_allowed(mime, bucket.allowed_mime_types):
        raise MimeTypeNotAllowed(f"mime type {mime} is not supported")


def decode_x_metadata(header: str | None) -> dict[str, Any] | None:
    """The ``x-metadata`` header: base64 of a JSON object (None when absent or unreadable)."""
    if not header:
        return None
    try:
        parsed = json.loads(base64.b64decode(header, validate=False))
    except (ValueError, binascii.Error):
        return None
    return parsed if isinstance(parsed, dict) else None


# --- answers ---------------------------------------------------------------------------------
