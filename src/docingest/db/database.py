"""The database of one process as the services see it: pooled connections and transactions,
plain or scoped to one user by row security."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from docingest.db.repository import Repository

Conn = psycopg.Connection[Any]


class Database:
    """Connections from a pool built on first use.

    Args:
        pool: returns the process's pool (called on each use, so the pool, and the embedded
            database's start and migration, wait for the first query).
        repo: the queries; :meth:`user_transaction` runs its ``scope_to_user``.
    """

    def __init__(self, pool: Callable[[], ConnectionPool], repo: Repository | None = None) -> None:
        self._pool = pool
        self.repo = repo or Repository()

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Conn]:
        """A pooled connection; what it ran is committed when it goes back (rolled back on an
        exception). ``timeout``: seconds to wait for a free connection (None: the pool's)."""
        kwargs = {} if timeout is None else {"timeout": timeout}
        with self._pool().connection(**kwargs) as conn:
            yield conn

    @contextmanager
    def transaction(self, *, snapshot: bool = False) -> Iterator[Conn]:
        """One transaction on a pooled connection: committed on exit, rolled back on an exception.

        ``snapshot``: every statement of it sees the database as of its first one (``REPEATABLE
        READ``; for reads that must agree with each other, e.g. a search's legs while a
        version or a generation is being switched in)."""
        with self.connection() as conn, conn.transaction():
            if snapshot:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield conn

    @contextmanager
    def user_transaction(self, user_id: str, *, snapshot: bool = False) -> Iterator[Conn]:
        """A transaction scoped to ``user_id`` by row security (role ``docingest_api``): the
        statements in it see and change only that user's rows. ``snapshot``: as :meth:`transaction`."""
        with self.connection() as conn, conn.transaction():
            if snapshot:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            self.repo.scope_to_user(conn, user_id)
            yield conn
