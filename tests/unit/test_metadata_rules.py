"""A document's metadata object is refused, with a message naming the key, where PostgreSQL
could not store it (a NUL character, a number JSON cannot hold) or where a key is no name."""

from __future__ import annotations

import pytest

from docingest.errors import InvalidMetadata
from docingest.stages.metadata import check_meta, meta_defaults


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ({"k": "v\x00"}, "'k': a NUL character"),
        ({"k": ["a", "b\x00"]}, "'k': a NUL character"),
        ({"k": float("inf")}, "'k': inf is not a number"),
        ({"k\x01": 1}, "without control characters"),
        ({" ": 1}, "not blank"),
    ],
)
def test_what_postgresql_cannot_store_is_refused_by_name(meta: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidMetadata, match=words.replace("(", r"\(")):
        check_meta(meta)


def test_front_matter_keys_that_cannot_be_stored_are_left_out_not_failed() -> None:
    kept, left = meta_defaults({"team": "ops"}, {"s": "\x00nul", "year": 2026, "team": "x"})
    assert kept == {"year": 2026} and left == ["s"]
