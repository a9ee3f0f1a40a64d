"""Object storage backends: ``make_storage(settings)`` builds the one ``BACKENDS`` names.

Imports the foundation and observability; boto3 and httpx only inside their backend.
"""

from __future__ import annotations

from collections.abc import Callable

from docingest.providers.storage.base import (
    ObjectInfo,
    SignedDownload,
    SignedUpload,
    Storage,
    document_keys,
    parsed_key,
    raw_key,
)
from docingest.providers.storage.signing import mint_service_key
from docingest.settings import Settings

__all__ = [
    "BACKENDS",
    "ObjectInfo",
    "SignedDownload",
    "SignedUpload",
    "Storage",
    "document_keys",
    "make_storage",
    "parsed_key",
    "raw_key",
]


def _local(settings: Settings) -> Storage:
    """Files under ``DATA_DIR/storage/BUCKET``; signed URLs served by the API at ``PUBLIC_URL``."""
    from docingest.providers.storage.local import LocalStorage
    from docingest.providers.storage.signing import UrlSigner

    return LocalStorage(
        settings.storage_dir,
        bucket=settings.storage_bucket,
        base_url=settings.api_base_url(),
        signer=UrlSigner(settings.jwt_secret),
        max_bytes=settings.max_file_bytes,
    )


def _supabase(settings: Settings) -> Storage:
    """Supabase Storage's REST API at ``STORAGE_URL``."""
    from docingest.providers.storage.supabase import SupabaseStorage

    assert settings.storage_url  # checked by Settings
    return SupabaseStorage(
        settings.storage_url,
        settings.storage_bucket,
        # No key set: the storage service shares JWT_SECRET (the compose stack), so a
        # service-role key signed with it is one the service accepts.
        service_key=settings.storage_service_key or mint_service_key(settings.jwt_secret),
        public_url=settings.storage_public_url,
    )


def _s3(settings: Settings) -> Storage:
    """An S3-compatible endpoint (``STORAGE_URL``, or AWS when unset); boto3 imported here."""
    from docingest.providers.storage.s3 import S3Storage

    return S3Storage(
        settings.storage_bucket,
        endpoint_url=settings.storage_url,
        region=settings.storage_region,
        access_key_id=settings.storage_access_key_id,
        secret_access_key=settings.storage_secret_access_key,
    )


#: ``UPLOAD_PIPELINE_STORAGE_BACKEND`` value -> the function building that backend.
BACKENDS: dict[str, Callable[[Settings], Storage]] = {"local": _local, "supabase": _supabase, "s3": _s3}


def make_storage(settings: Settings) -> Storage:
    """The backend named by ``UPLOAD_PIPELINE_STORAGE_BACKEND`` (a key of :data:`BACKENDS`).

    Fault injection (``UPLOAD_PIPELINE_FAULT_*``) is added by the composition root
    (``Runtime.storage``), not here.
    """
    return BACKENDS[settings.storage_backend](settings)
