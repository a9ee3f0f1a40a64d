"""Opening a pool on a database that is not ready fails at once with a message to act on."""

from __future__ import annotations

import itertools
import time

import psycopg
import pytest

from docingest.db.pool import make_pool
from docingest.errors import DatabaseNotMigrated, DatabaseUnavailable
from tests.conftest import with_database

pytestmark = pytest.mark.integration
_names = itertools.count()


def test_an_unmigrated_database_is_refused_at_once_naming_migrate(pg_url: str) -> None:
    name = f"bare_{next(_names)}_{int(time.time())}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # from template1: no pgvector, no schema
    started = time.monotonic()
    with pytest.raises(DatabaseNotMigrated, match="docingest migrate") as caught:
        make_pool(with_database(pg_url, name))
    assert time.monotonic() - started < 10  # not the pool's 60 s of retries
    err = caught.value
    assert err.error_code == "database_not_migrated" and not err.retryable and err.http_status == 503
    assert isinstance(err, RuntimeError)  # what callers caught before it joined the tree


def test_a_database_that_refuses_connections_is_database_unavailable() -> None:
    with pytest.raises(DatabaseUnavailable, match="cannot connect to the database") as caught:
        make_pool("postgresql://nobody@127.0.0.1:1/none")
    assert caught.value.error_code == "database_unavailable" and caught.value.http_status == 503


def test_a_migrated_database_opens(db_url: str) -> None:
    pool = make_pool(db_url, max_size=2)
    try:
        with pool.connection() as conn:
            assert conn.execute("SELECT to_regtype('vector') IS NOT NULL AS ok").fetchone()["ok"]
    finally:
        pool.close()
