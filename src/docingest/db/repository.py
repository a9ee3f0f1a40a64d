"""The only module that runs SQL. Queries live in ``sql/queries.sql`` under ``-- name:`` headers.

Every method takes the connection to run on, so the caller (the worker) owns
the transaction and its fencing check.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any, Iterable, Sequence
from uuid import UUID

import numpy as np
import psycopg

from docingest.domain import Document, Job

Conn = psycopg.Connection[Any]


@cache
def queries() -> dict[str, str]:
    """``{name: sql}`` parsed from ``sql/queries.sql``."""
    text = (resources.files("docingest.db") / "sql" / "queries.sql").read_text(encoding="utf-8")
    parts = re.split(r"^-- name: (\w+)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


def _one(conn: Conn, name: str, params: dict[str, Any]) -> dict[str, Any] | None:
    return conn.execute(queries()[name], params).fetchone()  # type: ignore[no-any-return]


def _all(conn: Conn, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return conn.execute(queries()[name], params).fetchall()  # type: ignore[no-any-return]


def _jsonb(value: dict[str, Any]) -> str:
    return json.dumps(value, default=str)


class Repository:
    """Typed access to the ``upload_pipeline`` schema."""

    # --- claiming and leases -------------------------------------------------
    def claim_job(self, conn: Conn, *, worker_id: str, lease_seconds: float) -> tuple[Job, str] | None:
        """Claim one job (``FOR UPDATE SKIP LOCKED``): ``(job, previous_state)`` or None."""
        row = _one(conn, "claim_job", {"worker_id": worker_id, "lease_seconds": lease_seconds})
        if row is None:
            return None
        return Job.from_row(row), row["previous_state"]

    def fence(self, conn: Conn, job: Job) -> bool:
        """Lock the job row; True while ``job.attempt_id`` still holds it."""
        row = _one(conn, "fence", {"job_id": job.job_id, "attempt_id": job.attempt_id})
        return row is not None

    def renew_leases(
        self, conn: Conn, held: Sequence[tuple[UUID, UUID]], *, lease_seconds: float
    ) -> set[UUID]:
        """Extend the leases of ``[(job_id, attempt_id)]``; return the job ids still held."""
        if not held:
            return set()
        rows = _all(
            conn,
            "renew_leases",
            {
                "job_ids": [h[0] for h in held],
                "attempt_ids": [h[1] for h in held],
                "lease_seconds": lease_seconds,
            },
        )
        return {r["job_id"] for r in rows}

    def advance_job(
        self,
        conn: Conn,
        job: Job,
        *,
        stage: str,
        state: str,
        progress: dict[str, Any],
        delay_seconds: float = 0.0,
        lease_seconds: float = 0.0,
    ) -> Job | None:
        row = _one(
            conn,
            "advance_job",
            {
                "job_id": job.job_id,
                "attempt_id": job.attempt_id,
                "stage": stage,
                "state": state,
                "progress": _jsonb(progress),
                "delay_seconds": delay_seconds,
                "lease_seconds": lease_seconds,
            },
        )
        return Job.from_row(row) if row else None

    def update_progress(self, conn: Conn, job_id: UUID, progress: dict[str, Any]) -> None:
        _one(conn, "update_progress", {"job_id": job_id, "progress": _jsonb(progress)})

    def retry_job_later(
        self, conn: Conn, job: Job, *, delay_seconds: float, error_code: str, error_message: str
    ) -> Job | None:
        row = _one(
            conn,
            "retry_job_later",
            {
                "job_id": job.job_id,
                "attempt_id": job.attempt_id,
                "delay_seconds": delay_seconds,
                "error_code": error_code,
                "error_message": error_message,
            },
        )
        return Job.from_row(row) if row else None

    def fail_job(self, conn: Conn, job: Job, *, error_code: str, error_message: str) -> Job | None:
        row = _one(
            conn,
            "fail_job",
            {
                "job_id": job.job_id,
                "attempt_id": job.attempt_id,
                "error_code": error_code,
                "error_message": error_message,
            },
        )
        return Job.from_row(row) if row else None

    def release_job(self, conn: Conn, job: Job) -> bool:
        return _one(conn, "release_job", {"job_id": job.job_id, "attempt_id": job.attempt_id}) is not None

    def requeue_failed_job(self, conn: Conn, job_id: UUID) -> Job | None:
        row = _one(conn, "requeue_failed_job", {"job_id": job_id})
        return Job.from_row(row) if row else None

    def insert_event(
        self, conn: Conn, *, job_id: UUID, document_id: UUID, stage: str, type: str,
        payload: dict[str, Any] | None = None,
    ) -> None:
        conn.execute(
            queries()["insert_event"],
            {
                "job_id": job_id,
                "document_id": document_id,
                "stage": stage,
                "type": type,
                "payload": _jsonb(payload or {}),
            },
        )

    # --- documents and jobs --------------------------------------------------
    def get_job(self, conn: Conn, job_id: UUID) -> Job | None:
        row = _one(conn, "get_job", {"job_id": job_id})
        return Job.from_row(row) if row else None

    def get_document(self, conn: Conn, document_id: UUID) -> Document | None:
        row = _one(conn, "get_document", {"document_id": document_id})
        return Document.from_row(row) if row else None

    def find_document_by_sha(self, conn: Conn, user_id: str, file_sha256: str) -> Document | None:
        row = _one(conn, "find_document_by_sha", {"user_id": user_id, "file_sha256": file_sha256})
        return Document.from_row(row) if row else None

    def insert_document(self, conn: Conn, **fields: Any) -> Document | None:
        """Insert a document; None when the user already has these bytes (dedupe)."""
        row = _one(conn, "insert_document", fields)
        return Document.from_row(row) if row else None

    def insert_job(self, conn: Conn, *, job_id: UUID, document_id: UUID, state: str) -> Job:
        row = _one(conn, "insert_job", {"job_id": job_id, "document_id": document_id, "state": state})
        assert row is not None
        return Job.from_row(row)

    def insert_failed_job(
        self, conn: Conn, *, job_id: UUID, document_id: UUID, error_code: str, error_message: str
    ) -> Job:
        """A job that failed before any stage ran (e.g. refused at registration)."""
        row = _one(conn, "insert_failed_job", {"job_id": job_id, "document_id": document_id,
                                               "error_code": error_code, "error_message": error_message})
        assert row is not None
        return Job.from_row(row)

    def document_stats(self, conn: Conn, document_ids: list[UUID]) -> list[dict[str, Any]]:
        """``document_id, page_count, chunks`` of each listed document."""
        return _all(conn, "document_stats", {"document_ids": document_ids})

    def latest_job_for_document(self, conn: Conn, document_id: UUID) -> Job | None:
        row = _one(conn, "latest_job_for_document", {"document_id": document_id})
        return Job.from_row(row) if row else None

    def update_document_parsed(
        self, conn: Conn, document_id: UUID, *, parsed_path: str, page_count: int | None
    ) -> None:
        conn.execute(
            queries()["update_document_parsed"],
            {"document_id": document_id, "parsed_path": parsed_path, "page_count": page_count},
        )

    def update_document_parsed_sha(self, conn: Conn, document_id: UUID, parsed_sha256: str) -> None:
        conn.execute(
            queries()["update_document_parsed_sha"],
            {"document_id": document_id, "parsed_sha256": parsed_sha256},
        )

    def list_jobs(
        self, conn: Conn, *, user_id: str | None = None, document_ids: list[UUID] | None = None
    ) -> list[dict[str, Any]]:
        return _all(conn, "list_jobs", {"user_id": user_id, "document_ids": document_ids})

    # --- chunks and vectors --------------------------------------------------
    def replace_chunk_buffer(self, conn: Conn, document_id: UUID, rows: Iterable[tuple[Any, ...]]) -> int:
        """Replace a document's buffered chunks with ``rows`` of
        ``(chunk_id, ordinal, text, meta_dict, token_count)``; returns the count (COPY)."""
        conn.execute(queries()["delete_chunk_buffer"], {"document_id": document_id})
        n = 0
        with conn.cursor().copy(
            "COPY upload_pipeline.document_chunk_buffer"
            " (chunk_id, document_id, ordinal, text, meta, token_count) FROM STDIN"
        ) as copy:
            for chunk_id, ordinal, text, meta, token_count in rows:
                copy.write_row((chunk_id, document_id, ordinal, text, _jsonb(meta), token_count))
                n += 1
        return n

    def pending_chunks(self, conn: Conn, document_id: UUID) -> list[dict[str, Any]]:
        """Buffered chunks without a vector, by ordinal: ``chunk_id, ordinal, text, token_count``."""
        return _all(conn, "pending_chunks", {"document_id": document_id})

    def buffer_counts(self, conn: Conn, document_id: UUID) -> dict[str, int]:
        row = _one(conn, "buffer_counts", {"document_id": document_id})
        assert row is not None
        return {k: int(v) for k, v in row.items()}

    def insert_vectors(
        self, conn: Conn, document_id: UUID, chunk_ids: Sequence[UUID], vectors: np.ndarray, model: str
    ) -> None:
        """Upsert one vector per chunk id into the vector buffer."""
        with conn.cursor() as cur:
            cur.executemany(
                queries()["insert_vector"],
                [
                    {"chunk_id": cid, "document_id": document_id, "embedding": vec, "embed_model": model}
                    for cid, vec in zip(chunk_ids, vectors, strict=True)
                ],
            )

    def finalize_document(self, conn: Conn, document_id: UUID) -> int:
        """Move buffered chunks and vectors into ``document_chunks``; clear the buffers.

        Idempotent: with empty buffers (already finalized) it changes nothing.
        Returns the number of chunks the document has afterwards.
        """
        counts = self.buffer_counts(conn, document_id)
        if counts["chunks"] == 0:
            return counts["final"]
        if counts["vectors"] != counts["chunks"]:
            raise RuntimeError(
                f"{counts['chunks'] - counts['vectors']} chunks have no vector; cannot finalize"
            )
        conn.execute(queries()["finalize_delete_old"], {"document_id": document_id})
        conn.execute(queries()["finalize_insert"], {"document_id": document_id})
        conn.execute(queries()["delete_chunk_buffer"], {"document_id": document_id})
        return counts["chunks"]

    # --- search ----------------------------------------------------------------
    def search_vector(
        self, conn: Conn, *, user_id: str, embedding: np.ndarray, limit: int, ef_search: int = 100
    ) -> list[dict[str, Any]]:
        conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
        return _all(conn, "search_vector", {"user_id": user_id, "embedding": embedding, "limit": limit})

    def search_fulltext(self, conn: Conn, *, user_id: str, query: str, limit: int) -> list[dict[str, Any]]:
        return _all(conn, "search_fulltext", {"user_id": user_id, "query": query, "limit": limit})

    # --- observability ---------------------------------------------------------
    def job_counts(self, conn: Conn) -> list[tuple[str, str, int]]:
        """``[(stage, state, jobs)]`` over all jobs (queue depth)."""
        return [(r["stage"], r["state"], int(r["n"])) for r in _all(conn, "job_counts", {})]

    def events_after(
        self, conn: Conn, document_id: UUID, after_event_id: int = 0, *, limit: int = 500
    ) -> list[dict[str, Any]]:
        """A document's events with ``event_id > after_event_id``, oldest first, at most ``limit``."""
        return _all(conn, "events_after", {"document_id": document_id,
                                           "after_event_id": after_event_id, "limit": limit})
