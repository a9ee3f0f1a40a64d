"""Local filesystem storage under ``DATA_DIR/storage/BUCKET`` (the default backend)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from docingest.errors import StorageUnavailable
from docingest.storage.base import ObjectInfo, iter_stream


class LocalStorage:
    """Objects as files; writes go to a temporary file renamed into place (atomic)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"storage key escapes the bucket: {key!r}")
        return path

    def put_stream(self, key: str, stream: BinaryIO) -> ObjectInfo:
        """Copy ``stream`` to ``key`` in 1 MiB blocks; never holds the whole object."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            size = 0
            with os.fdopen(fd, "wb") as out:
                for block in iter_stream(stream):
                    out.write(block)
                    size += len(block)
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {key}: {exc.strerror}") from exc
        return ObjectInfo(key, size)

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        import io

        return self.put_stream(key, io.BytesIO(data))

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
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {key}: {exc.strerror}") from exc
        with f:
            yield f

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """The object as a local file (here: the file itself, no copy)."""
        path = self._path(key)
        if not path.exists():
            raise FileNotFoundError(key)
        yield path

    def read_bytes(self, key: str) -> bytes:
        with self.open_stream(key) as f:
            return f.read()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete {key}: {exc.strerror}") from exc

    def copy_from(self, key: str, src: Path) -> ObjectInfo:
        """Store a local file (used by ``docingest ingest``)."""
        with src.open("rb") as f:
            return self.put_stream(key, f)


