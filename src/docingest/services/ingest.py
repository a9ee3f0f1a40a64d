"""``docingest ingest``: register local files as documents and run workers until all are terminal."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from docingest.domain import Generation, JobProgress, State
from docingest.errors import FileUnreadable, InvalidSource, SourceConflict
from docingest.services.documents import DocumentService, Registered, check_source, fs_text
from docingest.services.progress import IngestProgress, IngestSnapshot
from docingest.settings import Settings

if TYPE_CHECKING:
    from docingest.worker.loop import BaseWorker


class IngestHost(Protocol):
    """What :func:`ingest` needs of the process (``Runtime`` is one): its settings, its
    documents service, and worker slots to run in this process."""

    settings: Settings

    @property
    def documents(self) -> DocumentService: ...

    def worker(self, *, concurrency: int | None = None) -> BaseWorker: ...

    def generation(self) -> Generation: ...


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
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.add(path)
        else:
            raise FileNotFoundError(_not_a_file(path))
    return sorted(found)


def generation_warning(rt: IngestHost, user_id: str) -> dict[str, Any] | None:
    """A summary warning when this process embeds documents by another generation than the
    one serving ``user_id``'s searches (they wait for ``docingest reembed``); None otherwise."""
    mine = rt.generation()
    with rt.documents.db.connection() as conn:
        serving = rt.documents.repo.serving_generation(conn, user_id)
    if serving is None or serving == mine:
        return None
    return {
        "filename": "",
        "job_id": "",
        "message": f"these documents were embedded by {mine.label}, but your searches are served by "
        f"{serving.label}: they become searchable when `docingest reembed` has moved your other "
        "documents to it",
    }


def source_prefix(prefix: str | None) -> str:
    """``--source-prefix`` as sources start with it: empty, or ending with one ``/``.

    Raises:
        InvalidSource: the prefix has control characters or is too long for any source.
    """
    prefix = (prefix or "").strip()
    head = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    if head:
        try:
            check_source(head)
        except InvalidSource as exc:
            raise InvalidSource(f"--source-prefix: {exc.message}") from exc
    return head


@dataclass(frozen=True)
class Refused:
    """A file named for ingestion that was not registered, and why (``error_code``, ``message``).

    Attributes:
        path: the file.
        source: its source as a person reads it (undecodable bytes of its name as ``\\xNN``).
    """

    path: Path
    source: str
    error_code: str
    message: str

    def failure(self) -> dict[str, Any]:
        """The row of a summary's ``failures`` (no job: the file was never registered)."""
        return {
            "filename": self.source,
            "job_id": None,
            "error_code": self.error_code,
            "error_message": self.message,
        }


def discover_sources(
    paths: Iterable[Path], *, prefix: str | None = None, refused: list[Refused] | None = None
) -> list[tuple[Path, str]]:
    """Each file :func:`discover` finds under ``paths`` with its source: ``prefix`` (see
    :func:`source_prefix`) then its path relative to the directory named (POSIX separators,
    :func:`~docingest.services.documents.fs_text`),
    or its name for a file named on its own; sorted by source.

    A file whose source is not a valid one (a control character in its name, a path over
    1,024 characters: ``invalid_source``) is left out and, when ``refused`` is a list,
    appended to it as a :class:`Refused`; without the list it raises.

    Raises:
        FileNotFoundError: as :func:`discover`.
        InvalidSource: a bad ``prefix``, or (without ``refused``) a file's source.
        SourceConflict: two files would be the same source (e.g. ``a/notes.md`` and
            ``b/notes.md`` named as files, or two directories holding the same relative path).
    """
    head = source_prefix(prefix)
    seen: dict[str, Path] = {}
    for root in paths:
        for p in discover([root]):
            rel = p.relative_to(root).as_posix() if root.is_dir() else p.name
            source = head + fs_text(rel)
            try:
                check_source(source)
            except InvalidSource as exc:
                if refused is None:
                    raise
                refused.append(Refused(p, source, exc.error_code, f"{exc.message} (file {source!r})"))
                continue
            other = seen.setdefault(source, p)
            if other != p:
                raise SourceConflict(
                    f"{other} and {p} would both be the source {source!r}: run one command per "
                    "root, each with its own --source-prefix, or name their common parent directory"
                )
    return sorted(((p, s) for s, p in seen.items()), key=lambda ps: ps[1])


def register_each(
    rt: IngestHost,
    files: Iterable[tuple[Path, str]],
    *,
    user_id: str,
    meta: dict[str, Any] | None,
    refused: list[Refused],
    on_registered: Callable[[Path, str, Registered | None], None] | None = None,
) -> list[Registered]:
    """Register each ``(path, source)`` (``DocumentService.register_file``); a file that
    cannot be (unreadable: ``file_unreadable``; an invalid source) is appended to ``refused``
    and the others go on; a file deleted meanwhile is skipped (``on_registered`` gets None).

    Raises:
        StorageUnavailable, psycopg.Error: the installation failed (the files before are
            registered); KeyboardInterrupt.
    """
    registered: list[Registered] = []
    for path, source in files:
        try:
            reg = rt.documents.register_file(path, user_id=user_id, source=source, meta=meta)
        except FileNotFoundError:
            reg = None
        except (PermissionError, IsADirectoryError, OSError) as exc:
            err = FileUnreadable(f"{source!r} cannot be read: {exc.strerror or exc}; fix its permissions")
            refused.append(Refused(path, source, err.error_code, err.message))
            continue
        except InvalidSource as exc:
            refused.append(Refused(path, source, exc.error_code, exc.message))
            continue
        if reg is not None:
            registered.append(reg)
        if on_registered is not None:
            on_registered(path, source, reg)
    return registered


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


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
    kind = (
        "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISBLK(mode) or stat.S_ISCHR(mode)
        else "not a regular file"
    )
    return f"not a regular file ({kind}): {path}; name a file or a directory"


class IngestInterrupted(Exception):
    """``ingest`` was interrupted (Ctrl-C, SIGTERM, SIGHUP); ``unfinished`` documents are not
    terminal yet.

    Running the same command again resumes them: their jobs stay in the queue (a worker's
    held jobs are released when it stops).
    """

    def __init__(self, unfinished: int) -> None:
        super().__init__(f"interrupted: {unfinished} documents not finished")
        self.unfinished = unfinished


@dataclass
class IngestSummary:
    """What ``ingest`` reports (``--json`` prints it as one object)."""

    documents: int = 0
    new: int = 0
    #: new versions of sources already ingested (they replace the old ones once complete)
    updated: int = 0
    duplicates: int = 0
    #: files attached to the e-mails ingested, ingested as documents of their own (counted in
    #: ``documents``)
    attachments: int = 0
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
    #: ``{filename, job_id, message}`` per warning of this run: a file whose name says another
    #: type than its content, then each parse and chunking warning (e.g. undecodable bytes
    #: replaced, chunks the embedder cannot read).
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Called about every ``poll_seconds`` with where the run stands.
ProgressFn = Callable[[IngestSnapshot], None]


def run_until_terminal(
    rt: IngestHost,
    ids: list[UUID],
    *,
    started: float,
    concurrency: int | None = None,
    on_progress: ProgressFn | None = None,
    poll_seconds: float = 0.5,
    worker: BaseWorker | None = None,
) -> tuple[dict[UUID, dict[str, Any]], IngestProgress]:
    """Run worker slots until the latest job of each document of ``ids`` is terminal, and of
    each document attached to one of them (an e-mail's attachments, registered when the
    message is parsed: appended to ``ids`` when their message is terminal).

    Without ``worker``, slots of this process are started (``concurrency`` of them) and
    stopped at the end; with one (already running, e.g. ``watch``'s), it is only polled and
    left running. ``started`` is the run's ``time.monotonic()`` start, for rates and ETAs.

    Returns:
        ``{document_id: its latest job row}`` (``Repository.list_jobs`` rows) and the
        progress tracker (its ``embedded_at_start``).

    Raises:
        IngestInterrupted: on KeyboardInterrupt, with the count of documents not finished
            (counted after the slots stopped and released their jobs; a ``worker`` given is
            not stopped here).
    """
    latest: dict[UUID, dict[str, Any]] = {}
    own = worker is None
    slots = rt.worker(concurrency=concurrency) if worker is None else worker
    tracker = IngestProgress(worker_id=slots.worker_id, started=started)
    interrupted: KeyboardInterrupt | None = None
    try:
        if own:
            slots.start()
        else:
            slots.wake.set()  # new jobs: claim them now rather than at the next poll
        while True:
            jobs = rt.documents.job_rows(document_ids=ids)
            latest = {j["document_id"]: j for j in jobs}  # ordered by created_at: last wins
            if on_progress:
                on_progress(tracker.update(list(latest.values()), time.monotonic()))
            if all(State.is_terminal(j["state"]) for j in latest.values()):
                known = set(ids)
                attached = [a for a in rt.documents.attachments_of(ids) if a not in known]
                if not attached:
                    break
                ids.extend(attached)
                continue
            time.sleep(poll_seconds)
    except KeyboardInterrupt as exc:
        interrupted = exc
    finally:
        if own:
            slots.stop()  # the slots release what they hold; a job may finish meanwhile
    if interrupted is not None:  # counted after the release, which can finish a job
        after = {j["document_id"]: j["state"] for j in rt.documents.job_rows(document_ids=ids)}
        done = sum(i in after and State.is_terminal(after[i]) for i in ids)
        raise IngestInterrupted(len(ids) - done) from interrupted
    return latest, tracker


def job_reports(
    latest: dict[UUID, dict[str, Any]], registered: Iterable[Registered] = ()
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """What a run reports of its documents' ``latest`` jobs: the failures (``filename,
    job_id, error_code, error_message``), the warnings (``filename, job_id, message``: the
    registration's, then each parse and chunking warning) and the embedding cache hits."""
    failures = [
        {
            "filename": j["filename"],
            "job_id": str(j["job_id"]),
            "error_code": j["error_code"],
            "error_message": j["error_message"],
        }
        for j in latest.values()
        if j["state"] == State.FAILED.value
    ]
    shown = {i: JobProgress.from_stored(j["progress"]) for i, j in latest.items()}
    warnings = [
        {"filename": r.document.filename, "job_id": str(r.job.job_id), "message": r.warning}
        for r in registered
        if r.warning is not None and r.job is not None
    ] + [
        {"filename": j["filename"], "job_id": str(j["job_id"]), "message": w}
        for i, j in latest.items()
        for w in (shown[i].parse_warnings or []) + (shown[i].chunk_warnings or [])
    ]
    return failures, warnings, sum(p.embedding_cache_hits or 0 for p in shown.values())


def ingest(
    rt: IngestHost,
    paths: list[Path],
    *,
    user_id: str = "local",
    concurrency: int | None = None,
    on_progress: ProgressFn | None = None,
    poll_seconds: float = 0.5,
    prefix: str | None = None,
    meta: dict[str, Any] | None = None,
) -> IngestSummary:
    """Register ``paths`` and run worker slots in this process until every job is terminal.

    Each file is the latest version of its source (:func:`discover_sources`: ``prefix`` then
    its path relative to the directory named), with ``meta`` as its metadata. A file whose
    source has other bytes is a new version, replacing the old when it completes; nothing is
    deleted for a file that is gone (``sync`` does that).

    ``on_progress`` gets an :class:`~docingest.services.progress.IngestSnapshot` after each poll: work
    done and expected, rate, ETA, and the jobs it waits for because another process holds
    them (a live lease; once that lease expires this run's slots take the job over).

    Raises:
        FileNotFoundError: a path named cannot be ingested.
        SourceConflict: two files would be one source (nothing was registered).
        IngestInterrupted: on KeyboardInterrupt (Ctrl-C; the CLI raises it for SIGTERM and
            SIGHUP too), with the count of documents not finished; the worker slots have
            stopped and released their jobs.
    """
    started = time.monotonic()
    # Smallest first: jobs are claimed in the order they were created, so a folder's small
    # files are searchable within seconds instead of waiting behind its large ones.
    refused: list[Refused] = []
    files = sorted(
        discover_sources(paths, prefix=prefix, refused=refused), key=lambda ps: (_size(ps[0]), ps[1])
    )
    registered: list[Registered] = []
    try:
        registered = register_each(rt, files, user_id=user_id, meta=meta, refused=refused)
    except KeyboardInterrupt as exc:
        finished = sum(r.job is not None and r.job.state.terminal for r in registered)
        raise IngestInterrupted(len(files) - finished) from exc
    ids = list(dict.fromkeys(r.document.document_id for r in registered))
    named = len(ids)
    latest, tracker = run_until_terminal(  # appends the e-mails' attachments to ids
        rt, ids, started=started, concurrency=concurrency, on_progress=on_progress, poll_seconds=poll_seconds
    )
    stats = rt.documents.document_stats(ids)
    wall = time.monotonic() - started
    failed = [j for j in latest.values() if j["state"] == State.FAILED.value]
    failed_codes = Counter(j["error_code"] for j in failed) + Counter(r.error_code for r in refused)
    summary = IngestSummary(
        documents=len(ids) + len(refused),
        new=sum(r.created and r.replaces is None for r in registered),
        updated=sum(r.created and r.replaces is not None for r in registered),
        duplicates=sum(not r.created and not r.requeued and not r.resumed for r in registered),
        attachments=len(ids) - named,
        requeued=sum(r.requeued for r in registered),
        resumed=sum(r.resumed for r in registered),
        complete=sum(j["state"] == State.DONE.value for j in latest.values()),
        failed=len(failed) + len(refused),
        failed_by_code=dict(failed_codes),
        pages=sum(s["page_count"] or 0 for s in stats),
        chunks=sum(s["chunks"] for s in stats),
        wall_s=round(wall, 3),
        data_dir=str(rt.settings.data_dir),
    )
    summary.failures, summary.warnings, summary.embedding_cache_hits = job_reports(latest, registered)
    summary.failures += [r.failure() for r in refused]
    if summary.complete and (note := generation_warning(rt, user_id)) is not None:
        summary.warnings.append(note)
    summary.docs_per_s = round(summary.documents / wall, 3) if wall else 0.0
    # This run's own rate: chunks embedded before it (a resumed run) do not count.
    embedded_here = max(0, sum(s["chunks"] for s in stats) - tracker.embedded_at_start)
    summary.chunks_per_s = round(embedded_here / wall, 3) if wall else 0.0
    return summary
