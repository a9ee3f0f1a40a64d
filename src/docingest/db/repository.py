"""The only module that runs SQL. Queries live in ``sql/queries.sql`` under ``-- name:`` headers.

Every method takes the connection to run on, so the caller (the worker) owns
the transaction and its fencing check.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
from psycopg import sql

from docingest.domain import (
    EMBEDDED_CONTEXT,
    Claim,
    Document,
    Generation,
    Job,
    JobControl,
    JobProgress,
    embedding_input,
)
from docingest.errors import InternalInvariantError

Conn = psycopg.Connection[Any]


@cache
def queries() -> dict[str, str]:
    """``{name: sql}`` parsed from ``sql/queries.sql``, without its whole-line comments.

    The comments document the file; dropped, they are not sent to the server, and every
    query stays under psycopg's 4,096-character limit for caching its parsed form (a longer
    one is re-parsed on every execution).
    """
    text = (resources.files("docingest.db") / "sql" / "queries.sql").read_text(encoding="utf-8")
    parts = re.split(r"^-- name: (\w+)\s*$", text, flags=re.MULTILINE)
    return {parts[i]: _strip_comment_lines(parts[i + 1]) for i in range(1, len(parts), 2)}


def _strip_comment_lines(sql: str) -> str:
    return "\n".join(line for line in sql.strip().splitlines() if not line.lstrip().startswith("--"))


def _one(conn: Conn, name: str, params: dict[str, Any]) -> dict[str, Any] | None:
    row: dict[str, Any] | None = conn.execute(queries()[name], params).fetchone()
    return row


def _all(conn: Conn, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = conn.execute(queries()[name], params).fetchall()
    return rows


#: Session advisory lock keys of the generations' index builds: this plus the generation's id.
_GENERATION_INDEX_LOCK = 0x646F6369_0000


@cache
def generation_sql(name: str, generation: Generation) -> sql.Composed:
    """Query ``name`` with the generation's dimensions and id as literals (``{dims}``,
    ``{generation}``): a partial expression index matches only the same literal cast and
    predicate, which a parameter would hide from the planner of a generic plan."""
    return sql.SQL(queries()[name]).format(
        dims=sql.Literal(int(generation.dimensions)), generation=sql.Literal(int(generation.generation_id))
    )


#: pgvector's largest ``hnsw.ef_search``: the candidate list of a filtered HNSW scan whose filter,
#: applied to the candidates afterwards, left fewer than asked of the first ``ef_search``.
FILTERED_EF_SEARCH = 1000


@cache
def _filtered(name: str) -> str:
    """Query ``name`` after ``WITH matching AS (matching_documents)`` (fixed text only)."""
    return f"WITH matching AS (\n{queries()['matching_documents'].strip().rstrip(';')}\n)\n{queries()[name]}"


@cache
def filtered_generation_sql(name: str, generation: Generation) -> sql.Composed:
    """:func:`_filtered` ``name`` with the generation's literals, as :func:`generation_sql`."""
    return sql.SQL(_filtered(name)).format(
        dims=sql.Literal(int(generation.dimensions)), generation=sql.Literal(int(generation.generation_id))
    )


def _filtered_one(conn: Conn, name: str, params: dict[str, Any]) -> dict[str, Any] | None:
    row: dict[str, Any] | None = conn.execute(_filtered(name), params).fetchone()
    return row


def _filtered_all(conn: Conn, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = conn.execute(_filtered(name), params).fetchall()
    return rows


def like_escape(text: str) -> str:
    """``text`` with LIKE's metacharacters (``%``, ``_``) and the escape character ``\\``
    escaped, for a pattern with ``ESCAPE '\\'`` that matches it literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _jsonb(value: dict[str, Any]) -> str:
    return json.dumps(value, default=str)


class Repository:
    """Typed access to the ``upload_pipeline`` schema."""

    # --- claiming and leases -------------------------------------------------
    def claim_job(self, conn: Conn, *, worker_id: str, lease_seconds: float) -> Claim | None:
        """Claim one job (``FOR UPDATE SKIP LOCKED``) with its document, in one statement.

        Returns:
            ``Claim(job, previous_state, document, previous_worker)``, or None when nothing is claimable.
        """
        row = _one(conn, "claim_job", {"worker_id": worker_id, "lease_seconds": lease_seconds})
        if row is None:
            return None
        document = Document.from_row({k[4:]: v for k, v in row.items() if k.startswith("doc_")})
        return Claim(Job.from_row(row), row["previous_state"], document, row.get("previous_worker"))

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

    def complete_stage(
        self,
        conn: Conn,
        job: Job,
        *,
        stage: str,
        state: str,
        progress: JobProgress,
        events: Sequence[tuple[str, str, dict[str, Any]]],
        control: JobControl | None = None,
        delay_seconds: float = 0.0,
        lease_seconds: float = 0.0,
    ) -> Job | None:
        """Move ``job`` from ``job.stage`` to ``stage``/``state`` and write ``events``: one statement.

        Fenced: only while ``job.attempt_id`` holds the job, working, at ``job.stage``.

        Args:
            progress: display figures merged into ``progress`` (the fields set).
            events: ``(stage, type, payload)`` rows, inserted in this order.
            control: control state merged into ``control`` (the fields set).
            delay_seconds: ``next_attempt_at`` is now plus this (a rescheduled job).
            lease_seconds: the lease of a job that stays ``working`` (renewed when less
                than half of it is left).

        Returns:
            the job's new row, or None when the attempt was fenced out (nothing written).
        """
        row = _one(
            conn,
            "complete_stage",
            {
                "job_id": job.job_id,
                "attempt_id": job.attempt_id,
                "from_stage": job.stage.value,
                "stage": stage,
                "state": state,
                "progress": _jsonb(progress.as_dict()),
                "control": _jsonb(control.as_dict() if control is not None else {}),
                "events": json.dumps(
                    [{"stage": s, "type": t, "payload": p} for s, t, p in events], default=str
                ),
                "delay_seconds": delay_seconds,
                "lease_seconds": lease_seconds,
            },
        )
        return Job.from_row(row) if row else None

    def update_progress(
        self,
        conn: Conn,
        job_id: UUID,
        progress: JobProgress,
        *,
        lease_seconds: float,
        control: JobControl | None = None,
    ) -> None:
        """Merge ``progress`` (and ``control``: the fields set in each) into the job's and extend
        its lease by ``lease_seconds`` (a checkpoint of the attempt holding it, inside its
        fenced transaction)."""
        _one(
            conn,
            "update_progress",
            {
                "job_id": job_id,
                "progress": _jsonb(progress.as_dict()),
                "control": _jsonb(control.as_dict() if control is not None else {}),
                "lease_seconds": lease_seconds,
            },
        )

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

    def requeue_failed_job(
        self, conn: Conn, job_id: UUID, *, upload_deadline_seconds: float | None = None
    ) -> Job | None:
        """A failed job back to work at its stage, its error cleared and retries reset.

        Args:
            upload_deadline_seconds: None: ``queued`` now. A number: the job (which must have
                failed at ``uploaded``) ``waiting`` for a new upload until now plus that many
                seconds.

        Returns:
            the job's new row, or None when it was not failed (or not at ``uploaded`` when
            waiting for an upload).
        """
        row = _one(
            conn, "requeue_failed_job", {"job_id": job_id, "upload_deadline_seconds": upload_deadline_seconds}
        )
        return Job.from_row(row) if row else None

    def redeclare_document(
        self,
        conn: Conn,
        document_id: UUID,
        *,
        bytes_len: int,
        mime: str,
        filename: str | None = None,
        raw_path: str | None = None,
    ) -> Document | None:
        """Set the declaration of a new registration or upload request of the same bytes: size
        and type, and the display name and storage key when given (None: kept)."""
        row = _one(
            conn,
            "redeclare_document",
            {
                "document_id": document_id,
                "bytes_len": bytes_len,
                "mime": mime,
                "filename": filename,
                "raw_path": raw_path,
            },
        )
        return Document.from_row(row) if row else None

    def insert_event(
        self,
        conn: Conn,
        *,
        job_id: UUID,
        document_id: UUID,
        stage: str,
        type: str,
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
    def get_job(self, conn: Conn, job_id: UUID, *, user_id: str | None = None) -> Job | None:
        """The job, or None; with ``user_id`` only a job of that user's documents."""
        row = _one(conn, "get_job", {"job_id": job_id, "user_id": user_id})
        return Job.from_row(row) if row else None

    def get_document(self, conn: Conn, document_id: UUID) -> Document | None:
        row = _one(conn, "get_document", {"document_id": document_id})
        return Document.from_row(row) if row else None

    def find_version(self, conn: Conn, user_id: str, source: str, file_sha256: str) -> Document | None:
        """The user's version of ``source`` with these bytes, or None."""
        row = _one(conn, "find_version", {"user_id": user_id, "source": source, "file_sha256": file_sha256})
        return Document.from_row(row) if row else None

    def lock_source(self, conn: Conn, user_id: str, source: str) -> None:
        """Wait for, then hold until the transaction ends, the lock on registering ``source``
        (a transaction-level advisory lock keyed by the user and the source)."""
        conn.execute(queries()["lock_source"], {"user_id": user_id, "source": source})

    def delete_stale_versions(self, conn: Conn, *, user_id: str, source: str, keep: UUID) -> list[Document]:
        """Delete the versions of ``source`` other than ``keep`` that serve nothing (no job
        ``done``: in flight, or failed), their jobs locked first as a worker locks them.

        A worker still running one of them is fenced out at its next write (its job row is
        gone). Returns the deleted documents (their objects are the caller's to queue).
        """
        params = {"user_id": user_id, "source": source, "keep": keep}
        _all(conn, "lock_stale_versions", params)
        return [Document.from_row(r) for r in _all(conn, "delete_stale_versions", params)]

    def delete_source(self, conn: Conn, *, user_id: str, source: str) -> list[Document]:
        """Delete every version of ``source`` (jobs locked first); returns the deleted documents."""
        params = {"user_id": user_id, "source": source}
        _all(conn, "lock_source_jobs", params)
        return [Document.from_row(r) for r in _all(conn, "delete_source", params)]

    def delete_attachments(self, conn: Conn, *, user_id: str, document_ids: Sequence[UUID]) -> list[Document]:
        """Delete the user's documents attached to ``document_ids`` (e-mail messages: their
        ``meta.attached_to``), then those attached to them, and so on (an attached message has
        attachments too); their jobs locked first, as a worker locks them. Returns the deleted
        documents (their objects are the caller's to queue)."""
        gone: list[Document] = []
        ids = [str(i) for i in document_ids]
        while ids:
            params = {"user_id": user_id, "document_ids": ids}
            _all(conn, "lock_attachment_jobs", params)
            deleted = [Document.from_row(r) for r in _all(conn, "delete_attachments", params)]
            gone += deleted
            ids = [str(d.document_id) for d in deleted]
        return gone

    def attached_documents(self, conn: Conn, document_ids: Sequence[UUID]) -> list[UUID]:
        """The ids of the documents attached to ``document_ids`` (not theirs), oldest first."""
        rows = _all(conn, "attached_documents", {"document_ids": [str(i) for i in document_ids]})
        return [UUID(str(r["document_id"])) for r in rows]

    def attach_document(self, conn: Conn, document_id: UUID, *, attached_to: UUID) -> Document | None:
        """Set the document's ``meta.attached_to`` to the message ``attached_to``; None when the
        document does not exist."""
        row = _one(conn, "attach_document", {"document_id": document_id, "attached_to": str(attached_to)})
        return Document.from_row(row) if row else None

    def source_versions(self, conn: Conn, *, user_id: str, source: str) -> list[dict[str, Any]]:
        """Every version of ``source``, newest first: the document's columns and its latest
        job's ``job_id, stage, state, error_code`` (NULLs without a job)."""
        return _all(conn, "source_versions", {"user_id": user_id, "source": source})

    def sources_under(
        self, conn: Conn, *, user_id: str, prefix: str, origin: str | None = None
    ) -> list[dict[str, Any]]:
        """Every version of the user's sources starting with ``prefix`` (of ``origin`` only,
        when given), by source then registration order: ``document_id, source, file_sha256,
        bytes_len, source_mtime_ns, origin, version_seq, filename, state, error_code``."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return _all(conn, "sources_under", {"user_id": user_id, "pattern": pattern, "origin": origin})

    def merge_document_meta(self, conn: Conn, document_id: UUID, meta: dict[str, Any]) -> bool:
        """Merge ``meta`` into the document's metadata (its keys win); False when it held them
        all already (nothing written)."""
        row = _one(conn, "merge_document_meta", {"document_id": document_id, "meta": _jsonb(meta)})
        return row is not None

    def add_document_meta_defaults(self, conn: Conn, document_id: UUID, meta: dict[str, Any]) -> None:
        """Add ``meta``'s keys to the document's metadata where it has none (its keys win)."""
        conn.execute(
            queries()["add_document_meta_defaults"], {"document_id": document_id, "meta": _jsonb(meta)}
        )

    def set_source_mtime(self, conn: Conn, document_id: UUID, source_mtime_ns: int) -> None:
        """Record the file's modification time seen for the document (sync skips by it)."""
        conn.execute(
            queries()["set_source_mtime"], {"document_id": document_id, "source_mtime_ns": source_mtime_ns}
        )

    def queue_object_deletions(
        self, conn: Conn, keys: Sequence[str], *, retain_until: Mapping[str, datetime] | None = None
    ) -> None:
        """Queue ``keys`` for deletion once this transaction commits (the object outbox).

        ``retain_until``: for keys a signed upload URL may still write, the end of that window;
        such a key stays queued (deleted again by the sweep) until then.
        """
        if keys:
            retain = [(retain_until or {}).get(k) for k in keys]
            conn.execute(queries()["queue_object_deletions"], {"keys": list(keys), "retain_until": retain})

    def upload_deadlines(
        self, conn: Conn, *, user_id: str, document_id: UUID | None = None, source: str | None = None
    ) -> dict[UUID, datetime]:
        """The upload deadline of each of the user's documents (``document_id``, or every version
        of ``source``) whose job waits for its upload."""
        params = {"user_id": user_id, "document_id": document_id, "source": source}
        return {UUID(str(r["document_id"])): r["deadline"] for r in _all(conn, "upload_deadlines", params)}

    def key_is_claimed(self, conn: Conn, raw_path: str) -> bool:
        """Whether a document (any user's) names ``raw_path`` as its original's key."""
        return _one(conn, "document_by_raw_key", {"raw_path": raw_path}) is not None

    def pending_object_deletions(self, conn: Conn, *, min_age_seconds: float, limit: int) -> list[str]:
        """Keys queued at least ``min_age_seconds`` ago, oldest first, at most ``limit``."""
        rows = _all(conn, "pending_object_deletions", {"min_age_seconds": min_age_seconds, "limit": limit})
        return [r["object_key"] for r in rows]

    def forget_object_deletions(self, conn: Conn, keys: Sequence[str]) -> None:
        """Drop ``keys`` from the outbox (their objects are deleted)."""
        if keys:
            conn.execute(queries()["forget_object_deletions"], {"keys": list(keys)})

    def reusable_chunks(
        self, conn: Conn, *, user_id: str, file_sha256: str, document_id: UUID
    ) -> dict[str, Any] | None:
        """Another document of the user's with these bytes and stored chunks (``document_id,
        page_count, parsed_sha256, chunks``), the most recent; None when there is none."""
        return _one(
            conn,
            "reusable_chunks",
            {"user_id": user_id, "file_sha256": file_sha256, "document_id": document_id},
        )

    def clone_chunks(self, conn: Conn, *, document_id: UUID, from_document_id: UUID) -> int:
        """Buffer ``from_document_id``'s stored chunks and vectors as ``document_id``'s (new
        chunk ids; page count and parsed hash copied); returns the chunks buffered."""
        params = {"document_id": document_id, "from_document_id": from_document_id}
        row = _one(conn, "clone_chunks", params)
        conn.execute(queries()["clone_vectors"], params)
        return int(row["chunks"]) if row else 0

    def insert_document(
        self, conn: Conn, *, max_active: int | None = None, **fields: Any
    ) -> tuple[int, Document | None]:
        """Insert a document (``document_id, user_id, filename, mime, bytes_len, file_sha256,
        raw_path, source`` (None: the document's id), ``meta`` (a JSON text), ``origin``,
        ``source_mtime_ns``).

        Returns:
            ``(active_jobs, document)``: document is None when the user already has these
            bytes under this source or, with ``max_active``, has that many unfinished jobs;
            ``active_jobs`` counts them up to ``max_active`` (0 without it).
        """
        row = _one(conn, "insert_document", {**fields, "max_active": max_active})
        assert row is not None
        active = int(row["active_jobs"])
        return active, Document.from_row(row) if row["document_id"] is not None else None

    def insert_job(
        self,
        conn: Conn,
        *,
        job_id: UUID,
        document_id: UUID,
        state: str,
        via: str,
        wait_seconds: float = 0.0,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> Job | None:
        """Insert a document's job at ``uploaded`` with its ``job_created`` event (payload
        ``via``, ``state``, ``bytes_len``, ``mime``).

        Args:
            state: ``queued``; ``waiting`` (for an upload, until now + ``wait_seconds``); or
                ``failed`` with ``error_code`` and ``error_message`` (refused at registration).
            via: the entry point that created it (``ingest``, ``upload``).

        Returns:
            the job, or None when the document does not exist.
        """
        row = _one(
            conn,
            "insert_job",
            {
                "job_id": job_id,
                "document_id": document_id,
                "state": state,
                "via": via,
                "wait_seconds": wait_seconds,
                "error_code": error_code,
                "error_message": error_message,
            },
        )
        return Job.from_row(row) if row else None

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
        """Every job (of ``user_id``, of ``document_ids``; None: all), oldest first.

        Each row: the job's ``job_id, document_id, stage, state, attempts, retry_count,
        error_code, error_message, progress, control, created_at, updated_at, finished_at, claimed_by,
        lease_expires_at, lost_leases``, its document's ``filename, user_id, bytes_len``, ``stalled``
        (working under an expired lease: its holder died or hung) and ``lease_left_s`` (float
        seconds until the lease expires, negative after; None without a lease), both by the
        database's clock.
        """
        return _all(conn, "list_jobs", {"user_id": user_id, "document_ids": document_ids})

    # --- chunks and vectors --------------------------------------------------
    def replace_chunk_buffer(self, conn: Conn, document_id: UUID, rows: Iterable[tuple[Any, ...]]) -> int:
        """Replace a document's buffered chunks with ``rows`` of
        ``(chunk_id, ordinal, text, meta_dict, token_count)``; returns the count (COPY).

        Each row also gets ``text_sha256``, the SHA-256 of the UTF-8 bytes of what is embedded
        (``domain.embedding_input``: the text, after its context when ``meta`` has one): the
        embedding cache's key, so the embedding stage plans without reading the texts.
        """
        conn.execute(queries()["delete_chunk_buffer"], {"document_id": document_id})
        n = 0
        with conn.cursor().copy(
            "COPY upload_pipeline.document_chunk_buffer"
            " (chunk_id, document_id, ordinal, text, meta, token_count, text_sha256) FROM STDIN"
        ) as copy:
            for chunk_id, ordinal, text, meta, token_count in rows:
                digest = hashlib.sha256(embedding_input(text, meta).encode("utf-8")).digest()
                copy.write_row((chunk_id, document_id, ordinal, text, _jsonb(meta), token_count, digest))
                n += 1
        return n

    def embedding_plan(
        self,
        conn: Conn,
        document_id: UUID,
        *,
        model: str,
        dimensions: int,
        use_cache: bool,
        after_ordinal: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The buffered chunks by ordinal, without their text: ``chunk_id, ordinal, token_count,
        has_vector, text_sha256`` (32 bytes) and ``cached`` (float32 array from the embedding
        cache for this model and dimensions, or None; always None without ``use_cache`` or
        when the chunk has a vector). One page: the chunks after ``after_ordinal`` (None: from
        the first), at most ``limit`` (None: all)."""
        rows = _all(
            conn,
            "embedding_plan",
            {
                "document_id": document_id,
                "model": model,
                "dimensions": dimensions,
                "use_cache": use_cache,
                "after_ordinal": after_ordinal,
                "limit": limit,
            },
        )
        for r in rows:
            r["text_sha256"] = bytes(r["text_sha256"])
            if r["cached"] is not None:
                r["cached"] = _as_array(r["cached"])
        return rows

    def chunk_texts(self, conn: Conn, document_id: UUID, chunk_ids: Sequence[UUID]) -> list[str]:
        """What to embed for ``chunk_ids`` (buffered chunks of ``document_id``), in the order
        asked: each chunk's text after its context (``domain.embedding_input``).

        Raises:
            KeyError: a chunk id is not in the document's buffer.
        """
        rows = _all(conn, "chunk_texts", {"document_id": document_id, "chunk_ids": list(chunk_ids)})
        by_id = {r["chunk_id"]: embedding_input(r["text"], {EMBEDDED_CONTEXT: r["context"]}) for r in rows}
        return [by_id[c] for c in chunk_ids]

    def buffer_counts(self, conn: Conn, document_id: UUID) -> dict[str, int]:
        row = _one(conn, "buffer_counts", {"document_id": document_id})
        assert row is not None
        return {k: int(v) for k, v in row.items()}

    def insert_vectors(
        self, conn: Conn, document_id: UUID, chunk_ids: Sequence[UUID], vectors: np.ndarray, model: str
    ) -> None:
        """Insert one vector per chunk id into the vector buffer (binary COPY).

        Only for chunks without a vector yet (``embedding_plan``'s ``has_vector`` is false):
        a chunk that has one is a unique violation, which fails the whole statement. COPY
        sends each vector as pgvector's binary form; it took a third of the CPU time of an
        ``executemany`` upsert, time the embedding lanes of the same process wait for.

        Raises:
            psycopg.errors.UniqueViolation: a chunk already has a vector.
        """
        with conn.cursor().copy(
            "COPY upload_pipeline.document_vector_buffer (chunk_id, document_id, embedding, embed_model)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "uuid", "bytea", "text"])
            for cid, vector in zip(chunk_ids, _vector_binaries(vectors), strict=True):
                copy.write_row((cid, document_id, vector, model))

    def finalize_document(self, conn: Conn, document_id: UUID, *, hnsw_min_chunks: int = 20_000) -> int:
        """Move buffered chunks and vectors into ``document_chunks``; clear the buffers.

        The chunks join the HNSW index (``hnsw_indexed``) when their user has more than
        ``hnsw_min_chunks`` chunks with them (``SEARCH_EXACT_MAX_CHUNKS``: below it the user is
        searched exactly and the index is not used for them).

        Idempotent: with empty buffers (already finalized) it changes nothing.
        Returns the number of chunks the document has afterwards.

        Raises:
            InternalInvariantError: the buffers do not hold one vector per chunk (the embed
                stage completed without storing them all: a bug); nothing is moved.
        """
        counts = self.buffer_counts(conn, document_id)
        if counts["chunks"] == 0:
            return counts["final"]
        if counts["vectors"] != counts["chunks"]:
            raise InternalInvariantError(
                f"bug: finalize found {counts['chunks']} buffered chunks but {counts['vectors']} "
                "buffered vectors (the embed stage stores one per chunk); nothing was moved"
            )
        conn.execute(queries()["finalize_delete_old"], {"document_id": document_id})
        conn.execute(
            queries()["finalize_insert"],
            {"document_id": document_id, "buffered": counts["chunks"], "hnsw_min_chunks": hnsw_min_chunks},
        )
        conn.execute(queries()["delete_chunk_buffer"], {"document_id": document_id})
        conn.execute(queries()["settle_user_generation"], {"document_id": document_id})
        return counts["chunks"]

    def replace_older_versions(self, conn: Conn, document_id: UUID) -> list[Document]:
        """Delete the older versions of the document's source (chunks, jobs, events cascade):
        the switch, in the transaction that stored the document's chunks. Returns them."""
        return [Document.from_row(r) for r in _all(conn, "finalize_replace", {"document_id": document_id})]

    # --- search ----------------------------------------------------------------
    def search_vector(
        self,
        conn: Conn,
        *,
        user_id: str,
        embedding: np.ndarray,
        limit: int,
        ef_search: int = 100,
        exact_max_chunks: int = 20_000,
        generation: Generation | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The user's ``limit`` nearest chunks of ``generation`` (None: the one serving the
        user; no rows for a user without one) by cosine, nearest first (``score`` = similarity).

        The HNSW index ranks every user's chunks together and the user filter applies to its
        ``ef_search`` candidates afterwards (pgvector < 0.8 has no iterative scan), so a user
        owning a small share of the table gets few or wrong neighbours. A user with at most
        ``exact_max_chunks`` chunks is searched exactly through the ``user_id`` index; a
        larger one through the generation's HNSW index for the chunks in it and exactly for
        those left out of it (see :meth:`finalize_document`), and wholly exactly when HNSW
        brings back fewer rows than asked for.

        ``filter``: the parameters of ``matching_documents``
        (:meth:`SearchFilter.sql_params <docingest.services.filters.SearchFilter.sql_params>`),
        or None for all the user's chunks. With one, the same rule applies to the matching
        documents' chunks: at most ``exact_max_chunks`` of them are ranked exactly (read by
        document); more go through HNSW with the filter on its ``ef_search`` candidates, again
        with :data:`FILTERED_EF_SEARCH` candidates when the filter keeps fewer than asked, and
        exactly when that still brings back too few.
        """
        generation = generation or self.serving_generation(conn, user_id)
        if generation is None:
            return []
        params = {
            "user_id": user_id,
            "embedding": embedding,
            "limit": limit,
            "generation_id": generation.generation_id,
        }
        if filter is not None:
            return self._search_vector_filtered(
                conn, generation, {**params, **filter}, ef_search, exact_max_chunks
            )
        counted = _one(
            conn,
            "user_chunk_count",
            {"user_id": user_id, "cap": exact_max_chunks, "generation_id": generation.generation_id},
        )
        mine = int(counted["n"]) if counted is not None else 0
        if mine <= exact_max_chunks:
            return _all(conn, "search_vector_exact", params)
        conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
        rows: list[dict[str, Any]] = conn.execute(
            generation_sql("search_vector", generation), params
        ).fetchall()
        if len(rows) < limit:  # HNSW's candidates held too few of this user's chunks
            return _all(conn, "search_vector_exact", params)
        rows += _all(conn, "search_vector_unindexed", params)
        rows.sort(key=lambda r: (-r["score"], str(r["chunk_id"])))
        return rows[:limit]

    def _search_vector_filtered(
        self,
        conn: Conn,
        generation: Generation,
        params: dict[str, Any],
        ef_search: int,
        exact_max_chunks: int,
    ) -> list[dict[str, Any]]:
        counted = _filtered_one(conn, "filtered_chunk_count", {**params, "cap": exact_max_chunks})
        matching = int(counted["n"]) if counted is not None else 0
        if matching <= exact_max_chunks:
            return _filtered_all(conn, "search_vector_exact_filtered", params)
        hnsw = filtered_generation_sql("search_vector_filtered", generation)
        rows: list[dict[str, Any]] = []
        # HNSW's ef_search nearest candidates, the filter applied to them: a matching chunk
        # nearer than those kept would have been a candidate. A filter that keeps fewer than
        # asked of them gets pgvector's largest candidate list, then the exact ranking.
        for ef in dict.fromkeys((int(ef_search), max(int(ef_search), FILTERED_EF_SEARCH))):
            conn.execute(f"SET LOCAL hnsw.ef_search = {ef}")
            rows = conn.execute(hnsw, params).fetchall()
            if len(rows) >= params["limit"]:
                break
        else:  # the filter left too few of HNSW's candidates
            return _filtered_all(conn, "search_vector_exact_filtered", params)
        rows += _filtered_all(conn, "search_vector_unindexed_filtered", params)
        rows.sort(key=lambda r: (-r["score"], str(r["chunk_id"])))
        return rows[: params["limit"]]

    def search_fulltext(
        self,
        conn: Conn,
        *,
        user_id: str,
        query: str,
        embedding: np.ndarray,
        limit: int,
        generation: Generation | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The user's chunks of ``generation`` (None: the one serving the user) holding any
        word of ``query`` (its English lexemes, OR-ed), best full-text rank first
        (``ts_rank_cd``; a chunk's context weighs most); each row's ``score`` is its cosine
        similarity to ``embedding``. ``filter``: as :meth:`search_vector`'s (the matching
        documents' chunks only)."""
        generation = generation or self.serving_generation(conn, user_id)
        if generation is None:
            return []
        params = {
            "user_id": user_id,
            "query": query,
            "embedding": embedding,
            "limit": limit,
            "generation_id": generation.generation_id,
        }
        if filter is not None:
            return _filtered_all(conn, "search_fulltext_filtered", {**params, **filter})
        return _all(conn, "search_fulltext", params)

    # --- embedding generations (migration 009) ----------------------------------------
    def ensure_generation(self, conn: Conn, *, provider: str, model: str, dimensions: int) -> Generation:
        """The generation of ``(model, dimensions)``, recorded if new, with its HNSW index
        (``document_chunks_hnsw_g{id}``) built if missing or left invalid by an interrupted
        build. ``conn`` must be in autocommit mode: the index is built ``CONCURRENTLY`` (the
        table stays writable while it scans it).

        Raises:
            psycopg.Error: the database refused (e.g. more than 2,000 dimensions: HNSW's limit).
        """
        row = _one(
            conn, "ensure_generation", {"provider": provider, "model": model, "dimensions": dimensions}
        )
        assert row is not None  # INSERT ... ON CONFLICT DO UPDATE RETURNING: always a row
        generation = Generation.from_row(row)
        name = f"document_chunks_hnsw_g{generation.generation_id}"
        state = _one(conn, "generation_index_state", {"name": name})
        if state is not None and state["valid"]:
            return generation
        # One builder at a time (workers starting together): a session advisory lock, taken by
        # polling so that no waiting statement holds a snapshot the build would wait for.
        key = _GENERATION_INDEX_LOCK + generation.generation_id
        while not (_one(conn, "try_advisory_lock", {"key": key}) or {}).get("locked"):
            time.sleep(0.2)
        try:
            state = _one(conn, "generation_index_state", {"name": name})
            if state is not None and state["valid"]:
                return generation  # another process built it meanwhile
            if state is not None:  # left invalid by a build that died: no one builds it now
                conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS upload_pipeline.{name}")
            conn.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON upload_pipeline.document_chunks"
                f" USING hnsw ((embedding::vector({generation.dimensions})) vector_cosine_ops)"
                f" WITH (m = 32, ef_construction = 200)"
                f" WHERE hnsw_indexed AND generation_id = {generation.generation_id}"
            )
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        return generation

    def get_generation(self, conn: Conn, generation_id: int) -> Generation | None:
        row = _one(conn, "get_generation", {"generation_id": generation_id})
        return Generation.from_row(row) if row else None

    def serving_generation(self, conn: Conn, user_id: str) -> Generation | None:
        """The generation serving the user's searches; None for a user with no stored chunk yet."""
        row = _one(conn, "serving_generation", {"user_id": user_id})
        return Generation.from_row(row) if row else None

    def queue_reembed_jobs(
        self, conn: Conn, *, user_id: str | None, generation_id: int
    ) -> list[dict[str, Any]]:
        """Queue a re-embedding job into ``generation_id`` for each complete document (of
        ``user_id``; None: everyone's) with chunks of another generation and no unfinished job;
        ``[{job_id, document_id}]`` of the jobs queued."""
        return _all(conn, "queue_reembed_jobs", {"user_id": user_id, "generation_id": generation_id})

    def reembed_plan(
        self, conn: Conn, document_id: UUID, generation: Generation, *, use_cache: bool
    ) -> list[dict[str, Any]]:
        """The document's stored chunks not yet embedded by ``generation``, by ordinal:
        ``chunk_id, ordinal, text, context, text_sha256`` and ``cached`` (the cache's vector, or None)."""
        rows = _all(
            conn,
            "reembed_plan",
            {
                "document_id": document_id,
                "generation_id": generation.generation_id,
                "model": generation.model,
                "dimensions": generation.dimensions,
                "use_cache": use_cache,
            },
        )
        for row in rows:
            if row["cached"] is not None:
                row["cached"] = _as_array(row["cached"])
        return rows

    def document_chunk_count(self, conn: Conn, document_id: UUID) -> int:
        row = _one(conn, "document_chunk_count", {"document_id": document_id})
        return int(row["n"]) if row else 0

    def insert_next_vectors(
        self, conn: Conn, *, user_id: str, generation_id: int, chunk_ids: Sequence[UUID], vectors: np.ndarray
    ) -> None:
        """Store one vector of ``generation_id`` per stored chunk (``chunk_embeddings_next``,
        binary COPY, as :meth:`insert_vectors`).

        Raises:
            psycopg.errors.UniqueViolation: a chunk already has a vector of the generation.
        """
        with conn.cursor().copy(
            "COPY upload_pipeline.chunk_embeddings_next (chunk_id, generation_id, user_id, embedding)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "int4", "text", "bytea"])
            for cid, vector in zip(chunk_ids, _vector_binaries(vectors), strict=True):
                copy.write_row((cid, generation_id, user_id, vector))

    def embedding_cache_put_next(
        self, conn: Conn, *, generation: Generation, hashes: Sequence[bytes], chunk_ids: Sequence[UUID]
    ) -> None:
        """Remember by text hash the vectors of ``generation`` just stored for ``chunk_ids``."""
        conn.execute(
            queries()["embedding_cache_put_vectors"],
            {
                "model": generation.model,
                "dimensions": generation.dimensions,
                "generation_id": generation.generation_id,
                "hashes": list(hashes),
                "chunk_ids": list(chunk_ids),
            },
        )

    def switch_generation_if_covered(self, conn: Conn, *, user_id: str, generation_id: int) -> int | None:
        """Switch the user to ``generation_id`` when every stored chunk of theirs has a vector
        of it (one transaction: ``switch_generation``); the chunks switched, or None while some
        are not covered yet. Switches of one user are serialised (an advisory lock)."""
        conn.execute(queries()["lock_user_generation"], {"user_id": user_id})
        params = {"user_id": user_id, "generation_id": generation_id}
        remaining = _one(conn, "generation_remaining", params)
        if remaining is not None and int(remaining["n"]) > 0:
            return None
        row = _one(conn, "switch_generation", params)
        return int(row["n"]) if row else 0

    def unfinished_reembed_jobs(
        self, conn: Conn, *, user_id: str | None, generation_id: int
    ) -> list[dict[str, Any]]:
        """``[{job_id, document_id}]`` of re-embedding jobs into ``generation_id`` not finished."""
        return _all(conn, "unfinished_reembed_jobs", {"user_id": user_id, "generation_id": generation_id})

    def generation_remaining_all(self, conn: Conn, *, user_id: str | None, generation_id: int) -> int:
        """Stored chunks (of ``user_id``; None: everyone's) ``generation_id`` does not cover yet."""
        row = _one(conn, "generation_remaining_all", {"user_id": user_id, "generation_id": generation_id})
        return int(row["n"]) if row else 0

    def users_not_served_by(self, conn: Conn, generation_id: int, *, user_id: str | None = None) -> list[str]:
        """Users (``user_id`` only, when given) whose searches another generation serves."""
        rows = _all(conn, "users_not_served_by", {"generation_id": generation_id, "user_id": user_id})
        return [r["user_id"] for r in rows]

    def generation_coverage(self, conn: Conn, user_id: str | None) -> list[dict[str, Any]]:
        """Per generation: ``generation_id, provider, model, dimensions, chunks`` (stored with
        its vectors), ``waiting`` (its vectors of a re-embedding not switched yet) and
        ``serving_users``, of ``user_id`` (None: everyone)."""
        return _all(conn, "generation_coverage", {"user_id": user_id})

    def chunk_windows(
        self, conn: Conn, *, user_id: str, windows: Sequence[tuple[UUID, int, int]]
    ) -> list[dict[str, Any]]:
        """The chunks of ``user_id`` in each window ``(document_id, first, last)`` (ordinals,
        inclusive), in one statement, ordered by document and ordinal.

        Rows: ``chunk_id``, ``document_id``, ``ordinal``, ``text``, ``meta``. Windows are not
        deduplicated here: a chunk in two overlapping windows comes back twice. Ordinals past a
        document's last chunk simply match nothing.
        """
        if not windows:
            return []
        return _all(
            conn,
            "chunk_windows",
            {
                "user_id": user_id,
                "document_ids": [w[0] for w in windows],
                "firsts": [w[1] for w in windows],
                "lasts": [w[2] for w in windows],
            },
        )

    # --- user-scoped access under row security (the API) -----------------------
    def scope_to_user(self, conn: Conn, user_id: str) -> None:
        """For the rest of the transaction: role ``docingest_api``, rows of ``user_id`` only."""
        conn.execute(queries()["scope_to_user"], {"user_id": user_id})

    def create_upload(
        self, conn: Conn, *, user_id: str, **fields: Any
    ) -> tuple[int, Document | None, Job | None]:
        """Scope to ``user_id``, insert the document (:meth:`insert_document`: ``max_active`` is
        required) and its job waiting ``wait_seconds`` for the upload (:meth:`insert_job`, via
        ``upload``): one pipeline.

        Returns ``(active_jobs, document, job)``; document and job are None for a duplicate
        of the user's bytes or when the user is at ``max_active``.
        """
        params = {
            "error_code": None,
            "error_message": None,
            "source": None,
            "meta": "{}",
            "origin": "api",
            "source_mtime_ns": None,
            **fields,
            "user_id": user_id,
            "state": "waiting",
            "via": "upload",
        }
        with conn.pipeline():
            conn.execute(queries()["scope_to_user"], {"user_id": user_id})
            doc_cur = conn.execute(queries()["insert_document"], params)
            job_cur = conn.execute(queries()["insert_job"], params)
        doc_row, job_row = doc_cur.fetchone(), job_cur.fetchone()
        assert doc_row is not None
        if doc_row["document_id"] is None:
            return doc_row["active_jobs"], None, None
        return doc_row["active_jobs"], Document.from_row(doc_row), Job.from_row(job_row) if job_row else None

    def get_document_view(self, conn: Conn, *, user_id: str, document_id: UUID) -> dict[str, Any] | None:
        """The user's document with its latest job's columns (and ``stalled``: that job is
        working under an expired lease; ``chunks``), or None."""
        rows = self.document_views(conn, user_id=user_id, document_ids=[document_id])
        return rows[0] if rows else None

    def document_views(
        self, conn: Conn, *, user_id: str, document_ids: Sequence[UUID]
    ) -> list[dict[str, Any]]:
        """The user's documents of ``document_ids`` as :meth:`get_document_view` gives one,
        newest first (missing ids are not the user's, or gone)."""
        params = {
            "user_id": user_id,
            "document_ids": list(document_ids),
            "states": None,
            "pattern": None,
            "limit": None,
            "offset": 0,
        }
        return _all(conn, "document_views", params)

    def list_document_views(
        self,
        conn: Conn,
        *,
        user_id: str,
        limit: int,
        offset: int,
        states: Sequence[str] | None = None,
        name_contains: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the user's documents as :meth:`get_document_view` gives one, newest first,
        and how many match in all: ``(rows, total)``.

        Args:
            states: only documents whose latest job is in one of these states (None: any).
            name_contains: only documents whose filename or source contains it, ignoring case
                (LIKE's ``%``, ``_`` and ``\\`` in it match themselves; None or empty: any).
        """
        params = {
            "user_id": user_id,
            "document_ids": None,
            "states": list(states) if states else None,
            "pattern": f"%{like_escape(name_contains)}%" if name_contains else None,
            "limit": limit,
            "offset": offset,
        }
        rows = _all(conn, "document_views", params)
        count = _one(conn, "count_document_views", params)
        return rows, int(count["n"]) if count else 0

    def delete_user_document(self, conn: Conn, *, user_id: str, document_id: UUID) -> Document | None:
        """Delete the document and (cascade) its jobs, events, buffers and chunks.

        Its jobs are locked first, as a worker locks them, so the two never deadlock.
        """
        params = {"user_id": user_id, "document_id": document_id}
        _all(conn, "lock_document_jobs", params)
        row = _one(conn, "delete_user_document", params)
        return Document.from_row(row) if row else None

    def queue_uploaded_job(self, conn: Conn, job_id: UUID, *, via: str) -> Job | None:
        """``waiting`` -> ``queued``; None when the job was not waiting."""
        row = _one(conn, "queue_uploaded_job", {"job_id": job_id, "via": via})
        return Job.from_row(row) if row else None

    def waiting_job_by_key(self, conn: Conn, raw_path: str) -> UUID | None:
        row = _one(conn, "waiting_job_by_key", {"raw_path": raw_path})
        return row["job_id"] if row else None

    def waiting_jobs(self, conn: Conn, *, min_age_seconds: float, limit: int) -> list[dict[str, Any]]:
        """``job_id, document_id, raw_path, bytes_len, expired`` of jobs waiting for an upload."""
        return _all(conn, "waiting_jobs", {"min_age_seconds": min_age_seconds, "limit": limit})

    def expire_upload(self, conn: Conn, job_id: UUID, *, error_message: str) -> Job | None:
        row = _one(conn, "expire_upload", {"job_id": job_id, "error_message": error_message})
        return Job.from_row(row) if row else None

    def lock_latest_job(self, conn: Conn, document_id: UUID) -> Job | None:
        """The document's latest job, row-locked until the transaction ends."""
        row = _one(conn, "lock_latest_job", {"document_id": document_id})
        return Job.from_row(row) if row else None

    def extend_upload_deadline(self, conn: Conn, job_id: UUID, *, deadline_seconds: float) -> Job | None:
        """A waiting job's deadline at least ``deadline_seconds`` from now; None if not waiting."""
        row = _one(conn, "extend_upload_deadline", {"job_id": job_id, "deadline_seconds": deadline_seconds})
        return Job.from_row(row) if row else None

    def inventory(self, conn: Conn, user_id: str | None) -> dict[str, Any]:
        """``{documents, searchable, chunks, users, jobs_by_state: {state: n}}`` of ``user_id``
        (None: everyone; ``searchable`` counts the documents with chunks; ``users`` always
        counts every user with a document)."""
        row = _one(conn, "inventory", {"user_id": user_id}) or {}
        jobs = {r["state"]: int(r["n"]) for r in _all(conn, "jobs_by_state", {"user_id": user_id})}
        return {
            "documents": int(row.get("documents") or 0),
            "searchable": int(row.get("searchable") or 0),
            "chunks": int(row.get("chunks") or 0),
            "users": int(row.get("users") or 0),
            "jobs_by_state": jobs,
        }

    # --- rate limits and the embedding cache -------------------------------------------
    def rate_limit_configure(
        self, conn: Conn, bucket: str, *, capacity: float, refill_per_second: float
    ) -> None:
        """Create the bucket full, or adopt a new capacity and rate."""
        conn.execute(
            queries()["rate_limit_configure"],
            {"bucket": bucket, "capacity": capacity, "refill_per_second": refill_per_second},
        )

    def rate_limit_acquire(
        self, conn: Conn, buckets: Sequence[str], costs: Sequence[float]
    ) -> tuple[bool, float]:
        """Take ``costs`` from ``buckets`` all at once or not at all: ``(granted, wait_seconds)``."""
        row = _one(conn, "rate_limit_acquire", {"buckets": list(buckets), "costs": list(costs)})
        assert row is not None
        return bool(row["granted"]), float(row["wait_seconds"])

    def rate_limit_wait(self, conn: Conn, buckets: Sequence[str]) -> float:
        """Seconds until the shared backoff of ``buckets`` ends (0: none); reads only."""
        row = _one(conn, "rate_limit_wait", {"buckets": list(buckets)})
        assert row is not None
        return float(row["wait_seconds"])

    def rate_limit_block(self, conn: Conn, buckets: Sequence[str], seconds: float) -> None:
        """Every worker using ``buckets`` waits ``seconds`` from now (a shared backoff)."""
        conn.execute(queries()["rate_limit_block"], {"buckets": list(buckets), "seconds": seconds})

    def embedding_cache_put(
        self,
        conn: Conn,
        *,
        model: str,
        dimensions: int,
        hashes: Sequence[bytes],
        chunk_ids: Sequence[UUID],
    ) -> None:
        """Remember by text hash the vectors just buffered for ``chunk_ids`` (one chunk per hash,
        in the same order); existing entries are kept. The vectors are copied inside the
        database from ``document_vector_buffer``, not sent a second time."""
        conn.execute(
            queries()["embedding_cache_put"],
            {"model": model, "dimensions": dimensions, "hashes": list(hashes), "chunk_ids": list(chunk_ids)},
        )

    def wake_parse_job(self, conn: Conn, job_id: UUID, remote_job_id: str) -> bool:
        """Make a job waiting on remote parse ``remote_job_id`` claimable now; False if none."""
        return _one(conn, "wake_parse_job", {"job_id": job_id, "remote_job_id": remote_job_id}) is not None

    # --- observability ---------------------------------------------------------
    def job_counts(self, conn: Conn) -> list[tuple[str, str, int]]:
        """``[(stage, state, jobs)]`` over all jobs (queue depth)."""
        return [(r["stage"], r["state"], int(r["n"])) for r in _all(conn, "job_counts", {})]

    def events_after(
        self, conn: Conn, document_id: UUID, after_event_id: int = 0, *, limit: int = 500
    ) -> list[dict[str, Any]]:
        """A document's events with ``event_id > after_event_id``, oldest first, at most ``limit``."""
        return _all(
            conn,
            "events_after",
            {"document_id": document_id, "after_event_id": after_event_id, "limit": limit},
        )

    # --- the dashboard's user-wide stream and pages ----------------------------------------
    def latest_event_id(self, conn: Conn) -> int:
        """The newest event's id over every user (0: none). Run as the owner, not scoped."""
        row = _one(conn, "latest_event_id", {})
        return int(row["event_id"]) if row else 0

    def user_events_after(
        self, conn: Conn, *, user_id: str, after_event_id: int, limit: int = 500
    ) -> list[dict[str, Any]]:
        """The user's events with ``event_id > after_event_id``, oldest first, at most ``limit``
        (the rows of :meth:`events_after`)."""
        return _all(
            conn,
            "user_events_after",
            {"user_id": user_id, "after_event_id": after_event_id, "limit": limit},
        )

    def working_document_ids(self, conn: Conn, *, user_id: str) -> list[UUID]:
        """The user's documents whose job is working now."""
        return [r["document_id"] for r in _all(conn, "working_document_ids", {"user_id": user_id})]

    def document_chunk_page(
        self, conn: Conn, *, user_id: str, document_id: UUID, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        """``chunk_id, ordinal, text, token_count, page, page_end, heading_path`` of a page of
        the document's stored chunks, by ordinal (the last three from the chunk's ``meta``)."""
        return _all(
            conn,
            "document_chunk_page",
            {"user_id": user_id, "document_id": document_id, "limit": limit, "offset": offset},
        )

    def summary_jobs(self, conn: Conn, user_id: str) -> list[dict[str, Any]]:
        """``stage, state, n``: the user's jobs by stage and state."""
        return _all(conn, "summary_jobs", {"user_id": user_id})

    def summary_failures(self, conn: Conn, user_id: str) -> list[dict[str, Any]]:
        """``error_code, n, last_at, message``: the user's failed jobs by code, most first, with
        the last one's time and message."""
        return _all(conn, "summary_failures", {"user_id": user_id})

    def summary_workers(self, conn: Conn, *, lease_seconds: float, limit: int = 100) -> list[dict[str, Any]]:
        """``worker_id, jobs_working, jobs_stalled, last_seen`` of every worker holding a job or
        that completed a stage in the last hour, the last seen first (every user's jobs: run
        as the owner). ``last_seen`` of a holder is its last lease renewal (``lease_seconds``
        before its lease ends) or write."""
        return _all(conn, "summary_workers", {"lease_seconds": lease_seconds, "limit": limit})

    def rate_limit_buckets(self, conn: Conn) -> list[dict[str, Any]]:
        """``bucket, capacity, refill_per_second, tokens, blocked_until`` of every shared
        rate-limit bucket, ``tokens`` as refilled until now (run as the owner)."""
        return _all(conn, "rate_limit_buckets", {})

    def existing_documents(self, conn: Conn, *, user_id: str, document_ids: Sequence[UUID]) -> set[UUID]:
        """Those of ``document_ids`` that are documents of ``user_id``."""
        rows = _all(conn, "existing_documents", {"user_id": user_id, "document_ids": list(document_ids)})
        return {r["document_id"] for r in rows}

    def user_document_tally(self, conn: Conn, *, user_id: str) -> tuple[int, int]:
        """``(documents, largest version_seq)`` of ``user_id``'s documents (``(0, 0)``: none)."""
        row = _one(conn, "user_document_tally", {"user_id": user_id})
        return (int(row["n"]), int(row["max_version_seq"])) if row else (0, 0)


def _vector_binaries(vectors: np.ndarray) -> list[bytes]:
    """Each row of ``vectors`` in pgvector's binary form, for a binary COPY.

    The form is pgvector's vector_send/vector_recv (as pgvector-python's to_binary writes it):
    int16 dimensions, int16 unused, then big-endian float32s. A binary COPY carries each
    field's bytes as they are, so the rows are encoded in one numpy pass rather than one
    Vector object per row.
    """
    matrix = np.ascontiguousarray(vectors, dtype=">f4")
    header = struct.pack(">HH", matrix.shape[1], 0)
    return [header + row.tobytes() for row in matrix]


def _as_array(value: Any) -> np.ndarray:
    """float32 array of a pgvector value (``Vector`` in pgvector >= 0.4, else an ndarray)."""
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value, dtype=np.float32)
