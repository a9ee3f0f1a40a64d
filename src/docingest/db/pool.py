"""Connection pools and the resolution of the database URL."""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from docingest.errors import DatabaseNotMigrated, DatabaseUnavailable
from docingest.settings import Settings


def database_url(settings: Settings) -> str:
    """The configured URL, or the embedded server's (started on demand)."""
    if settings.database_url:
        return settings.database_url
    from docingest.db.embedded import embedded_database_url

    return embedded_database_url(settings.data_dir)


def _configure(conn: psycopg.Connection[Any]) -> None:
    register_vector(conn)
    conn.commit()


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[dict[str, Any]]:
    """One connection with dict rows and the vector type registered."""
    conn = psycopg.connect(url, row_factory=dict_row, autocommit=autocommit)
    register_vector(conn)
    if not autocommit:
        conn.commit()
    return conn


def check_connection(conn: psycopg.Connection[Any]) -> None:
    """The pool's checkout check: a round trip only when the connection looks broken.

    An idle, healthy connection has nothing to read: the server speaks only when asked. A
    backend that was terminated, or a server that stopped, leaves an error message or end of
    file on the socket, which makes it readable; only then is the connection pinged
    (``ConnectionPool.check_connection``), which raises and makes the pool replace it. This
    spares a round trip on every checkout, which was a seventh of a no-op stage transition's.
    What it misses (a peer that vanished without closing the socket) a ping would not catch
    either: it would wait for the same TCP timeout.

    Raises:
        psycopg.OperationalError: the connection is closed or does not answer.
    """
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()  # not select.select: it fails on descriptors over 1023
    poller.register(conn.fileno(), select.POLLIN)
    if poller.poll(0):  # readable, hung up or in error
        ConnectionPool.check_connection(conn)


@contextmanager
def single_statements(pool: ConnectionPool) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection in autocommit mode: each statement is its own transaction.

    For statements that are whole transactions on their own (a claim, a stage transition):
    no ``BEGIN`` and no ``COMMIT`` round trips. Switching autocommit on an idle connection is
    local to the client. The connection goes back to the pool in its usual mode.
    """
    with pool.connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            with suppress(Exception):  # a broken connection: the pool discards it anyway
                conn.autocommit = False


def make_pool(url: str, *, max_size: int = 10, min_size: int = 1) -> ConnectionPool:
    """A psycopg pool whose connections return dict rows and know ``vector``.

    Broken connections are detected on checkout (:func:`check_connection`) and replaced, so
    the pool survives a dropped connection or a database restart.

    Raises:
        DatabaseUnavailable: the database does not accept a connection (within 10 s).
        DatabaseNotMigrated: it does, but has not been migrated (instead of the pool retrying
            ``register_vector`` for a minute).
    """
    try:  # fail fast with a clear message instead of the pool retrying for minutes
        with psycopg.connect(url, connect_timeout=10) as conn:
            row = conn.execute(
                "SELECT to_regtype('vector') IS NOT NULL, to_regnamespace('upload_pipeline') IS NOT NULL"
            ).fetchone()
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to the database (UPLOAD_PIPELINE_DATABASE_URL): {exc}"
        ) from exc
    if row is None or not all(row):
        raise DatabaseNotMigrated(
            "the database is not migrated (no pgvector type or no upload_pipeline schema): "
            "run `docingest migrate` with the same UPLOAD_PIPELINE_DATABASE_URL"
        )
    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        configure=_configure,
        check=check_connection,
        open=False,
        reconnect_timeout=300,
    )
    pool.open(wait=True, timeout=60)
    return pool
