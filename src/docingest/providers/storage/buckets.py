"""The buckets of the local storage service, and the metadata kept beside their objects.

Layout under the storage root (``DATA_DIR/storage``):

- ``{bucket}/{key}``: the objects, as :class:`~docingest.providers.storage.local.LocalStorage`
  writes them (the pipeline's layout, unchanged);
- ``.buckets/{bucket}.json``: a bucket's settings (public flag, ``file_size_limit``,
  ``allowed_mime_types``, times), written to a temporary file and renamed into place;
- ``.meta/{bucket}/{folder}.d/.../{name}.json``: an object's metadata (:class:`ObjectMeta`,
  path by :func:`~docingest.providers.storage.local.meta_file`), written the same way, so
  never seen half-written and never inside a bucket's directory (listings walk the bucket's
  directory only).

The settings' bucket (``STORAGE_BUCKET``) always exists: without a ``.buckets`` entry it is
private with no limit of its own. Names follow Supabase Storage's rules (``isValidBucketName``
and ``isValidKey`` in ``src/storage/limits.ts`` of ``supabase/storage``) plus what a file
system needs (:func:`check_bucket_name`, :func:`check_key`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from docingest.errors import (
    BucketExists,
    BucketNotEmpty,
    BucketNotFound,
    InvalidBucketName,
    InvalidObjectKey,
    StorageError,
)
from docingest.providers.storage.local import TEMP_PREFIX, LocalStorage, meta_file

#: Supabase Storage's characters for object keys and bucket names (``src/storage/limits.ts``).
_KEY_CHARS = re.compile(r"^[A-Za-z0-9_/!.*'() &$=@;:+,?-]+$")
_BUCKET_CHARS = re.compile(r"^[A-Za-z0-9_!.*'() &$=@;:+,?-]{1,100}$")
_SIZE_WITH_UNIT = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(gb|mb|kb|b)$", re.IGNORECASE)
_UNITS = {"gb": 10**9, "mb": 10**6, "kb": 10**3, "b": 1}
#: A key segment's bytes: a file name on the usual file systems (255) less the ``.json`` of
#: its metadata file.
_MAX_SEGMENT_BYTES = 250
#: A key's bytes (S3's limit, which Supabase Storage keeps).
_MAX_KEY_BYTES = 1024


def iso(ts: float) -> str:
    """A UNIX time as ISO 8601 UTC with milliseconds (``2026-01-02T03:04:05.678Z``), as Supabase."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_bucket_name(name: str) -> str:
    """``name`` when it is a valid bucket name.

    Supabase's rule (1-100 characters of ``A-Za-z0-9_!.*'() &$=@;:+,?-``), and not starting
    with ``.`` (the storage root's own ``.buckets`` and ``.meta``).

    Raises:
        InvalidBucketName: 400 otherwise.
    """
    if not _BUCKET_CHARS.fullmatch(name) or name.startswith("."):
        raise InvalidBucketName(f"Bucket name invalid: {name!r}")
    return name


def check_key(key: str) -> str:
    """``key`` when it is a valid object key.

    Supabase's rule (non-empty, characters of ``A-Za-z0-9_/!.*'() &$=@;:+,?-``, at most 1,024
    bytes) plus what a file system needs: no empty, ``.`` or ``..`` segment, no leading or
    trailing ``/``, no segment longer than 250 bytes or starting with ``.upload-`` (temporary
    files).

    Raises:
        InvalidObjectKey: 400 ``InvalidKey`` otherwise.
    """
    if not key or not _KEY_CHARS.fullmatch(key):
        raise InvalidObjectKey(f"Invalid key: {key!r}")
    if len(key.encode()) > _MAX_KEY_BYTES:
        raise InvalidObjectKey(f"Invalid key: {key[:64]!r}...: over {_MAX_KEY_BYTES} bytes")
    for part in key.split("/"):
        if part in ("", ".", "..") or len(part.encode()) > _MAX_SEGMENT_BYTES or part.startswith(TEMP_PREFIX):
            raise InvalidObjectKey(
                f"Invalid key: {key!r} (empty, '.' or '..' segments, segments over "
                f"{_MAX_SEGMENT_BYTES} bytes and segments starting with {TEMP_PREFIX!r} cannot be stored)"
            )
    return key


def check_prefix(prefix: str) -> str:
    """``prefix`` when it is a valid listing prefix: empty, or the start of a valid key (a
    trailing ``/`` allowed, no ``.`` or ``..`` segment: a listing never leaves its bucket).

    Raises:
        InvalidObjectKey: 400 ``InvalidKey`` otherwise.
    """
    if prefix == "":
        return prefix
    body = prefix.removesuffix("/")
    try:
        check_key(body)
    except InvalidObjectKey as exc:
        raise InvalidObjectKey(f"Invalid prefix: {prefix[:200]!r}") from exc
    return prefix


def parse_size_limit(value: Any) -> int | None:
    """A bucket's ``file_size_limit``: bytes as an integer, or ``"20MB"``-style text
    (B, KB, MB, GB, powers of 1000, as Supabase's ``parseFileSizeToBytes``); None or 0: none.

    Raises:
        StorageError: 400 for anything else.
    """
    if value is None or value == 0 or value == "":
        return None
    if isinstance(value, bool):
        raise StorageError("file_size_limit must be a number of bytes or a size such as '20MB'")
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str):
        if value.isdigit():
            return int(value) or None
        m = _SIZE_WITH_UNIT.match(value.strip())
        if m:
            return int(float(m.group(1)) * _UNITS[m.group(2).lower()]) or None
    raise StorageError("Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B")


def mime_allowed(mime: str, allowed: list[str] | None) -> bool:
    """Whether ``mime`` (``type/subtype``, parameters ignored) matches ``allowed``
    (``type/subtype`` or ``type/*``); an empty or missing list allows everything.
    As Supabase's ``validateMimeType``."""
    if not allowed:
        return True
    parts = mime.split(";")[0].strip().lower().split("/")
    if len(parts) < 2:
        return False
    for entry in allowed:
        a = entry.strip().lower().split("/")
        if len(a) >= 2 and a[0] == parts[0] and a[1] in ("*", parts[1]):
            return True
    return False


@dataclass
class Bucket:
    """A bucket's settings, as Supabase's ``storage.buckets`` row (``GET /bucket/{id}``)."""

    id: str
    name: str
    public: bool = False
    file_size_limit: int | None = None
    allowed_mime_types: list[str] | None = None
    owner: str = ""
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """The body Supabase answers for a bucket (times in ISO 8601, ``type`` ``STANDARD``)."""
        body = asdict(self)
        body.update(
            created_at=iso(self.created_at), updated_at=iso(self.updated_at), type="STANDARD", owner_id=None
        )
        return body


@dataclass
class ObjectMeta:
    """What is kept beside an object: what Supabase's ``storage.objects`` row holds.

    Attributes:
        id: a UUID, new for each upload.
        mimetype: the content type given at upload.
        cache_control: the ``Cache-Control`` to answer downloads with.
        etag: the quoted MD5 of the bytes (S3's ETag of a single-part upload).
        size: bytes.
        created_at: UNIX time of the first upload under the key.
        updated_at: UNIX time of the last upload.
        user_metadata: the JSON object the client sent (``x-metadata`` / ``metadata``), or None.
        owner: the ``sub`` of the token that uploaded it ("" for the service role).
    """

    id: str
    mimetype: str
    cache_control: str
    etag: str
    size: int
    created_at: float
    updated_at: float
    user_metadata: dict[str, Any] | None = None
    owner: str = ""

    def supabase_metadata(self) -> dict[str, Any]:
        """The ``metadata`` object of Supabase's listings."""
        return {
            "eTag": self.etag,
            "size": self.size,
            "mimetype": self.mimetype,
            "cacheControl": self.cache_control,
            "lastModified": iso(self.updated_at),
            "contentLength": self.size,
            "httpStatusCode": 200,
        }


def _stage_json(path: Path, data: dict[str, Any]) -> Path:
    """``data`` written to a temporary file beside ``path`` (its folder made), for a rename
    into place; nothing is left behind when writing fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    staged = _stage_json(path, data)
    try:
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError):
        return None  # unreadable or torn by hand: treated as absent, rebuilt from the file
    return data if isinstance(data, dict) else None


class LocalBuckets:
    """Every bucket under ``root`` and their objects' metadata.

    Args:
        root: the storage root (``DATA_DIR/storage``).
        default_bucket: the settings' bucket, which always exists.
        default_store: that bucket's ``LocalStorage`` when the caller has one (the pipeline's
            own); otherwise one is made on first use, as for every other bucket.
    """

    def __init__(self, root: Path, *, default_bucket: str, default_store: LocalStorage | None = None) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.default_bucket = default_bucket
        self._stores: dict[str, LocalStorage] = {default_bucket: default_store} if default_store else {}
        self._lock = threading.Lock()

    # --- buckets -------------------------------------------------------------------------
    def _bucket_file(self, name: str) -> Path:
        return self.root / ".buckets" / f"{check_bucket_name(name)}.json"

    def get(self, name: str) -> Bucket | None:
        """The bucket ``name``, or None."""
        data = _read_json(self._bucket_file(name))
        if data is not None:
            return Bucket(**{k: v for k, v in data.items() if k in Bucket.__dataclass_fields__})
        if name == self.default_bucket:
            made = (self.root / name).stat().st_mtime if (self.root / name).exists() else time.time()
            return Bucket(id=name, name=name, created_at=made, updated_at=made)
        return None

    def require(self, name: str) -> Bucket:
        """The bucket ``name``.

        Raises:
            InvalidBucketName: 400, not a valid name.
            BucketNotFound: 404, no such bucket.
        """
        bucket = self.get(name)
        if bucket is None:
            raise BucketNotFound(f"bucket {name!r} does not exist")
        return bucket

    def list(self) -> list[Bucket]:
        """Every bucket, by name."""
        names = {self.default_bucket}
        folder = self.root / ".buckets"
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.json"))
        found = [self.get(n) for n in sorted(names)]
        return [b for b in found if b is not None]

    def create(self, bucket: Bucket) -> Bucket:
        """Store a new bucket.

        Raises:
            BucketExists: 409, the name is taken.
        """
        with self._lock:
            if self.get(bucket.id) is not None:
                raise BucketExists("The resource already exists")
            (self.root / bucket.id).mkdir(parents=True, exist_ok=True)
            _write_json(self._bucket_file(bucket.id), asdict(bucket))
        return bucket

    def save(self, bucket: Bucket) -> None:
        """Store ``bucket``'s changed settings (``updated_at`` is set now)."""
        bucket.updated_at = time.time()
        with self._lock:
            _write_json(self._bucket_file(bucket.id), asdict(bucket))

    def check_emptiable(self, name: str) -> None:
        """Raise unless bucket ``name`` may be emptied.

        Raises:
            BucketNotEmpty: 409, it is the settings' bucket: emptying it would delete the
                originals of every ingested document (``docingest delete`` removes documents).
        """
        if name == self.default_bucket:
            raise BucketNotEmpty(
                f"bucket {name!r} is where docingest stores documents (STORAGE_BUCKET); it is not "
                "emptied: delete documents with `docingest delete` or DELETE /api/v2/documents/{id}"
            )

    def delete(self, name: str) -> None:
        """Remove an empty bucket.

        Raises:
            BucketNotFound: 404.
            BucketNotEmpty: 409, it holds objects, or it is the settings' bucket.
        """
        self.require(name)
        if name == self.default_bucket:
            raise BucketNotEmpty(
                f"bucket {name!r} is where docingest stores documents (STORAGE_BUCKET); it is not deleted"
            )
        if next(self.keys(name), None) is not None:
            raise BucketNotEmpty("The bucket you tried to delete is not empty")
        with self._lock:
            self._bucket_file(name).unlink(missing_ok=True)
            for folder in (self.root / name, self.root / ".meta" / name):
                shutil.rmtree(folder, ignore_errors=True)  # no object left: temporary files, stale metadata
            self._stores.pop(name, None)

    # --- objects -------------------------------------------------------------------------
    def storage(self, name: str) -> LocalStorage:
        """The ``LocalStorage`` of bucket ``name`` (created on first use)."""
        with self._lock:
            store = self._stores.get(name)
            if store is None:
                store = LocalStorage(self.root / check_bucket_name(name), bucket=name)
                self._stores[name] = store
            return store

    def keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        """Keys of ``bucket`` starting with ``prefix`` (any order; temporary files skipped).

        Raises:
            InvalidObjectKey: 400, ``prefix`` is not one (:func:`check_prefix`).
        """
        base = self.root / bucket
        folder = check_prefix(prefix).rpartition("/")[0]
        start = base / folder if folder else base
        if not start.is_dir() or (start != base and base.resolve() not in start.resolve().parents):
            return
        for dirpath, dirnames, filenames in os.walk(start):
            rel = Path(dirpath).relative_to(base).as_posix()
            rel = "" if rel == "." else rel + "/"
            dirnames[:] = [
                d for d in dirnames if (rel + d + "/").startswith(prefix) or prefix.startswith(rel + d + "/")
            ]
            for name in filenames:
                key = rel + name
                if not name.startswith(TEMP_PREFIX) and key.startswith(prefix):
                    yield key

    def meta(self, bucket: str, key: str) -> ObjectMeta | None:
        """The object's metadata (rebuilt from the file when none was kept), or None: no object."""
        path = self.root / bucket / key
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        data = _read_json(self._meta_file(bucket, key))
        if data is not None and data.get("size") == st.st_size:
            try:
                return ObjectMeta(**{k: v for k, v in data.items() if k in ObjectMeta.__dataclass_fields__})
            except TypeError:
                pass
        return ObjectMeta(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"docingest-storage:{bucket}/{key}")),
            mimetype="application/octet-stream",
            cache_control="no-cache",
            etag=f'"{st.st_size:x}-{st.st_mtime_ns:x}"',
            size=st.st_size,
            created_at=st.st_mtime,
            updated_at=st.st_mtime,
        )

    def _meta_file(self, bucket: str, key: str) -> Path:
        return meta_file(self.root, bucket, key)

    def write_meta(self, bucket: str, key: str, meta: ObjectMeta) -> None:
        """Keep ``meta`` beside the object (atomic: a temporary file renamed into place)."""
        _write_json(self._meta_file(bucket, key), asdict(meta))

    def commit(self, tmp: Path, bucket: str, key: str, meta: ObjectMeta, *, overwrite: bool) -> bool:
        """Store the finished temporary file ``tmp`` as ``key`` with ``meta``; False when an
        object is there and not ``overwrite`` (nothing changed then).

        The metadata is written first, beside its place: a key whose metadata cannot be kept
        fails before its bytes are stored.

        Raises:
            IsADirectoryError, NotADirectoryError, FileExistsError: ``key`` is a folder of
                other keys or lies under another key.
            OSError: the disk refused.
        """
        final = self._meta_file(bucket, key)
        staged = _stage_json(final, asdict(meta))
        try:
            if not self.storage(bucket).commit_temp(tmp, key, overwrite=overwrite):
                return False
            os.replace(staged, final)
        finally:
            staged.unlink(missing_ok=True)
        return True

    def delete_object(self, bucket: str, key: str) -> bool:
        """Remove the object and its metadata; False when there was none."""
        path = self.root / bucket / key
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        self._meta_file(bucket, key).unlink(missing_ok=True)
        _prune(path.parent, self.root / bucket)
        _prune(self._meta_file(bucket, key).parent, self.root / ".meta" / bucket)
        return True


def _prune(folder: Path, stop: Path) -> None:
    """Remove ``folder`` and its parents up to (not including) ``stop`` while they are empty."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
