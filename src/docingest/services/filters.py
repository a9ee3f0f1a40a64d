"""Search filters: which of a user's documents a search ranks the chunks of.

A :class:`SearchFilter` names conditions on a document's columns; a chunk is searched when its
document meets every condition given (AND); a condition left out (None, or an empty ``meta``)
does not restrict. The CLI (``--where``, ``--source-prefix`` ...), the API (``GET /search``'s
parameters, ``POST /search``'s ``filter``) and ``eval`` build one; the repository applies it
to every leg of a search (``matching_documents`` in ``queries.sql``).

Metadata equality compares *text forms*: a filter value and each metadata value are compared
as text, a string as itself, a number in plain decimal notation without trailing zeros
(``2024``, ``2.5``; ``2024.0`` is ``2024``, on either side), a boolean as ``true``/``false``. So
``--where year=2024`` matches ``"year": "2024"``, ``"year": 2024`` and ``"year": 2024.0`` (YAML
front matter), and ``--where draft=false`` matches ``false`` and ``"false"``. A key given
several values matches any of them (``in``). A document whose value is a list matches when the
list holds a matching element. A missing key or a null value matches nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from docingest.errors import InvalidFilter
from docingest.providers.parsing.sniff import normalise_mime

#: The most values one list condition (document ids, MIME types, one key's values) may hold.
MAX_FILTER_VALUES = 100
#: The most metadata keys a filter may name.
MAX_FILTER_KEYS = 16
#: The longest metadata key, value, source prefix or MIME type, in characters.
MAX_FILTER_CHARS = 1024

Scalar = str | int | float | bool


def number_text(value: float) -> str:
    """A finite float in plain decimal notation without trailing zeros (``2026.0`` -> ``2026``,
    ``2.50`` -> ``2.5``, ``1e-07`` -> ``0.0000001``): the text PostgreSQL's
    ``trim_scale(numeric)::text`` gives a JSON number (``matching_documents``)."""
    text = format(Decimal(repr(value)).normalize(), "f")
    return "0" if text in ("-0", "0") else text


def text_form(value: Any) -> str:
    """The text a metadata value is compared by: a string as itself, a boolean as
    ``true``/``false``, a number in plain decimal notation without trailing zeros
    (:func:`number_text`: ``2026.0`` and ``2026`` are both ``2026``).

    Raises:
        InvalidFilter: null, a non-finite number, a string over :data:`MAX_FILTER_CHARS`
            characters or holding NUL, or a value that is not a scalar.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if "\x00" in value or len(value) > MAX_FILTER_CHARS:
            raise InvalidFilter(
                f"a metadata filter value is at most {MAX_FILTER_CHARS} characters, without NUL"
            )
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidFilter(f"a metadata filter value must be a finite number, not {value!r}")
        return number_text(value)
    raise InvalidFilter(
        f"a metadata filter value is a string, number or boolean (or a list of those), not {value!r}"
    )


def _utc(value: datetime | str | None, name: str) -> datetime | None:
    """``value`` as an aware datetime (an ISO 8601 string parsed; no offset: UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidFilter(
                f"{name}: {value!r} is not an ISO 8601 date or time (e.g. 2024-05-01 or 2024-05-01T12:00:00Z)"
            ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _values(raw: Any, name: str) -> list[Any]:
    values = list(raw) if isinstance(raw, list | tuple) else [raw]
    if not values:
        raise InvalidFilter(f"{name}: give at least one value")
    if len(values) > MAX_FILTER_VALUES:
        raise InvalidFilter(f"{name}: {len(values)} values; at most {MAX_FILTER_VALUES} are accepted")
    return values


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_FILTER_CHARS or "\x00" in value:
        raise InvalidFilter(f"{name}: a value is 1 to {MAX_FILTER_CHARS} characters (no NUL), not {value!r}")
    return value


def _mime(value: Any) -> str:
    """A MIME type as documents store it: lower case, without parameters (``normalise_mime``)."""
    mime = normalise_mime(_text(value, "mime"))
    if not mime:
        raise InvalidFilter(f"mime: {value!r} is not a MIME type (e.g. text/markdown)")
    return mime


@dataclass(frozen=True)
class SearchFilter:
    """Conditions on a chunk's document; every one given must hold.

    Attributes:
        source_prefix: the document's ``source`` starts with this (case-sensitive).
        document_ids: the document is one of these (another user's ids match nothing).
        meta: ``{key: [text forms]}``: the document's metadata value under each key equals one
            of the values (see the module's docstring for how values compare).
        mime: the document's MIME type is one of these (e.g. ``application/pdf``; lower case,
            without parameters: ``TEXT/Markdown; charset=utf-8`` is ``text/markdown``).
        created_after, created_before: the document (this version of its source) was
            registered at or after / strictly before this instant (timezone-aware).
        updated_after, updated_before: the same for the document's last update.
    """

    source_prefix: str | None = None
    document_ids: tuple[UUID, ...] | None = None
    meta: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    mime: tuple[str, ...] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None

    @classmethod
    def build(
        cls,
        *,
        source_prefix: str | None = None,
        document_ids: Iterable[UUID | str] | None = None,
        meta: Mapping[str, Scalar | Sequence[Scalar]] | None = None,
        mime: Iterable[str] | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        updated_after: datetime | str | None = None,
        updated_before: datetime | str | None = None,
    ) -> SearchFilter:
        """A checked filter from loosely typed values (the CLI's and the API's).

        ``meta`` maps a key to one value or a list of values (``in``); datetimes may be ISO 8601
        strings (without an offset: UTC).

        Raises:
            InvalidFilter: (a ``ValueError``, ``invalid_filter``) an empty or over-long key,
                prefix or MIME type; a null, nested or non-finite metadata value; more than
                :data:`MAX_FILTER_VALUES` values in a list or :data:`MAX_FILTER_KEYS` keys; an
                empty list; an id that is not a UUID; a time that is not ISO 8601.
        """
        if source_prefix is not None:
            source_prefix = _text(source_prefix, "source_prefix")
        ids: tuple[UUID, ...] | None = None
        if document_ids is not None:
            try:
                ids = tuple(
                    v if isinstance(v, UUID) else UUID(str(v))
                    for v in _values(list(document_ids), "document_id")
                )
            except ValueError:
                raise InvalidFilter("document_id: each value is a document id (a UUID)") from None
        checked: dict[str, tuple[str, ...]] = {}
        if meta:
            if len(meta) > MAX_FILTER_KEYS:
                raise InvalidFilter(f"the filter names {len(meta)} metadata keys; at most {MAX_FILTER_KEYS}")
            for key, raw in meta.items():
                if not isinstance(key, str) or not key or len(key) > MAX_FILTER_CHARS or "\x00" in key:
                    raise InvalidFilter(f"a metadata key is 1 to {MAX_FILTER_CHARS} characters, not {key!r}")
                forms = [text_form(v) for v in _values(raw, f"metadata {key!r}")]
                checked[key] = tuple(dict.fromkeys(forms))
        mimes = None
        if mime is not None:
            mimes = tuple(dict.fromkeys(_mime(m) for m in _values(list(mime), "mime")))
        return cls(
            source_prefix=source_prefix,
            document_ids=ids,
            meta=checked,
            mime=mimes,
            created_after=_utc(created_after, "created_after"),
            created_before=_utc(created_before, "created_before"),
            updated_after=_utc(updated_after, "updated_after"),
            updated_before=_utc(updated_before, "updated_before"),
        )

    @property
    def empty(self) -> bool:
        """True when no condition is given (every document matches)."""
        return self == SearchFilter()

    def sql_params(self) -> dict[str, Any]:
        """The parameters of ``matching_documents`` (``queries.sql``): each condition's value,
        None where it is not given; the source prefix as a ``LIKE`` pattern with its ``%``,
        ``_`` and ``\\`` escaped; ``meta`` as a JSON object of lists of text forms."""
        like = None
        if self.source_prefix is not None:
            escaped = self.source_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            like = escaped + "%"
        return {
            "source_like": like,
            "filter_document_ids": None if self.document_ids is None else list(self.document_ids),
            "filter_meta": json.dumps({k: list(v) for k, v in self.meta.items()}),
            "filter_mime": None if self.mime is None else list(self.mime),
            "created_after": self.created_after,
            "created_before": self.created_before,
            "updated_after": self.updated_after,
            "updated_before": self.updated_before,
        }


def parse_where(items: Iterable[str]) -> dict[str, list[str]]:
    """``key=value`` strings (``--where``, the API's ``where``) as ``{key: [values]}``: the same
    key twice is ``in`` (either value). The key is what comes before the first ``=``, the value
    what follows it, both as written.

    Raises:
        InvalidFilter: an item without ``=`` or with an empty key.
    """
    meta: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidFilter(f"{item!r}: write key=value (a metadata key, then = and the value)")
        meta.setdefault(key, []).append(value)
    return meta
