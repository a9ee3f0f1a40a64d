"""A missing object is ``ObjectMissing`` from every reader of every backend: a tree error with a
stable code (retried, then failed ``object_missing``) that is still a ``FileNotFoundError``."""

from __future__ import annotations

from pathlib import Path

import pytest

from docingest.errors import ObjectMissing, classify
from docingest.providers.storage.local import LocalStorage


@pytest.mark.parametrize("reader", ["open_stream", "local_path"])
def test_local_readers_raise_object_missing(tmp_path: Path, reader: str) -> None:
    storage = LocalStorage(tmp_path, bucket="documents")
    with pytest.raises(ObjectMissing) as caught, getattr(storage, reader)("u/raw/gone.pdf"):
        pass
    assert isinstance(caught.value, FileNotFoundError)
    err = classify(caught.value)
    assert err.error_code == "object_missing" and err.retryable
    assert "u/raw/gone.pdf" in err.message


def test_s3_readers_raise_object_missing() -> None:
    import boto3
    import moto

    from docingest.providers.storage.s3 import S3Storage

    with moto.mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="documents")
        storage = S3Storage("documents", region="us-east-1", access_key_id="k", secret_access_key="s")
        with pytest.raises(ObjectMissing), storage.open_stream("u/raw/gone.pdf"):
            pass
        with pytest.raises(ObjectMissing), storage.local_path("u/raw/gone.pdf"):
            pass
