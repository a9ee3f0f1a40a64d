"""Connection pools and the resolution of the database URL."""

from __future__ import annotations

from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

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


def make_pool(url: str, *, max_size: int = 10, min_size: int = 1) -> ConnectionPool:
    """A psycopg pool whose connections return dict rows and know ``vector``.

    Broken connections are detected on checkout (``check``) and replaced, so the
    pool survives a dropped connection or a database restart.
    """
    try:  # fail fast with a clear message instead of the pool retrying for minutes
        psycopg.connect(url, connect_timeout=10).close()
    except psycopg.OperationalError as exc:
        raise RuntimeError(f"cannot connect to the database (UPLOAD_PIPELINE_DATABASE_URL): {exc}") from exc
    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        configure=_configure,
        check=ConnectionPool.check_connection,
        open=False,
        reconnect_timeout=300,
    )
    pool.open(wait=True, timeout=60)
    return pool
