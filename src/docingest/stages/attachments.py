"""The files attached to an e-mail message (``eml``, ``msg``) become documents of their own,
registered by the message's parse stage (:class:`~docingest.stages.parse.ParseDocument`).

Each attachment is a document of the message's user, of origin ``attachment`` (migration
012), with ``meta.attached_to`` = the message's document id (the message's metadata is
inherited besides, when it fits the limits) and the source
``<message source>/attachments/<n>/<file name>`` (``n`` its 1-based position in the
message), stored and queued at ``uploaded`` as an ingest is: the worker verifies, parses,
chunks and embeds it like any file.

Idempotent: the document and job ids are UUIDv5 of the message's id, the position and the
bytes' SHA-256, so a parse retried after its bytes were stored writes the same object key,
and the registration finds the version it made (same source, same bytes) instead of making a
second one. A later version of the message with the same attachment takes over the existing
document (``attached_to`` moves to it); a changed attachment is a new version of its source.
Deleting the message (or its version being replaced or superseded) deletes its attachments
(``Repository.delete_attachments``).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any
from uuid import UUID

from docingest.domain import Document, State
from docingest.errors import DocingestError, DocumentEncrypted, InvalidMetadata
from docingest.providers.parsing import Attachment, detect
from docingest.providers.storage.base import Storage, document_keys, raw_key
from docingest.stages.metadata import MAX_SOURCE_CHARS, check_meta, display_filename

#: The namespace of attachments' document and job ids (UUIDv5).
ATTACHMENT_NAMESPACE = UUID("0d6f4a52-3c1e-4b9a-8f57-6a2e1c9d7b40")
#: The most attachments of one message registered; the others are skipped with a warning.
MAX_ATTACHMENTS = 100
#: ``documents.source``'s longest value, in characters.


@dataclass(frozen=True)
class PreparedAttachment:
    """An attachment whose bytes are sniffed and stored, ready to register.

    Attributes:
        number: its 1-based position among the message's attachments.
        document_id: the document id it gets (UUIDv5: see the module docstring).
        job_id: its job's id (UUIDv5 too).
        filename: the display name (the message's, or ``attachment-<n>.<ext>``).
        source: ``<message source>/attachments/<n>/<filename>``.
        mime: the sniffed MIME type (the declared one when sniffing refused it as encrypted).
        bytes_len: its size in bytes.
        file_sha256: SHA-256 of its bytes, hex.
        raw_path: the storage key its bytes were written to.
    """

    number: int
    document_id: UUID
    job_id: UUID
    filename: str
    source: str
    mime: str
    bytes_len: int
    file_sha256: str
    raw_path: str


def attachment_name(attachment: Attachment, number: int, extension: str) -> str:
    """The attachment's file name for display (:func:`~docingest.stages.metadata.display_filename`);
    ``attachment-<number>.<extension>`` when it has none."""
    try:
        return display_filename(attachment.filename)
    except ValueError:
        return f"attachment-{number}.{extension}"


def attachment_source(message: Document, number: int, filename: str) -> str:
    """``<message source>/attachments/<number>/<filename>``, cut to the source limit (1,024
    characters: the file name is shortened first, then the message's id stands for its
    source)."""
    prefix = f"{message.source or message.document_id}/attachments/{number}/"
    if len(prefix) >= MAX_SOURCE_CHARS - 16:
        prefix = f"{message.document_id}/attachments/{number}/"
    return prefix + filename[: MAX_SOURCE_CHARS - len(prefix)]


def prepare_attachments(
    storage: Storage,
    message: Document,
    attachments: Sequence[Attachment],
    warnings: list[str],
) -> list[PreparedAttachment]:
    """Sniff each attachment and store its bytes under its deterministic key.

    Args:
        storage: where the originals are kept.
        message: the message's document.
        attachments: what the parser returned, in order.
        warnings: lines added for attachments skipped (empty, of an unsupported type, over
            :data:`MAX_ATTACHMENTS`).

    Returns:
        One :class:`PreparedAttachment` per attachment kept, in order.

    Raises:
        StorageUnavailable: the storage refused a write (the parse is retried).
    """
    prepared: list[PreparedAttachment] = []
    if not attachments:
        return prepared
    if len(attachments) > MAX_ATTACHMENTS:
        warnings.append(
            f"the message has {len(attachments)} attachments: only the first {MAX_ATTACHMENTS} are ingested"
        )
    with tempfile.TemporaryDirectory(prefix="docingest-attachment-") as tmp:
        for number, attachment in enumerate(attachments[:MAX_ATTACHMENTS], start=1):
            shown = attachment.filename or f"attachment {number}"
            if not attachment.data:
                warnings.append(f"attachment {shown} is empty: not ingested")
                continue
            suffix = PurePath(attachment.filename).suffix[:16]
            path = Path(tmp) / f"{number}{suffix}"
            path.write_bytes(attachment.data)
            try:
                detected = detect(path, declared_mime=attachment.mime, filename=attachment.filename or None)
                mime, extension = detected.mime, detected.extension
            except DocumentEncrypted:  # ingested: its job fails document_encrypted, which says why
                mime, extension = attachment.mime or "application/octet-stream", "bin"
            except DocingestError as exc:
                warnings.append(f"attachment {shown} ({attachment.mime}) is not ingested: {exc.message}")
                continue
            sha = hashlib.sha256(attachment.data).hexdigest()
            filename = attachment_name(attachment, number, extension)
            source = attachment_source(message, number, filename)
            document_id = uuid.uuid5(ATTACHMENT_NAMESPACE, f"{message.document_id}/{number}/{sha}")
            key = raw_key(message.user_id, document_id, extension)
            storage.copy_from(key, path)  # the same key and bytes when a retried parse comes again
            prepared.append(
                PreparedAttachment(
                    number=number,
                    document_id=document_id,
                    job_id=uuid.uuid5(ATTACHMENT_NAMESPACE, f"{document_id}/job"),
                    filename=filename,
                    source=source,
                    mime=mime,
                    bytes_len=len(attachment.data),
                    file_sha256=sha,
                    raw_path=key,
                )
            )
    return prepared


def attachment_meta(message: Document) -> dict[str, Any]:
    """An attachment's metadata: the message's, plus ``attached_to`` (the message's id); only
    ``attached_to`` when the two do not fit the metadata limits together."""
    meta = {**message.meta, "attached_to": str(message.document_id)}
    try:
        return check_meta(meta)
    except InvalidMetadata:
        return {"attached_to": str(message.document_id)}


def register_attachments(
    conn: Any, repo: Any, message: Document, prepared: Sequence[PreparedAttachment]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Register the prepared attachments in the message's stage transaction: a document and a
    ``queued`` job each, unless the user has the same bytes under the same source (then that
    document is attached to this message).

    Args:
        conn: the fenced transaction's connection.
        repo: the ``Repository``.
        message: the message's document.
        prepared: from :func:`prepare_attachments`.

    Returns:
        ``(rows, keys)``: a row per attachment for the ``attachments_registered`` event
        (``number, document_id, filename, source, mime, bytes_len, created``) and the object
        keys to delete once committed (bytes stored for a version found meanwhile; versions
        superseded, with their own attachments), already queued in the object outbox.
    """
    rows: list[dict[str, Any]] = []
    keys: list[str] = []
    meta = json.dumps(attachment_meta(message))
    for item in prepared:
        repo.lock_source(conn, message.user_id, item.source)
        found = repo.find_version(conn, message.user_id, item.source, item.file_sha256)
        created = False
        if found is not None:
            document_id = found.document_id
            if found.raw_path != item.raw_path:
                keys.append(item.raw_path)  # stored for a version the user already has: unused
            if found.meta.get("attached_to") != str(message.document_id):
                repo.attach_document(conn, found.document_id, attached_to=message.document_id)
        else:
            _, document = repo.insert_document(
                conn,
                document_id=item.document_id,
                user_id=message.user_id,
                filename=item.filename,
                mime=item.mime,
                bytes_len=item.bytes_len,
                file_sha256=item.file_sha256,
                raw_path=item.raw_path,
                source=item.source,
                meta=meta,
                origin="attachment",
                source_mtime_ns=None,
            )
            assert document is not None  # the source is locked and has no such version
            repo.insert_job(
                conn,
                job_id=item.job_id,
                document_id=item.document_id,
                state=State.QUEUED.value,
                via="attachment",
            )
            document_id, created = item.document_id, True
            stale = repo.delete_stale_versions(
                conn, user_id=message.user_id, source=item.source, keep=item.document_id
            )
            stale += repo.delete_attachments(
                conn, user_id=message.user_id, document_ids=[d.document_id for d in stale]
            )
            keys += [k for d in stale for k in document_keys(d.user_id, d.document_id, d.raw_path)]
        rows.append(
            {
                "number": item.number,
                "document_id": str(document_id),
                "filename": item.filename,
                "source": item.source,
                "mime": item.mime,
                "bytes_len": item.bytes_len,
                "created": created,
            }
        )
    repo.queue_object_deletions(conn, keys)
    return rows, keys
