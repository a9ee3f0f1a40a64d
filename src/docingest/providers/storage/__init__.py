"""Object storage backends: ``make_storage(settings)`` picks the configured one."""

from __future__ import annotations

from typing import Any

from docingest.providers.storage.base import ObjectInfo, SignedUpload, Storage, parsed_key, raw_key
from docingest.settings import Settings

__all__ = ["ObjectInfo", "SignedUpload", "Storage", "make_storage", "parsed_key", "raw_key"]


def make_storage(settings: Settings) -> Any:
    """The backend named by ``UPLOAD_PIPELINE_STORAGE_BACKEND``, fault-wrapped if asked.

    ``local``: files under ``DATA_DIR/storage/BUCKET``, signed URLs served by the API at
    ``PUBLIC_URL``; ``supabase``: Supabase Storage's REST API at ``STORAGE_URL``;
    ``s3``: an S3-compatible endpoint (``STORAGE_URL``, or AWS when unset).
    """
    storage: Any
    if settings.storage_backend == "s3":
        from docingest.providers.storage.s3 import S3Storage

        storage = S3Storage(settings.storage_bucket, endpoint_url=settings.storage_url,
                            region=settings.storage_region,
                            access_key_id=settings.storage_access_key_id,
                            secret_access_key=settings.storage_secret_access_key)
    elif settings.storage_backend == "supabase":
        from docingest.providers.storage.supabase import SupabaseStorage

        assert settings.storage_url and settings.storage_service_key  # checked by Settings
        storage = SupabaseStorage(settings.storage_url, settings.storage_bucket,
                                  service_key=settings.storage_service_key)
    else:
        from docingest.providers.storage.local import LocalStorage
        from docingest.providers.storage.signing import UrlSigner

        storage = LocalStorage(settings.storage_dir, bucket=settings.storage_bucket,
                               base_url=settings.api_base_url(), signer=UrlSigner(settings.jwt_secret),
                               max_bytes=settings.max_file_bytes)
    if settings.fault_storage_error_rate:
        from docingest.testing.faults import FaultyStorage

        storage = FaultyStorage(storage, error_rate=settings.fault_storage_error_rate)
    return storage
