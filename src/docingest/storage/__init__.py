"""Object storage backends: ``make_storage(settings)`` picks the configured one."""

from __future__ import annotations

from typing import Any

from docingest.settings import Settings
from docingest.storage.base import ObjectInfo, Storage, parsed_key, raw_key

__all__ = ["ObjectInfo", "Storage", "make_storage", "parsed_key", "raw_key"]


def make_storage(settings: Settings) -> Any:
    """The backend named by ``UPLOAD_PIPELINE_STORAGE_BACKEND``, fault-wrapped if asked."""
    from docingest.storage.local import LocalStorage

    storage: Any = LocalStorage(settings.storage_dir)
    if settings.fault_storage_error_rate:
        from docingest.faults import FaultyStorage

        storage = FaultyStorage(storage, error_rate=settings.fault_storage_error_rate)
    return storage
