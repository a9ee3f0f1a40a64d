"""A worker starting while the database drops its connections: recording the embedding
generation (``Runtime.generation``, the first thing ``Runtime.worker`` does) is retried on a new
connection instead of ending the process. Seen in tests/e2e/test_db_restart.py: a worker still
starting when every backend was terminated died with ``OperationalError``."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from docingest.runtime import Runtime

pytestmark = pytest.mark.integration


def test_a_connection_dropped_while_the_generation_is_recorded_is_retried(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = runtime.repo.ensure_generation
    calls: list[int] = []

    def dropped_first(conn: psycopg.Connection[Any], **kwargs: Any) -> Any:
        calls.append(conn.info.backend_pid)
        if len(calls) == 1:  # the server drops this backend, as pg_terminate_backend does
            with psycopg.connect(runtime.url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        return real(conn, **kwargs)

    monkeypatch.setattr(runtime.repo, "ensure_generation", dropped_first)
    generation = runtime.generation()
    assert len(calls) == 2 and calls[0] != calls[1]  # a second attempt, on a new connection
    assert (generation.provider, generation.dimensions) == ("hashing", 384)
    with psycopg.connect(runtime.url) as conn:
        (count,) = conn.execute("SELECT count(*) FROM upload_pipeline.embedding_generations").fetchone()  # type: ignore[misc]
    assert count == 1


def test_a_database_refusal_is_not_retried(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def refused(conn: psycopg.Connection[Any], **kwargs: Any) -> Any:
        calls.append(1)
        raise psycopg.errors.InsufficientPrivilege("permission denied for table embedding_generations")

    monkeypatch.setattr(runtime.repo, "ensure_generation", refused)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        runtime.generation()
    assert calls == [1]
