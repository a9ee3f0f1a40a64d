"""Local filesystem storage under ``DATA_DIR/storage/BUCKET`` (the default backend)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from docingest.errors import InternalInvariantError, ObjectMissing, StorageUnavailable
from docingest.providers.storage.base import ObjectInfo, SignedDownload, SignedUpload, iter_stream
from docingest.providers.storage.signing import UrlSigner

#: The base URL signed URLs use during one API request (``api/public_url.py`` sets it from the
#: request's host when no PUBLIC_URL is configured); None: the storage's own ``base_url``.
REQUEST_BASE_URL: ContextVar[str | None] = ContextVar("docingest_request_base_url", default=None)
#: Name prefix of the temporary files uploads are written to (never an object key's segment).
TEMP_PREFIX = ".upload-"


def meta_file(storage_root: Path, bucket: str, key: str) -> Path:
    """The metadata file of object ``key`` of ``bucket``: ``.meta/{bucket}/a.d/b.d/c.json`` for
    the key ``a/b/c``. Folders end ``.d`` and files ``.json``, so an object's file never meets
    another key's folder (objects ``q`` and ``q.json/r``: ``q.json`` and ``q.json.d/r.json``)."""
    *folders, name = key.split("/")
    return storage_root.joinpath(".meta", bucket, *(f"{f}.d" for f in folders), f"{name}.json")


class LocalStorage:
    """Objects as files; writes go to a temporary file renamed into place (atomic).

    Files are ``root/{key}``; the storage service keeps each object's metadata (content type,
    cache-control, ...) outside ``root``, in ``root/../.meta/{bucket}/{key}.json``
    (``providers/storage/buckets.py``): :meth:`put_stream` and :meth:`delete` remove it, so it
    never describes other bytes.

    With ``base_url`` and ``signer`` it also presigns URLs of the local storage service
    (``api/routes/storage.py``), which the API serves under ``/storage/v1``; inside an API
    request :data:`REQUEST_BASE_URL`, when set, replaces ``base_url``.
    """

    def __init__(
        self,
        root: Path,
        *,
        bucket: str = "documents",
        base_url: str | None = None,
        signer: UrlSigner | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.bucket = bucket
        self.base_url = base_url.rstrip("/") if base_url else None
        self.signer = signer
        self.max_bytes = max_bytes

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"storage key escapes the bucket: {key!r}")
        return path

    def meta_path(self, key: str) -> Path:
        """Where the storage service keeps ``key``'s metadata (outside the bucket's directory):
        :func:`meta_file`."""
        return meta_file(self.root.parent, self.bucket, key)

    def put_stream(self, key: str, stream: BinaryIO) -> ObjectInfo:
        """Copy ``stream`` to ``key`` in 1 MiB blocks; never holds the whole object."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
            size = 0
            with os.fdopen(fd, "wb") as out:
                for block in iter_stream(stream):
                    out.write(block)
                    size += len(block)
            os.replace(tmp, path)
            self.meta_path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {key}: {exc.strerror}") from exc
        return ObjectInfo(key, size)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            return ObjectInfo(key, self._path(key).stat().st_size)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageUnavailable(f"cannot stat {key}: {exc.strerror}") from exc

    @contextmanager
    def open_stream(self, key: str) -> Iterator[BinaryIO]:
        try:
            f = self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise ObjectMissing(f"no object {key}") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {key}: {exc.strerror}") from exc
        with f:
            yield f

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """The object as a local file (here: the file itself, no copy)."""
        path = self._path(key)
        if not path.exists():
            raise ObjectMissing(f"no object {key}")
        yield path

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
            self.meta_path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete {key}: {exc.strerror}") from exc

    def copy_from(self, key: str, src: Path) -> ObjectInfo:
        """Store a local file (used by ``docingest ingest``)."""
        with src.open("rb") as f:
            return self.put_stream(key, f)

    def ping(self) -> None:
        """Raise ``StorageUnavailable`` unless the bucket's directory can be read."""
        self.head(".docingest-ready")

    def close(self) -> None:
        """Nothing to release (files are opened per call)."""

    # --- signed URLs of the local storage service -------------------------------
    def _signing(self) -> tuple[str, UrlSigner]:
        base = REQUEST_BASE_URL.get() or self.base_url
        if not base or self.signer is None:
            raise InternalInvariantError(
                "bug: this LocalStorage was built without base_url/signer, so it cannot presign URLs"
            )
        return base, self.signer

    def presign_upload(
        self,
        key: str,
        *,
        content_length: int | None,
        content_type: str,
        sha256: str | None,
        expires_in: float,
    ) -> SignedUpload:
        """A Supabase-layout upload URL: ``PUT {base}/storage/v1/object/upload/sign/{bucket}/{key}?token=``.

        The token binds the declared length and SHA-256; the service enforces both as it streams.
        """
        self._path(key)
        base, signer = self._signing()
        token, exp = signer.sign(
            f"{self.bucket}/{key}",
            typ="upload",
            expires_in=expires_in,
            len=content_length,
            sha256=sha256,
            max=self.max_bytes,
        )
        url = f"{base}/storage/v1/object/upload/sign/{self.bucket}/{key}?token={token}"
        return SignedUpload(url, "PUT", {"content-type": content_type}, exp)

    def presign_download(self, key: str, *, filename: str, expires_in: float) -> SignedDownload:
        """A Supabase-layout download URL: ``GET {base}/storage/v1/object/sign/{bucket}/{key}?token=
        &download={filename}`` (the storage service answers it with ``Content-Disposition:
        attachment``)."""
        self._path(key)
        base, signer = self._signing()
        token, exp = signer.sign(f"{self.bucket}/{key}", typ="download", expires_in=expires_in)
        query = urlencode({"token": token, "download": filename}, quote_via=quote)
        return SignedDownload(f"{base}/storage/v1/object/sign/{self.bucket}/{key}?{query}", exp)

    def new_temp(self, key: str) -> tuple[int, Path]:
        """``(fd, path)`` of a temporary file beside ``key``'s path, for a streamed upload."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
        return fd, Path(tmp)

    def commit_temp(self, tmp: Path, key: str, *, overwrite: bool) -> bool:
        """Move a finished temporary file to ``key``; False when it exists and not ``overwrite``.

        Without ``overwrite`` the link is atomic: of two concurrent uploads, one wins.
        """
        path = self._path(key)
        if overwrite:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True
