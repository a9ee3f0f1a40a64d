"""``SearchFilter``: ``--where`` parsing, metadata text forms, the LIKE pattern of a prefix."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from docingest.errors import InvalidFilter
from docingest.services.filters import SearchFilter, parse_where, text_form


def test_where_the_same_key_twice_is_in_and_a_value_keeps_its_equals_signs() -> None:
    assert parse_where(["year=2024", "team=a=b", "year=2023", "empty="]) == {
        "year": ["2024", "2023"],
        "team": ["a=b"],
        "empty": [""],
    }
    for bad in ("year", "=2024"):
        with pytest.raises(InvalidFilter, match="key=value"):
            parse_where([bad])


def test_values_compare_by_their_json_text() -> None:
    assert [text_form(v) for v in ("2024", 2024, 2.5, True, False)] == [
        "2024",
        "2024",
        "2.5",
        "true",
        "false",
    ]
    f = SearchFilter.build(meta={"year": [2024, "2024"], "draft": False})
    assert f.meta == {"year": ("2024",), "draft": ("false",)}
    assert json.loads(f.sql_params()["filter_meta"]) == {"year": ["2024"], "draft": ["false"]}


def test_a_float_that_is_an_integer_compares_as_the_integer() -> None:
    assert [text_form(v) for v in (2026.0, 2026, -3.0, 2.50, 1e-07, 1e20)] == [
        "2026",
        "2026",
        "-3",
        "2.5",
        "0.0000001",
        "100000000000000000000",
    ]
    assert SearchFilter.build(meta={"year": [2026.0, 2026]}).meta == {"year": ("2026",)}


def test_mime_types_are_normalised_as_uploads_are() -> None:
    f = SearchFilter.build(mime=["TEXT/MARKDOWN", "text/markdown; charset=utf-8", "Application/PDF"])
    assert f.mime == ("text/markdown", "application/pdf")
    with pytest.raises(InvalidFilter, match="not a MIME type"):
        SearchFilter.build(mime=["; charset=utf-8"])


def test_a_prefix_is_a_like_pattern_with_its_wildcards_escaped() -> None:
    assert SearchFilter.build(source_prefix="a_b%c\\d").sql_params()["source_like"] == "a\\_b\\%c\\\\d%"


def test_times_without_an_offset_are_utc_and_an_empty_filter_is_empty() -> None:
    f = SearchFilter.build(created_after="2024-05-01", updated_before="2024-05-01T12:00:00+02:00")
    assert f.created_after == datetime(2024, 5, 1, tzinfo=UTC)
    assert f.updated_before == datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert SearchFilter.build().empty and SearchFilter.build(meta={}).empty and not f.empty
