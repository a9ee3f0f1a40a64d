"""Filtered search over real HTTP: ``GET /search`` with filter parameters and ``POST /search``
with a ``filter`` body answer the brute-force ranking of the matching rows, under row security
(a filter naming another user's document finds nothing of theirs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import numpy as np
import pytest

from docingest.runtime import Runtime
from docingest.services.filters import SearchFilter
from docingest.settings import Settings
from tests.e2e.client import API, ApiClient, token
from tests.e2e.conftest import SECRET, running_api
from tests.fixtures.chunks import unit
from tests.fixtures.filtered import DIM, Row, brute_force, make_corpus

pytestmark = pytest.mark.e2e
QUERY = "alpha kappa"


@pytest.fixture(scope="module")
def served(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Settings, list[Row]]]:
    """An API (no worker) over a corpus of three users' documents written into its database."""
    with running_api(pg_url, tmp_path_factory.mktemp("filters"), with_worker=False) as (base, settings):
        rt = Runtime(settings, migrate=False)
        try:
            rng = np.random.default_rng(3)
            corpus = make_corpus(rt, iter(unit(rng.normal(size=(3 * 16 * 4, DIM)))), docs=16, chunks=4)
            yield base, settings, corpus
        finally:
            rt.close()


def _ids(reply: Any) -> list[UUID]:
    assert reply.status_code == 200, reply.text
    return [UUID(h["chunk_id"]) for h in reply.json()["results"]]


def _expected(settings: Settings, corpus: list[Row], f: SearchFilter, k: int) -> list[UUID]:
    rt = Runtime(settings, migrate=False)
    try:
        vector = rt.searcher().embed_query(QUERY)
    finally:
        rt.close()
    return brute_force(corpus, "alice", f, vector, k)


def test_get_and_post_search_filter_as_brute_force(served: tuple[str, Settings, list[Row]]) -> None:
    base, settings, corpus = served
    alice = ApiClient(base, token(SECRET, "alice"))
    try:
        cases: list[tuple[dict[str, Any], dict[str, Any], SearchFilter]] = [
            (
                {"source_prefix": "notes_"},
                {"source_prefix": "notes_"},
                SearchFilter.build(source_prefix="notes_"),
            ),
            (
                {"where": ["year=2024", "team=a"]},
                {"meta": {"year": 2024, "team": "a"}},
                SearchFilter.build(meta={"year": "2024", "team": "a"}),
            ),
            (
                {"where": ["year=2023", "year=2022"], "mime": ["application/pdf", "text/plain"]},
                {"meta": {"year": [2023, "2022"]}, "mime": ["application/pdf", "text/plain"]},
                SearchFilter.build(meta={"year": ["2023", "2022"]}, mime=["application/pdf", "text/plain"]),
            ),
            (
                {"created_after": "2024-01-04T00:00:00Z", "created_before": "2024-01-10T00:00:00+00:00"},
                {"created_after": "2024-01-04T00:00:00Z", "created_before": "2024-01-10T00:00:00Z"},
                SearchFilter.build(
                    created_after="2024-01-04T00:00:00Z", created_before="2024-01-10T00:00:00Z"
                ),
            ),
        ]
        for params, body, f in cases:
            expected = _expected(settings, corpus, f, 6)
            assert expected, params  # each filter lets some chunks through
            got = alice.http.get(f"{API}/search", params={"q": QUERY, "k": 6, "mode": "vector", **params})
            assert _ids(got) == expected, params
            posted = alice.http.post(
                f"{API}/search", json={"q": QUERY, "k": 6, "mode": "vector", "filter": body}
            )
            assert _ids(posted) == expected, body
        # another user's document ids name nothing of theirs, by either route
        bob_doc = next(r.document_id for r in corpus if r.user == "bob")
        alice_doc = next(r.document_id for r in corpus if r.user == "alice")
        got = alice.http.get(
            f"{API}/search", params={"q": QUERY, "k": 50, "document_id": [str(bob_doc), str(alice_doc)]}
        )
        posted = alice.http.post(
            f"{API}/search", json={"q": QUERY, "k": 50, "filter": {"document_ids": [str(bob_doc)]}}
        )
        assert {h for h in _ids(got)} == {r.chunk_id for r in corpus if r.document_id == alice_doc}
        assert _ids(posted) == []
    finally:
        alice.close()


def test_bad_filters_are_422_naming_the_field(served: tuple[str, Settings, list[Row]]) -> None:
    base, _, _ = served
    alice = ApiClient(base, token(SECRET, "alice"))
    try:
        for params in ({"where": "no-equals-sign"}, {"created_after": "last tuesday"}, {"document_id": "x"}):
            reply = alice.http.get(f"{API}/search", params={"q": QUERY, **params})
            assert reply.status_code == 422 and reply.json()["error_code"] == "invalid_request", reply.text
        for body in ({"meta": {"": "x"}}, {"meta": {"year": None}}, {"meta": {"y": []}}, {"colour": "red"}):
            reply = alice.http.post(f"{API}/search", json={"q": QUERY, "filter": body})
            assert reply.status_code == 422 and reply.json()["error_code"] == "invalid_request", reply.text
        blank = alice.http.post(f"{API}/search", json={"q": "   "})
        assert blank.status_code == 422 and blank.json()["error_code"] == "invalid_request"
    finally:
        alice.close()
