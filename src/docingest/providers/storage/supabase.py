"""Supabase Storage through its REST API (``{project}.supabase.co/storage/v1``), with httpx.

The contract is storage-js ``StorageFileApi``'s: ``POST /object/upload/sign/{bucket}/{path}``
creates a signed upload URL (``{"url": "/object/upload/sign/...?token=..."}``) the client
``PUT``s to; ``HEAD``/``GET /object/{bucket}/{path}``, ``DELETE /object/{bucket}``
``{"prefixes": [...]}`` and ``POST /object/{bucket}/{path}`` with the service-role key.
The local storage service (``api/routes/storage.py``) speaks the same contract (and the rest
of Supabase Storage's API for objects and buckets).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from docingest.errors import ObjectMissing, StorageUnavailable
from docingest.providers.storage.base import ObjectInfo, SignedDownload, SignedUpload, iter_stream


class SupabaseStorage:
    """One bucket of a Supabase Storage API.

    Args:
        url: the storage API's base, e.g. ``https://PROJECT.supabase.co/storage/v1``.
        service_key: the project's service-role key (sent as bearer and ``apikey``).
        public_url: the same API's base as clients reach it, for the signed URLs handed to them
            (``http://localhost:5000/storage/v1`` when the workers call ``http://storage:5000``
            inside a compose network); default ``url``.
    """

    def __init__(
        self, url: str, bucket: str, *, service_key: str, public_url: str | None = None, timeout: float = 60.0
    ) -> None:
        self.url = url.rstrip("/")
        self.public_url = (public_url or url).rstrip("/")
        self.bucket = bucket
        self.client = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            headers={"authorization": f"Bearer {service_key}", "apikey": service_key},
        )

    def _path(self, key: str) -> str:
        return f"{self.bucket}/{quote(key)}"

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            reply = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"Supabase Storage {method} {path}: {exc}") from exc
        if reply.status_code >= 500 or reply.status_code == 429:
            raise StorageUnavailable(f"Supabase Storage {method} {path}: HTTP {reply.status_code}")
        return reply

    @staticmethod
    def _fail(reply: httpx.Response, what: str) -> StorageUnavailable:
        return StorageUnavailable(f"Supabase Storage {what}: HTTP {reply.status_code} {reply.text[:200]}")

    def put_stream(self, key: str, stream: BinaryIO) -> ObjectInfo:
        """``POST /object/{bucket}/{key}`` with ``x-upsert: true``, the body streamed."""
        size = 0

        def body() -> Iterator[bytes]:
            nonlocal size
            for block in iter_stream(stream):
                size += len(block)
                yield block

        reply = self._request(
            "POST",
            f"/object/{self._path(key)}",
            content=body(),
            headers={"x-upsert": "true", "content-type": "application/octet-stream"},
        )
        if reply.status_code != 200:
            raise self._fail(reply, f"upload {key}")
        return ObjectInfo(key, size)

    def head(self, key: str) -> ObjectInfo | None:
        reply = self._request("HEAD", f"/object/authenticated/{self._path(key)}")
        if reply.status_code in (400, 404):
            return None
        if reply.status_code != 200:
            raise self._fail(reply, f"head {key}")
        return ObjectInfo(key, int(reply.headers.get("content-length", "0")))

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """Stream the object to a temporary file, removed afterwards."""
        with tempfile.TemporaryDirectory(prefix="docingest-supabase-") as tmp:
            path = Path(tmp) / Path(key).name  # its extension is a hint the CSV and JSON parsers read
            try:
                with self.client.stream("GET", f"/object/authenticated/{self._path(key)}") as reply:
                    if reply.status_code in (400, 404):
                        raise ObjectMissing(f"no object {key}")
                    if reply.status_code != 200:
                        raise self._fail(reply, f"download {key}")
                    with path.open("wb") as out:
                        for block in reply.iter_bytes(1024 * 1024):
                            out.write(block)
            except httpx.HTTPError as exc:
                raise StorageUnavailable(f"Supabase Storage download {key}: {exc}") from exc
            yield path

    @contextmanager
    def open_stream(self, key: str) -> Iterator[BinaryIO]:
        with self.local_path(key) as path, path.open("rb") as f:
            yield f

    def delete(self, key: str) -> None:
        reply = self._request("DELETE", f"/object/{self.bucket}", json={"prefixes": [key]})
        if reply.status_code not in (200, 404):
            raise self._fail(reply, f"delete {key}")

    def copy_from(self, key: str, src: Path) -> ObjectInfo:
        with src.open("rb") as f:
            return self.put_stream(key, f)

    def presign_upload(
        self,
        key: str,
        *,
        content_length: int | None,
        content_type: str,
        sha256: str | None,
        expires_in: float,
    ) -> SignedUpload:
        """``createSignedUploadUrl``: Supabase fixes the lifetime (2 hours); the worker verifies
        size and SHA-256 after the upload."""
        reply = self._request("POST", f"/object/upload/sign/{self._path(key)}", json={})
        if reply.status_code != 200:
            raise self._fail(reply, f"sign upload {key}")
        return SignedUpload(
            self.public_url + reply.json()["url"],
            "PUT",
            {"content-type": content_type, "x-upsert": "false"},
            time.time() + min(expires_in, 7200),
        )

    def presign_download(self, key: str, *, filename: str, expires_in: float) -> SignedDownload:
        """``createSignedUrl`` with ``download``: ``POST /object/sign/{bucket}/{key}``, then the
        ``download`` parameter (Supabase answers ``Content-Disposition: attachment`` with it)."""
        seconds = max(1, math.ceil(expires_in))
        reply = self._request("POST", f"/object/sign/{self._path(key)}", json={"expiresIn": seconds})
        if reply.status_code != 200:
            raise self._fail(reply, f"sign download {key}")
        signed = str(reply.json()["signedURL"])
        separator = "&" if "?" in signed else "?"
        url = f"{self.public_url}/{signed.lstrip('/')}{separator}download={quote(filename, safe='')}"
        return SignedDownload(url, time.time() + seconds)

    def ping(self) -> None:
        """Raise ``StorageUnavailable`` unless the API answers (any non-5xx reply)."""
        self._request("HEAD", f"/object/authenticated/{self.bucket}/.docingest-ping")

    def close(self) -> None:
        self.client.close()
