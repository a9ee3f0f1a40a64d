"""Versioned SQL migrations (``sql/migrations/NNN_name.sql``), applied in order once each."""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg

_LOCK_KEY = 0x646F6369  # advisory lock id: concurrent migrators wait for one another


def migration_files() -> list[tuple[str, str]]:
    """``[(version, sql)]`` sorted by version (the file name without ``.sql``)."""
    root = resources.files("docingest.db") / "sql" / "migrations"
    files = sorted((p for p in root.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name.removesuffix(".sql"), p.read_text(encoding="utf-8")) for p in files]


def apply_migrations(conn: psycopg.Connection[Any], *, embedding_dimensions: int) -> list[str]:
    """Apply the migrations not yet applied; return the versions applied now.

    ``${embedding_dimensions}`` in a migration is replaced by ``embedding_dimensions``.
    """
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS public.docingest_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = conn.execute("SELECT version FROM public.docingest_migrations").fetchall()
        done = {r["version"] if isinstance(r, dict) else r[0] for r in rows}
        for version, sql in migration_files():
            if version in done:
                continue
            conn.execute(sql.replace("${embedding_dimensions}", str(int(embedding_dimensions))))
            conn.execute("INSERT INTO public.docingest_migrations (version) VALUES (%s)", (version,))
            applied_now.append(version)
    return applied_now


def embedding_column_dimensions(conn: psycopg.Connection[Any]) -> int | None:
    """Dimension of ``document_chunks.embedding`` (pgvector keeps it in atttypmod), or None
    (no table, or an untyped column: after migration 009 each generation has its own)."""
    row = conn.execute(
        "SELECT a.atttypmod AS d FROM pg_attribute a"
        " WHERE a.attrelid = to_regclass('upload_pipeline.document_chunks')"
        " AND a.attname = 'embedding'"
    ).fetchone()
    if row is None:
        return None
    dims = int(row["d"] if isinstance(row, dict) else row[0])
    return dims if dims > 0 else None  # untyped since migration 009: each generation has its own
