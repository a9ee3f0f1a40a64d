"""Object storage interface shared by every backend, and the storage key scheme.

Keys never contain user-supplied names (docs/architecture.md, section 1):
``{user_id}/raw/{document_id}.{ext}`` and ``{user_id}/parsed/{document_id}.md``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote
from uuid import UUID

CHUNK_BYTES = 1024 * 1024
_log = logging.getLogger("docingest.storage")
_SAFE_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")


def _user_segment(user_id: str) -> str:
    """A key-safe form of a user id: kept when safe, else its SHA-256 prefix."""
    if _SAFE_USER.match(user_id) and user_id not in {".", ".."}:
        return user_id
    return "u-" + hashlib.sha256(user_id.encode()).hexdigest()[:32]


def raw_key(user_id: str, document_id: UUID, extension: str) -> str:
    """Key of an uploaded original; ``extension`` is the sniffed type's, never the user's."""
    if not re.fullmatch(r"[a-z0-9]{1,8}", extension):
        raise ValueError(f"bad extension {extension!r}")
    return f"{_user_segment(user_id)}/raw/{document_id}.{extension}"


#: The shape of :func:`raw_key`'s keys: ``<user segment>/raw/<document id>.<extension>``.
RAW_KEY = re.compile(r"[^/]+/raw/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.[a-z0-9]{1,8}")


def is_raw_key(key: str) -> bool:
    """Whether ``key`` has the shape of a document's original (:func:`raw_key`)."""
    return RAW_KEY.fullmatch(key) is not None


def parsed_key(user_id: str, document_id: UUID, suffix: str = "md") -> str:
    """Key of a parsed artifact (``md`` text, ``json`` page map)."""
    return f"{_user_segment(user_id)}/parsed/{document_id}.{suffix}"


def delete_objects(storage: Storage, keys: Iterable[str]) -> list[str]:
    """Delete each of ``keys`` (a missing object counts as deleted); returns those deleted.

    A key the storage fails to delete is logged and left out of the answer, for a later
    attempt (the object outbox keeps it; ``DocumentService.reap_objects``).
    """
    done: list[str] = []
    for key in keys:
        try:
            storage.delete(key)
        except Exception as exc:  # noqa: BLE001 - the outbox keeps the key for a later pass
            _log.warning("object %s not deleted yet: %s", key, exc)
            continue
        done.append(key)
    return done


def document_keys(user_id: str, document_id: UUID, raw_path: str) -> list[str]:
    """Every object key a document may own: its original and its parsed artifacts."""
    return [raw_path, parsed_key(user_id, document_id), parsed_key(user_id, document_id, "json")]


@dataclass(frozen=True)
class ObjectInfo:
    """What ``head`` knows of a stored object: its size in bytes."""

    key: str
    size: int


class Storage(Protocol):
    """An object store holding one bucket. Keys are ``/``-separated (:func:`raw_key`,
    :func:`parsed_key`).

    Every method raises ``StorageUnavailable`` (transient) when the backend cannot be reached
    or refuses the operation; a missing object is ``None`` from :meth:`head` and
    ``ObjectMissing`` (a ``FileNotFoundError``) from :meth:`open_stream` and :meth:`local_path`.
    """

    def put_stream(self, key: str, stream: BinaryIO) -> ObjectInfo:
        """Store ``stream`` (read to its end in blocks, never whole in memory) at ``key``."""
        ...

    def copy_from(self, key: str, src: Path) -> ObjectInfo:
        """Store the local file ``src`` at ``key``."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """The object's size in bytes, or None when there is no object at ``key``."""
        ...

    def open_stream(self, key: str) -> AbstractContextManager[BinaryIO]:
        """The object opened for reading (binary)."""
        ...

    def local_path(self, key: str) -> AbstractContextManager[Path]:
        """The object as a local file, valid inside the context (a download for remote stores)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; nothing happens when there is none."""
        ...

    def presign_upload(
        self,
        key: str,
        *,
        content_length: int | None,
        content_type: str,
        sha256: str | None,
        expires_in: float,
    ) -> SignedUpload:
        """A URL a client sends the object's bytes to without other credentials.

        Args:
            key: where the object goes.
            content_length: the declared size in bytes (None: not declared).
            content_type: the MIME type the client must send.
            sha256: the declared hex SHA-256 (None: not declared).
            expires_in: the URL's lifetime in seconds (a backend may shorten it).
        """
        ...

    def presign_download(self, key: str, *, filename: str, expires_in: float) -> SignedDownload:
        """A URL a client reads the object's bytes from with a ``GET`` and no other credential,
        answered with ``Content-Disposition: attachment`` naming ``filename``.

        Args:
            key: the object.
            filename: the name the browser saves it under.
            expires_in: the URL's lifetime in seconds.

        Raises:
            StorageUnavailable: the backend cannot sign one.
        """
        ...

    def ping(self) -> None:
        """Return when the backend answers; raise ``StorageUnavailable`` otherwise."""
        ...

    def close(self) -> None:
        """Release the backend's connections."""
        ...


def iter_stream(stream: BinaryIO, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Yield ``stream`` in blocks of at most ``chunk_bytes``."""
    while block := stream.read(chunk_bytes):
        yield block


def sha256_of(stream: BinaryIO) -> tuple[str, int]:
    """``(hex SHA-256, size in bytes)`` of a stream, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    for block in iter_stream(stream):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


@dataclass(frozen=True)
class SignedUpload:
    """Where and how a client sends an object's bytes: ``method`` ``url`` with ``headers``.

    Attributes:
        url: the signed URL (self-contained: no other credential is needed).
        method: ``PUT`` for every backend.
        headers: headers the client must send as given (S3 signs them into the URL).
        expires_at: UNIX time after which the URL is refused.
    """

    url: str
    method: str
    headers: dict[str, str]
    expires_at: float


@dataclass(frozen=True)
class SignedDownload:
    """Where a client reads an object's bytes: ``GET url`` (self-contained) until ``expires_at``
    (UNIX time)."""

    url: str
    expires_at: float


def attachment(filename: str) -> str:
    """``Content-Disposition`` saving a download as ``filename`` (RFC 6266): an ASCII
    ``filename`` (other characters, quotes and backslashes as ``_``) and the exact name in
    ``filename*`` (UTF-8, percent-encoded)."""
    ascii_name = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename) or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
