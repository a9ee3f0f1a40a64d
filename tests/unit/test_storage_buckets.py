"""The local storage service's buckets and object metadata (``providers/storage/buckets.py``):
Supabase's name rules and size units, MIME matching, and the sidecars beside the pipeline's
``LocalStorage`` objects, whose layout does not change."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from docingest.errors import BucketExists, BucketNotEmpty, InvalidBucketName, InvalidObjectKey, StorageError
from docingest.providers.storage.buckets import (
    Bucket,
    LocalBuckets,
    ObjectMeta,
    check_bucket_name,
    check_key,
    mime_allowed,
    parse_size_limit,
)
from docingest.providers.storage.local import LocalStorage


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), (0, None), (2048, 2048), ("2048", 2048), ("20MB", 20_000_000), ("1.5kb", 1500), ("3B", 3)],
)
def test_file_size_limit_takes_bytes_or_supabase_units(value: object, expected: int | None) -> None:
    assert parse_size_limit(value) == expected


@pytest.mark.parametrize("value", ["20 MB", "MB", "-1", "1TB", True, 1.5, [1]])
def test_file_size_limit_refuses_other_values(value: object) -> None:
    with pytest.raises(StorageError, match="file size|file_size_limit"):
        parse_size_limit(value)


def test_mime_types_match_exactly_or_by_wildcard_subtype() -> None:
    assert mime_allowed("image/png", ["image/*"]) and mime_allowed(
        "Text/Plain; charset=utf-8", ["text/plain"]
    )
    assert mime_allowed("anything", None) and mime_allowed("anything", [])
    assert not mime_allowed("text/html", ["text/plain", "image/*"]) and not mime_allowed("plain", ["text/*"])


def test_keys_and_bucket_names_follow_supabase_and_the_file_system() -> None:
    assert check_key("a/b c/(1)!*'&$@=;:+,?-_.txt") == "a/b c/(1)!*'&$@=;:+,?-_.txt"
    for bad in ("", "a//b", "./a", "a/..", "/a", "a/", "é", "a#b", "a\\b", "x" * 256, "a/.upload-x"):
        with pytest.raises(InvalidObjectKey):
            check_key(bad)
    assert check_bucket_name("my bucket (1)") == "my bucket (1)"
    for bad in ("", "a/b", ".meta", "x" * 101, "é"):
        with pytest.raises(InvalidBucketName):
            check_bucket_name(bad)


def test_buckets_are_kept_and_the_settings_bucket_always_exists(tmp_path: Path) -> None:
    buckets = LocalBuckets(tmp_path, default_bucket="documents")
    assert [b.id for b in buckets.list()] == ["documents"]
    buckets.create(Bucket(id="pics", name="pics", public=True, file_size_limit=10))
    with pytest.raises(BucketExists):
        buckets.create(Bucket(id="pics", name="pics"))
    again = LocalBuckets(tmp_path, default_bucket="documents").require("pics")  # read back from disk
    assert (again.public, again.file_size_limit) == (True, 10)
    with pytest.raises(BucketNotEmpty):
        buckets.delete("documents")
    buckets.delete("pics")
    assert buckets.get("pics") is None and not (tmp_path / "pics").exists()


def test_metadata_sidecars_stay_outside_the_bucket_and_follow_the_pipelines_writes(tmp_path: Path) -> None:
    buckets = LocalBuckets(tmp_path, default_bucket="documents")
    store = LocalStorage(tmp_path / "documents", bucket="documents")  # what the worker uses
    store.put_stream("u/raw/d.md", io.BytesIO(b"# doc\n"))
    assert (tmp_path / "documents" / "u" / "raw" / "d.md").read_bytes() == b"# doc\n"  # the layout
    derived = buckets.meta("documents", "u/raw/d.md")
    assert derived is not None and (derived.size, derived.mimetype) == (6, "application/octet-stream")
    kept = ObjectMeta("id-1", "text/markdown", "max-age=60", '"e"', 6, 1.0, 2.0, {"k": "v"})
    buckets.write_meta("documents", "u/raw/d.md", kept)
    assert buckets.meta("documents", "u/raw/d.md") == kept
    assert list(buckets.keys("documents")) == ["u/raw/d.md"]  # the sidecar is never listed
    store.put_stream("u/raw/d.md", io.BytesIO(b"# other\n"))  # the pipeline rewrites: stale sidecar gone
    assert buckets.meta("documents", "u/raw/d.md").mimetype == "application/octet-stream"  # type: ignore[union-attr]
    buckets.write_meta("documents", "u/raw/d.md", kept)
    store.delete("u/raw/d.md")
    assert buckets.meta("documents", "u/raw/d.md") is None
    assert not store.meta_path("u/raw/d.md").exists()
