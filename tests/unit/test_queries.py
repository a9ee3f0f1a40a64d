"""``queries()``: the named statements of ``sql/queries.sql``, as they are sent."""

from __future__ import annotations

from docingest.db.repository import queries

PSYCOPG_PARSE_CACHE_LIMIT = 4096  # psycopg._queries.MAX_CACHED_STATEMENT_LENGTH


def test_whole_line_comments_are_not_sent() -> None:
    for name, sql in queries().items():
        assert sql and not any(line.lstrip().startswith("--") for line in sql.splitlines()), name
    assert "FOR UPDATE SKIP LOCKED" in queries()["claim_job"]


def test_every_query_fits_psycopgs_parse_cache() -> None:
    """A longer statement is parsed again on every execution (it was, for one, 0.1 ms a call)."""
    too_long = {n: len(q) for n, q in queries().items() if len(q) > PSYCOPG_PARSE_CACHE_LIMIT}
    assert not too_long


def test_filtered_queries_fit_psycopgs_parse_cache() -> None:
    """The filtered searches are sent with ``matching_documents`` before them: still cached."""
    from docingest.db.repository import _filtered

    for name in [n for n in queries() if n.endswith("_filtered") or n == "filtered_chunk_count"]:
        assert len(_filtered(name)) <= PSYCOPG_PARSE_CACHE_LIMIT, name
