"""A document's metadata object: its limits (:func:`check_meta`) and the merge of a Markdown
file's front matter into it (:func:`meta_defaults`), for the services that take metadata from
users and the stages that add front matter; and a document's names: the display file name
(:func:`display_filename`) and the longest source (:data:`MAX_SOURCE_CHARS`), which the
services check and the attachments stage derives."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

from docingest.errors import InvalidMetadata

#: The longest source name, in characters (``documents.source``'s check).
MAX_SOURCE_CHARS = 1024


def display_filename(name: str) -> str:
    """The original name, for display only: last path segment, NFC, no control characters.

    Raises:
        ValueError: when nothing displayable is left.
    """
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and not "\ud800" <= ch <= "\udfff")
    name = unicodedata.normalize("NFC", name).strip()
    if not name or name in (".", ".."):
        raise ValueError("the filename has no displayable characters")
    return name[:255]


#: Limits of a document's metadata object (:func:`check_meta`).
#: One character that is neither a control character (Unicode Cc) nor whitespace
#: (``str.isspace``), as a regular expression class (Python's, pydantic's and JSON Schema's).
SIGNIFICANT_CHAR = r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
#: A name: no control characters, and not blank (the API schema's ``pattern``).
NAME_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*" + SIGNIFICANT_CHAR + r"[^\u0000-\u001f\u007f-\u009f]*$"
MAX_META_KEYS = 64
MAX_META_KEY_CHARS = 128
MAX_META_BYTES = 16_384


def check_meta(meta: Any) -> dict[str, Any]:
    """``meta`` checked as a document's metadata object: a JSON object of at most
    :data:`MAX_META_KEYS` keys (non-empty, at most :data:`MAX_META_KEY_CHARS` characters, no
    control characters), each value a string (without NUL, which PostgreSQL cannot store), a
    finite number, a boolean, null or a list of those, :data:`MAX_META_BYTES` bytes of JSON in all.

    Raises:
        InvalidMetadata: (a ``ValueError``) naming what is wrong.
    """
    if not isinstance(meta, dict):
        raise InvalidMetadata("metadata must be an object of key: value pairs")
    if len(meta) > MAX_META_KEYS:
        raise InvalidMetadata(f"metadata has {len(meta)} keys; at most {MAX_META_KEYS} are accepted")
    scalar = (str, int, float, bool, type(None))
    for key, value in meta.items():
        if not isinstance(key, str) or len(key) > MAX_META_KEY_CHARS or not re.match(NAME_PATTERN, key):
            raise InvalidMetadata(
                f"metadata key {key!r} must be 1 to {MAX_META_KEY_CHARS} characters, not blank, "
                "without control characters"
            )
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and "\x00" in v:
                raise InvalidMetadata(f"metadata {key!r}: a NUL character cannot be stored; remove it")
            if isinstance(v, float) and not math.isfinite(v):
                raise InvalidMetadata(f"metadata {key!r}: {v} is not a number JSON can hold")
        if isinstance(value, list):
            if not all(isinstance(v, scalar) for v in value):
                raise InvalidMetadata(
                    f"metadata {key!r}: a list may hold strings, numbers, booleans and null only"
                )
        elif not isinstance(value, scalar):
            raise InvalidMetadata(
                f"metadata {key!r}: a value is a string, number, boolean, null or a list of those"
            )
    try:
        size = len(json.dumps(meta, ensure_ascii=False).encode())
    except UnicodeEncodeError as exc:  # a lone surrogate: not text UTF-8 can hold
        raise InvalidMetadata(
            f"metadata holds a lone surrogate ({exc.object[exc.start : exc.end]!r}); remove it"
        ) from exc
    if size > MAX_META_BYTES:
        raise InvalidMetadata(f"metadata is {size} bytes of JSON; at most {MAX_META_BYTES} are accepted")
    return meta


def meta_defaults(meta: dict[str, Any], defaults: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The keys of ``defaults`` to add to the metadata object ``meta`` (keys it has win), in
    order, as many as keep the merge within :func:`check_meta`'s limits; and the keys left out
    for the limits (a warning names them)."""
    kept: dict[str, Any] = {}
    left: list[str] = []
    for key, value in defaults.items():
        if key in meta:
            continue
        try:
            check_meta({**kept, key: value, **meta})
        except InvalidMetadata:
            left.append(key)
            continue
        kept[key] = value
    return kept, left
