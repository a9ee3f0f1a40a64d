"""``docingest sync``: make the index of a folder's sources equal to the folder.

A plan (:func:`plan_sync`) sorts every file under the paths named and every indexed source in
scope into what to add, update, leave, and delete; :func:`sync` applies it and runs worker
slots until each document it registered is terminal (as ``ingest`` does).

The scope of deletion: the user's sources starting with the source prefix (empty: every
source) whose newest version was registered from a file (``origin = 'file'``: ``ingest``,
``sync``, ``watch``), and that no file under the paths maps to. Uploads through the API
(``origin = 'api'``) are never deleted by a sync.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from docingest.domain import State
from docingest.errors import FileTooLarge
from docingest.providers.storage.base import sha256_of
from docingest.services.ingest import (
    IngestHost,
    IngestInterrupted,
    ProgressFn,
    Refused,
    discover_sources,
    job_reports,
    register_each,
    run_until_terminal,
    source_prefix,
)

if TYPE_CHECKING:
    from docingest.services.documents import Registered
    from docingest.worker.loop import BaseWorker


@dataclass
class PlannedFile:
    """One source of a plan.

    Attributes:
        source: the source name (``--source-prefix`` then the path relative to the root).
        path: the file (None for a source to delete: its file is gone).
        document_id: the source's newest version (None for a file not indexed yet).
        state: that version's latest job state (None without one).
        why: for a file left unchanged, how that was decided: ``"size+mtime"`` (without reading
            it) or ``"sha256"`` (read and hashed: same bytes, new modification time); for a
            failed one, its error code.
    """

    source: str
    path: Path | None = None
    document_id: UUID | None = None
    state: str | None = None
    why: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: path and id as strings."""
        d = asdict(self)
        d["path"] = str(self.path) if self.path is not None else None
        d["document_id"] = str(self.document_id) if self.document_id is not None else None
        return d


@dataclass
class SyncPlan:
    """What a sync would do (``--dry-run`` prints it).

    Attributes:
        prefix: the source prefix the plan covers (``""``: every source of the user's).
        add: files whose source is not indexed: registered as new documents.
        update: files whose bytes differ from their source's newest version: a new version,
            which replaces the old one (serving searches until then) when it completes; and
            files refused ``file_too_large`` that the limit now admits (``why`` says so: their
            registration retries them).
        unchanged: files whose source's newest version has the same bytes; those whose job
            is not finished yet (an interrupted run) are waited for.
        failed: unchanged files whose newest version failed: left as they are (not retried:
            ``docingest ingest`` of the same folder and ``--source-prefix``, or ``docingest
            retry JOB``, retries one).
        delete: indexed sources in scope that no file maps to: every version deleted.
        refused: files that cannot be registered (an invalid source: a control character in
            the name, a path too long; or, when applied, an unreadable file): reported as failed.
    """

    prefix: str = ""
    add: list[PlannedFile] = field(default_factory=list)
    update: list[PlannedFile] = field(default_factory=list)
    unchanged: list[PlannedFile] = field(default_factory=list)
    failed: list[PlannedFile] = field(default_factory=list)
    delete: list[PlannedFile] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)

    @property
    def changes(self) -> int:
        """Sources the plan adds, updates or deletes."""
        return len(self.add) + len(self.update) + len(self.delete)

    def to_dict(self) -> dict[str, Any]:
        """``{prefix, add: [...], update, unchanged, failed, delete}``, each a list of
        :meth:`PlannedFile.to_dict`."""
        return {
            "prefix": self.prefix,
            **{
                name: [f.to_dict() for f in getattr(self, name)]
                for name in ("add", "update", "unchanged", "failed", "delete")
            },
            "refused": [r.failure() for r in self.refused],
        }


def plan_sync(
    rt: IngestHost, paths: list[Path], *, user_id: str = "local", prefix: str | None = None
) -> SyncPlan:
    """The plan that makes the user's sources under ``prefix`` equal to the files under
    ``paths`` (mapped to sources as :func:`~docingest.services.ingest.discover_sources`
    does). Changes nothing.

    A file is unchanged without being read when its size and modification time (ns) equal
    those recorded for its source's newest version; otherwise it is hashed, and the same
    SHA-256 is unchanged too (:func:`sync` records the new time).

    Raises:
        FileNotFoundError: a path named cannot be synced.
        SourceConflict: two files would be one source.
    """
    head = source_prefix(prefix)
    refused: list[Refused] = []
    files = discover_sources(paths, prefix=prefix, refused=refused)
    newest: dict[str, dict[str, Any]] = {}
    for row in rt.documents.versions_under(user_id, head):  # by source, then version order
        newest[row["source"]] = row
    plan = SyncPlan(prefix=head, refused=refused)
    # A refused file's source is not deleted: its file is there, only its name is unusable.
    mapped = {source for _, source in files} | {r.source for r in refused}
    for path, source in files:
        known = newest.get(source)
        if known is None:
            plan.add.append(PlannedFile(source, path))
            continue
        row = known
        planned = PlannedFile(source, path, UUID(str(row["document_id"])), row["state"])
        try:
            st = path.stat()
        except FileNotFoundError:  # deleted since it was listed: as if it had not been
            mapped.discard(source)
            continue
        if st.st_size == row["bytes_len"] and st.st_mtime_ns == row["source_mtime_ns"]:
            planned.why = "size+mtime"
        elif st.st_size == row["bytes_len"]:
            with path.open("rb") as f:
                sha, _ = sha256_of(f)
            planned.why = "sha256" if sha == row["file_sha256"] else None
        if planned.why is None:
            plan.update.append(planned)
        elif (
            row["state"] == State.FAILED.value
            and row["error_code"] == FileTooLarge.error_code
            and st.st_size <= rt.settings.max_file_bytes
        ):  # refused by a lower limit, never stored: registering it again retries it
            planned.why = "retry: file_too_large, now within UPLOAD_PIPELINE_MAX_FILE_BYTES"
            plan.update.append(planned)
        elif row["state"] == State.FAILED.value:
            planned.why = row["error_code"]
            plan.failed.append(planned)
        else:
            plan.unchanged.append(planned)
    plan.delete = [
        PlannedFile(source, None, UUID(str(row["document_id"])), row["state"])
        for source, row in sorted(newest.items())
        if source not in mapped and row["origin"] == "file"
    ]
    return plan


@dataclass
class SyncSummary:
    """What ``sync`` reports (``--json`` prints it as one object).

    ``added``, ``updated``, ``unchanged``, ``deleted`` count sources; ``failed`` the documents
    of this run whose job failed (``failed_by_code`` by error code); ``left_failed`` the
    unchanged files whose earlier version had failed and was not retried; ``chunks`` the
    chunks of the documents this run registered or waited for; ``embedding_cache_hits`` the
    chunks of theirs whose vectors came from the cache (unchanged text of an edited file).
    """

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    complete: int = 0
    failed: int = 0
    left_failed: int = 0
    failed_by_code: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    embedding_cache_hits: int = 0
    wall_s: float = 0.0
    data_dir: str = ""
    failures: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Called by :func:`apply_plan` after each change: ``("added" | "updated" | "deleted" |
#: "vanished", source)`` (``vanished``: a file to register was deleted since the plan).
ChangeFn = Callable[[str, str], None]


def apply_plan(
    rt: IngestHost,
    plan: SyncPlan,
    *,
    user_id: str = "local",
    meta: dict[str, Any] | None = None,
    on_change: ChangeFn | None = None,
) -> tuple[list[Registered], list[str]]:
    """Carry ``plan`` out, without running any job: register its added and updated files
    (``DocumentService.register_file`` with ``meta``; smallest first, as ``ingest`` does),
    record the new modification time of files unchanged by hash, set ``meta`` on unchanged
    files (as ``ingest`` does on duplicates), delete its sources to delete; ``on_change`` hears of each registration and deletion as it is made. Returns the
    registrations and the sources deleted.

    A file deleted since the plan is skipped (``on_change("vanished", source)``).

    Raises:
        OSError: a file cannot be read (the files before it are registered).
    """
    updates = {f.source for f in plan.update}
    todo = sorted(plan.add + plan.update, key=lambda f: (_size(f.path), f.source))

    def told(path: Path, source: str, reg: Registered | None) -> None:
        if on_change is not None:  # None: deleted since the plan (the next sync deletes its source)
            on_change("vanished" if reg is None else "updated" if source in updates else "added", source)

    files = [(f.path, f.source) for f in todo if f.path is not None]
    registered = register_each(
        rt, files, user_id=user_id, meta=meta, refused=plan.refused, on_registered=told
    )
    for f in plan.unchanged + plan.failed:
        if f.why == "sha256" and f.path is not None and f.document_id is not None:
            rt.documents.record_source_mtime(f.document_id, f.path.stat().st_mtime_ns)
        if meta and f.document_id is not None:  # --meta applies to unchanged files too, as ingest's
            rt.documents.merge_meta(f.document_id, meta)
    deleted: list[str] = []
    for f in plan.delete:
        if rt.documents.delete_source(user_id, f.source):
            deleted.append(f.source)
            if on_change is not None:
                on_change("deleted", f.source)
    return registered, deleted


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def sync(
    rt: IngestHost,
    paths: list[Path],
    *,
    user_id: str = "local",
    prefix: str | None = None,
    meta: dict[str, Any] | None = None,
    concurrency: int | None = None,
    on_progress: ProgressFn | None = None,
    poll_seconds: float = 0.5,
    worker: BaseWorker | None = None,
    plan: SyncPlan | None = None,
) -> SyncSummary:
    """Make the user's sources under ``prefix`` equal to the files under ``paths``: plan
    (:func:`plan_sync`, unless ``plan`` is given), apply it (:func:`apply_plan`), then run
    worker slots until every document registered, and every unchanged one whose job was not
    finished, is terminal (:func:`~docingest.services.ingest.run_until_terminal`; ``worker``:
    a running worker to wait on instead of starting slots).

    A search during a sync sees each edited file's old version until its new one is stored,
    then only the new one (the switch is one transaction).

    Raises:
        FileNotFoundError: a path named cannot be synced (nothing changed).
        SourceConflict: two files would be one source (nothing changed).
        IngestInterrupted: on KeyboardInterrupt while registering or waiting (the slots
            stopped and released their jobs; running the command again resumes).
    """
    started = time.monotonic()
    if plan is None:
        plan = plan_sync(rt, paths, user_id=user_id, prefix=prefix)
    try:
        registered, deleted = apply_plan(rt, plan, user_id=user_id, meta=meta)
    except KeyboardInterrupt as exc:
        raise IngestInterrupted(len(plan.add) + len(plan.update)) from exc
    waiting = [
        f.document_id
        for f in plan.unchanged
        if f.document_id is not None and f.state is not None and not State.is_terminal(f.state)
    ]
    ids = list(dict.fromkeys([r.document.document_id for r in registered] + waiting))
    latest: dict[UUID, dict[str, Any]] = {}
    if ids:
        latest, _ = run_until_terminal(
            rt,
            ids,
            started=started,
            concurrency=concurrency,
            on_progress=on_progress,
            poll_seconds=poll_seconds,
            worker=worker,
        )
    stats = rt.documents.document_stats(ids) if ids else []
    failed = [j for j in latest.values() if j["state"] == State.FAILED.value]
    stored = {r.document.source for r in registered}  # less files deleted since the plan
    summary = SyncSummary(
        added=sum(f.source in stored for f in plan.add),
        updated=sum(f.source in stored for f in plan.update),
        unchanged=len(plan.unchanged),
        deleted=len(deleted),
        complete=sum(j["state"] == State.DONE.value for j in latest.values()),
        failed=len(failed) + len(plan.refused),
        left_failed=len(plan.failed),
        failed_by_code=dict(
            Counter(j["error_code"] for j in failed) + Counter(r.error_code for r in plan.refused)
        ),
        chunks=sum(s["chunks"] for s in stats),
        wall_s=round(time.monotonic() - started, 3),
        data_dir=str(rt.settings.data_dir),
    )
    summary.failures, summary.warnings, summary.embedding_cache_hits = job_reports(latest, registered)
    summary.failures += [r.failure() for r in plan.refused]
    return summary
