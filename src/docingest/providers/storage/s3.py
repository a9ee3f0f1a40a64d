"""S3-compatible object storage (AWS S3, MinIO, R2, Supabase's S3 endpoint) through boto3.

Uploads use presigned ``PUT`` URLs with ``Content-Length``, ``Content-Type`` and the
``x-amz-checksum-sha256`` of the declared bytes signed into them: S3 refuses a body of
another length, type or checksum. boto3 is imported only when this backend is used.
"""

from __future__ import annotations

import base64
import math
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from docingest.errors import ObjectMissing, StorageUnavailable
from docingest.providers.storage.base import ObjectInfo, SignedDownload, SignedUpload, attachment


class S3Storage:
    """One bucket of an S3-compatible store.

    Args:
        bucket: the bucket (must exist).
        endpoint_url: None for AWS; the server's URL otherwise (path-style addressing).
        region, access_key_id, secret_access_key: credentials (None: boto3's usual chain).
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        )
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise ObjectMissing(f"S3 {what}: no such object") from exc
            raise StorageUnavailable(f"S3 {what}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"S3 {what}: {exc}") from exc

    def put_stream(self, key: str, stream: BinaryIO) -> ObjectInfo:
        """Upload ``stream`` (multipart for large bodies, never whole in memory)."""
        with self._errors(f"put {key}"):
            self.client.upload_fileobj(stream, self.bucket, key)
        info = self.head(key)
        assert info is not None
        return info

    def head(self, key: str) -> ObjectInfo | None:
        try:
            with self._errors(f"head {key}"):
                reply = self.client.head_object(Bucket=self.bucket, Key=key)
        except FileNotFoundError:
            return None
        return ObjectInfo(key, int(reply["ContentLength"]))

    @contextmanager
    def open_stream(self, key: str) -> Iterator[BinaryIO]:
        with self._errors(f"get {key}"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            yield body  # botocore StreamingBody: read(n) streams
        finally:
            body.close()

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """Download to a temporary file, removed afterwards."""
        with tempfile.TemporaryDirectory(prefix="docingest-s3-") as tmp:
            path = Path(tmp) / Path(key).name
            with self._errors(f"download {key}"):
                self.client.download_file(self.bucket, key, str(path))
            yield path

    def delete(self, key: str) -> None:
        with self._errors(f"delete {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=key)

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
        """A presigned ``PUT``; the returned headers are signed and must be sent as given."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ContentType": content_type}
        headers = {"content-type": content_type}
        if content_length is not None:
            params["ContentLength"] = content_length
            headers["content-length"] = str(content_length)
        if sha256 is not None:
            params["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(sha256)).decode()
            headers["x-amz-checksum-sha256"] = params["ChecksumSHA256"]
        with self._errors(f"presign {key}"):
            url = self.client.generate_presigned_url(
                "put_object", Params=params, ExpiresIn=int(expires_in), HttpMethod="PUT"
            )
        return SignedUpload(url, "PUT", headers, time.time() + expires_in)

    def presign_download(self, key: str, *, filename: str, expires_in: float) -> SignedDownload:
        """A presigned ``GET`` whose reply carries ``Content-Disposition: attachment``
        (``ResponseContentDisposition``, signed into the URL)."""
        params = {"Bucket": self.bucket, "Key": key, "ResponseContentDisposition": attachment(filename)}
        seconds = max(1, math.ceil(expires_in))
        with self._errors(f"presign download {key}"):
            url = self.client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=seconds, HttpMethod="GET"
            )
        return SignedDownload(url, time.time() + seconds)

    def ping(self) -> None:
        """Raise ``StorageUnavailable`` unless the bucket answers."""
        with self._errors("head bucket"):
            self.client.head_bucket(Bucket=self.bucket)

    def close(self) -> None:
        """Close the boto3 client's connection pool."""
        self.client.close()
