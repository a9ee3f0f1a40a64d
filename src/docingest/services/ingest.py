"""``docingest ingest``: register local files as documents and run workers until all are terminal."""

from __future__ import annotations

import mimetypes
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from docingest.domain import Document, Job, JobProgress, Stage, State
from docingest.errors import DocingestError, FileTooLarge
from docingest.providers.parsing import detect
from docingest.providers.storage import raw_key
from docingest.providers.storage.base import sha256_of
from docingest.runtime import Runtime
from docingest.services.progress import IngestProgress, IngestSnapshot


def discover(paths: Iterable[Path]) -> list[Path]:
    """Files named, and files under directories named (recursively, hidden ones skipped), sorted.

    Inside a directory, entries that are not regular files (FIFOs, sockets, devices,
    broken links) are skipped; a path named on its own must be a regular file or a
    directory.

    Raises:
        FileNotFoundError: for a path that does not exist, a broken or looping symbolic
            link, or one that is not a regular file (the message says which).
    """
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(
                p for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.add(path)
        else:
            raise FileNotFoundError(_not_a_file(path))
    return sorted(found)


def _not_a_file(path: Path) -> str:
    """Why ``path`` cannot be ingested, for a user."""
    import stat

    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            return f"symbolic link loop: {path}"
        except OSError:
            return f"broken symbolic link: {path} -> {path.readlink()}"
    try:
        mode = path.stat().st_mode
    except OSError:
        return f"no such file or directory: {path}"
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISBLK(mode) or stat.S_ISCHR(mode) else "not a regular file")
    return f"not a regular file ({kind}): {path}; name a file or a directory"


@dataclass
class Registered:
    """A file's document and job; ``created`` is False for a duplicate of earlier bytes,
    ``requeued`` True when that duplicate had failed and was queued again, ``resumed`` True
    when its job was still unfinished (e.g. an interrupted ``docingest ingest``)."""

    document: Document
    job: Job | None
    created: bool
    requeued: bool = False
    resumed: bool = False


class IngestInterrupted(Exception):
    """``ingest`` was interrupted (Ctrl-C, SIGTERM, SIGHUP); ``unfinished`` documents are not
    terminal yet.

    Running the same command again resumes them: their jobs stay in the queue (a worker's
    held jobs are released when it stops).
    """

    def __init__(self, unfinished: int) -> None:
        super().__init__(f"interrupted: {unfinished} documents not finished")
        self.unfinished = unfinished


def register_file(rt: Runtime, path: Path, *, user_id: str) -> Registered:
    """Store ``path`` and create its document and job (state ``queued`` at ``uploaded``).

    The same bytes for the same user are one document (unique ``(user_id, file_sha256)``;
    docs/architecture.md, section 4): an existing one is returned with no new job. If its job has
    ``failed``, ingesting the file again is a retry (:func:`requeue_failed`): the bytes are
    stored again and the job is queued from its last good stage, so a document refused
    at upload (``size_mismatch``, ``upload_expired`` ...) can still be ingested.
    A file over ``max_file_bytes`` is registered as failed ``file_too_large``
    without being copied.
    """
    with path.open("rb") as f:
        sha, size = sha256_of(f)
    filename = unicodedata.normalize("NFC", path.name)
    # A CLI user declares nothing: the sniffed type wins over what the name suggests (a
    # DOCX named .pdf is parsed as the DOCX it is), with a warning event naming both.
    by_name = mimetypes.guess_type(filename, strict=False)[0]
    warning: dict[str, Any] | None = None
    try:
        detected = detect(path, filename=filename)
        mime, ext = detected.mime, detected.extension
        if by_name and by_name != detected.mime:
            suffix = Path(filename).suffix.lower()
            warning = {"message": f"the name ends {suffix} ({by_name}) but the content is "
                                  f"{detected.mime}; parsed as {detected.kind}",
                       "extension": suffix, "extension_mime": by_name, "detected_mime": detected.mime}
    except DocingestError:
        mime, ext = by_name or "application/octet-stream", "bin"  # the uploaded stage reports why
    too_large = size > rt.settings.max_file_bytes
    with rt.pool().connection() as conn:
        existing = rt.repo.find_document_by_sha(conn, user_id, sha)
        job = rt.repo.latest_job_for_document(conn, existing.document_id) if existing else None
    if existing is not None:
        if job is not None and job.state is State.FAILED and not too_large:
            return requeue_failed(rt, path, existing, job, bytes_len=size, mime=mime)
        return Registered(existing, job, False, resumed=job is not None and not job.state.terminal)
    document_id = uuid.uuid4()
    key = raw_key(user_id, document_id, ext)
    if not too_large:
        rt.storage.copy_from(key, path)
    with rt.pool().connection() as conn, conn.transaction():
        doc = rt.repo.insert_document(
            conn, document_id=document_id, user_id=user_id, filename=filename, mime=mime,
            bytes_len=size, file_sha256=sha, raw_path=key,
        )
        if doc is None:  # another process registered the same bytes meanwhile
            existing = rt.repo.find_document_by_sha(conn, user_id, sha)
            assert existing is not None
            job = rt.repo.latest_job_for_document(conn, existing.document_id)
        elif too_large:
            err = FileTooLarge(f"{size} bytes is over the limit of {rt.settings.max_file_bytes} "
                               "(UPLOAD_PIPELINE_MAX_FILE_BYTES)")
            job = rt.repo.insert_failed_job(conn, job_id=uuid.uuid4(), document_id=document_id,
                                            error_code=err.error_code, error_message=err.message)
        else:
            job = rt.repo.insert_job(conn, job_id=uuid.uuid4(), document_id=document_id,
                                     state=State.QUEUED.value)
            if warning is not None:
                rt.repo.insert_event(conn, job_id=job.job_id, document_id=document_id,
                                     stage=Stage.UPLOADED.value, type="warning", payload=warning)
    if doc is None:
        rt.storage.delete(key)
        return Registered(existing, job, False)
    return Registered(doc, job, True)


def requeue_failed(rt: Runtime, path: Path, document: Document, job: Job, *, bytes_len: int,
                   mime: str) -> Registered:
    """Ingest ``path`` again for its ``document`` whose latest ``job`` failed.

    A job that failed at ``uploaded`` (its bytes never verified: the object was refused
    and deleted, never arrived, or was the wrong size) gets the file stored again and the
    document re-declared with the file's real size and type; then the verification
    runs again. A job that failed later is requeued from its last good stage, the file
    stored again only if the original object is gone. An event ``reingest_requested``
    names the previous error. If another process requeued the job first, nothing changes.
    """
    before_verified = job.stage is Stage.UPLOADED
    store = before_verified or rt.storage.head(document.raw_path) is None
    if store:
        rt.storage.copy_from(document.raw_path, path)
    with rt.pool().connection() as conn, conn.transaction():
        updated = rt.repo.requeue_failed_job(conn, job.job_id)
        if updated is None:  # requeued (or deleted) meanwhile
            return Registered(document, rt.repo.latest_job_for_document(conn, document.document_id), False)
        if before_verified:
            document = rt.repo.redeclare_document(conn, document.document_id, bytes_len=bytes_len,
                                                  mime=mime) or document
        rt.repo.insert_event(conn, job_id=job.job_id, document_id=document.document_id,
                             stage=updated.stage.value, type="reingest_requested",
                             payload={"previous_error_code": job.error_code, "stored_again": store})
    return Registered(document, updated, False, requeued=True)


@dataclass
class IngestSummary:
    """What ``ingest`` reports (``--json`` prints it as one object)."""

    documents: int = 0
    new: int = 0
    duplicates: int = 0
    requeued: int = 0
    resumed: int = 0
    complete: int = 0
    failed: int = 0
    failed_by_code: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    chunks: int = 0
    wall_s: float = 0.0
    docs_per_s: float = 0.0
    chunks_per_s: float = 0.0
    embedding_cache_hits: int = 0
    #: where the documents went: the data directory (its database unless DATABASE_URL is set)
    data_dir: str = ""
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: ``{filename, job_id, message}`` per parse warning (e.g. undecodable bytes replaced).
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Called about every ``poll_seconds`` with where the run stands.
ProgressFn = Callable[[IngestSnapshot], None]


def ingest(
    rt: Runtime,
    paths: list[Path],
    *,
    user_id: str = "local",
    concurrency: int | None = None,
    on_progress: ProgressFn | None = None,
    poll_seconds: float = 0.5,
) -> IngestSummary:
    """Register ``paths`` and run worker slots in this process until every job is terminal.

    ``on_progress`` gets an :class:`~docingest.services.progress.IngestSnapshot` after each poll: work
    done and expected, rate, ETA, and the jobs it waits for because another process holds
    them (a live lease; once that lease expires this run's slots take the job over).

    Raises:
        FileNotFoundError: a path named cannot be ingested.
        IngestInterrupted: on KeyboardInterrupt (Ctrl-C; the CLI raises it for SIGTERM and
            SIGHUP too), with the count of documents not finished; the worker slots have
            stopped and released their jobs.
    """
    started = time.monotonic()
    # Smallest first: jobs are claimed in the order they were created, so a folder's small
    # files are searchable within seconds instead of waiting behind its large ones.
    files = sorted(discover(paths), key=lambda p: (p.stat().st_size, p))
    registered: list[Registered] = []
    try:
        for p in files:
            registered.append(register_file(rt, p, user_id=user_id))
    except KeyboardInterrupt as exc:
        finished = sum(r.job is not None and r.job.state.terminal for r in registered)
        raise IngestInterrupted(len(files) - finished) from exc
    ids = list(dict.fromkeys(r.document.document_id for r in registered))
    latest: dict[Any, dict[str, Any]] = {}
    worker = rt.worker(concurrency=concurrency)
    tracker = IngestProgress(worker_id=worker.worker_id, started=started)
    interrupted: KeyboardInterrupt | None = None
    try:
        worker.start()
        while True:
            with rt.pool().connection() as conn:
                jobs = rt.repo.list_jobs(conn, document_ids=ids)
            latest = {j["document_id"]: j for j in jobs}  # ordered by created_at: last wins
            if on_progress:
                on_progress(tracker.update(list(latest.values()), time.monotonic()))
            if all(State.is_terminal(j["state"]) for j in latest.values()):
                break
            time.sleep(poll_seconds)
    except KeyboardInterrupt as exc:
        interrupted = exc
    finally:
        worker.stop()  # the slots release what they hold; a job may finish meanwhile
    if interrupted is not None:  # counted after the release, which can finish a job
        with rt.pool().connection() as conn:
            after = {j["document_id"]: j["state"] for j in rt.repo.list_jobs(conn, document_ids=ids)}
        done = sum(i in after and State.is_terminal(after[i]) for i in ids)
        raise IngestInterrupted(len(ids) - done) from interrupted
    with rt.pool().connection() as conn:
        stats = rt.repo.document_stats(conn, ids)
    wall = time.monotonic() - started
    failed = [j for j in latest.values() if j["state"] == State.FAILED.value]
    summary = IngestSummary(
        documents=len(ids),
        new=sum(r.created for r in registered),
        duplicates=sum(not r.created and not r.requeued and not r.resumed for r in registered),
        requeued=sum(r.requeued for r in registered),
        resumed=sum(r.resumed for r in registered),
        complete=sum(j["state"] == State.DONE.value for j in latest.values()),
        failed=len(failed),
        failed_by_code=dict(Counter(j["error_code"] for j in failed)),
        pages=sum(s["page_count"] or 0 for s in stats),
        chunks=sum(s["chunks"] for s in stats),
        wall_s=round(wall, 3),
        data_dir=str(rt.settings.data_dir),
        failures=[{"filename": j["filename"], "job_id": str(j["job_id"]),
                   "error_code": j["error_code"], "error_message": j["error_message"]} for j in failed],
    )
    shown = {i: JobProgress.from_stored(j["progress"]) for i, j in latest.items()}
    summary.warnings = [{"filename": j["filename"], "job_id": str(j["job_id"]), "message": w}
                        for i, j in latest.items() for w in shown[i].parse_warnings or []]
    summary.embedding_cache_hits = sum(p.embedding_cache_hits or 0 for p in shown.values())
    summary.docs_per_s = round(summary.documents / wall, 3) if wall else 0.0
    # This run's own rate: chunks embedded before it (a resumed run) do not count.
    embedded_here = max(0, sum(s["chunks"] for s in stats) - tracker.embedded_at_start)
    summary.chunks_per_s = round(embedded_here / wall, 3) if wall else 0.0
    return summary
