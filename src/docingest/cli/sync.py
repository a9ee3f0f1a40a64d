"""``docingest sync`` (make the index equal to a folder) and ``docingest watch`` (keep it so)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from docingest.cli.app import (
    MetaOpt,
    SourcePrefixOpt,
    UserOpt,
    VerboseOpt,
    _parse_meta,
    _probe_embedder,
    _runtime,
    _setup_logging,
    app,
    console,
    out,
)
from docingest.cli.ingest import _IngestBar, _StopSignals, progress_shower, usage_error
from docingest.errors import InvalidSource, SourceConflict

if TYPE_CHECKING:
    from docingest.runtime import Runtime
    from docingest.services.sync import SyncPlan, SyncSummary
    from docingest.worker.loop import BaseWorker


@app.command()
def sync(
    paths: list[Path] = typer.Argument(..., help="files or directories (recursive)"),
    user: str = UserOpt,
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, max=64, help="worker slots"),
    prefix: str | None = SourcePrefixOpt,
    meta: list[str] | None = MetaOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and change nothing"),
    as_json: bool = typer.Option(False, "--json", help="print the summary (or plan) as one JSON object"),
    verbose: bool = VerboseOpt,
) -> None:
    """Make the index equal to the folder: add new files, replace changed ones, skip unchanged
    ones, delete the sources of files gone; exit 1 when any document failed.

    Sources are named as `ingest` names them. Deleted are the user's sources registered from
    files (not API uploads) that start with --source-prefix (without one: all of them) and that
    no file maps to. A file whose size and modification time are those recorded is skipped
    without being read; a file whose earlier version failed with the same bytes is left (an
    `ingest` of the folder with the same --source-prefix retries it), except one refused
    file_too_large, retried once the limit admits it.

    Ctrl-C, SIGTERM and SIGHUP stop it as they stop `ingest` (exit 130, 143, 129).
    """
    from docingest.services.ingest import IngestInterrupted
    from docingest.services.sync import plan_sync
    from docingest.services.sync import sync as run_sync

    _setup_logging(verbose, job_lines=verbose)
    with _StopSignals() as stop:
        try:
            rt = _runtime()
        except KeyboardInterrupt as exc:
            console.print(f"[yellow]{stop.interrupted}:[/yellow] nothing changed", soft_wrap=True)
            raise typer.Exit(stop.exit_code) from exc
        try:
            try:
                plan = plan_sync(rt, paths, user_id=user, prefix=prefix)
            except (FileNotFoundError, SourceConflict, InvalidSource) as exc:
                console.print(f"[red]error:[/red] {escape(usage_error(exc))}", soft_wrap=True)
                raise typer.Exit(2) from exc
            if dry_run:
                _print_plan(plan, as_json=as_json)
                raise typer.Exit(0)
            if plan.add or plan.update:
                _probe_embedder(rt)
            live = console.is_terminal
            with _IngestBar(console=console, transient=as_json, disable=not live) as bar:
                task = bar.add_task("syncing", total=None, detail="applying the plan", elapsed="")
                on_progress = progress_shower(bar, task, live=live)

                try:
                    summary = run_sync(
                        rt,
                        paths,
                        user_id=user,
                        prefix=prefix,
                        meta=_parse_meta(meta),
                        concurrency=concurrency,
                        on_progress=on_progress,
                        plan=plan,
                    )
                except IngestInterrupted as exc:
                    bar.stop()
                    console.print(
                        f"[yellow]{stop.interrupted}:[/yellow] {exc.unfinished} documents not "
                        "finished; run the same command again to resume",
                        soft_wrap=True,
                    )
                    raise typer.Exit(stop.exit_code) from exc
        except KeyboardInterrupt as exc:
            console.print(
                f"[yellow]{stop.interrupted}:[/yellow] run the same command again to finish", soft_wrap=True
            )
            raise typer.Exit(stop.exit_code) from exc
        finally:
            rt.close()
    _print_sync_summary(summary, plan, as_json=as_json)


def _print_plan(plan: SyncPlan, *, as_json: bool) -> None:
    """The plan: one line per source to add, update or delete and per failed file left, then
    the counts (``--json``: :meth:`SyncPlan.to_dict`)."""
    if as_json:
        out.print_json(json.dumps({"dry_run": True, **plan.to_dict()}))
        return
    for verb, files in (("add", plan.add), ("update", plan.update), ("delete", plan.delete)):
        for f in files:
            retry = f.why is not None and f.why.startswith("retry")
            line = f"retry   {f.source} ({f.why})" if retry else f"{verb:<7} {f.source}"
            out.print(line, markup=False, highlight=False, soft_wrap=True)
    for f in plan.failed:
        out.print(
            f"failed  {f.source} (left: its last version failed {f.why}; `docingest ingest` of this folder "
            "with the same --source-prefix retries it)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    for r in plan.refused:
        out.print(
            f"refused {r.source}: {r.error_code}: {r.message}", markup=False, highlight=False, soft_wrap=True
        )
    scope = f"sources under {plan.prefix!r}" if plan.prefix else "all your file sources"
    out.print(
        f"dry run ({scope}): {len(plan.add)} to add, {len(plan.update)} to update, "
        f"{len(plan.unchanged)} unchanged, {len(plan.delete)} to delete, "
        f"{len(plan.failed)} failed left, {len(plan.refused)} refused; nothing was changed",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _print_sync_summary(summary: SyncSummary, plan: SyncPlan, *, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(summary.to_dict()))
    else:
        for verb, files in (("added", plan.add), ("updated", plan.update), ("deleted", plan.delete)):
            for f in files:
                out.print(f"{verb:<8} {f.source}", markup=False, highlight=False, soft_wrap=True)
        table = Table(title="docingest sync")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for name in (
            "added",
            "updated",
            "unchanged",
            "deleted",
            "complete",
            "failed",
            "left_failed",
            "chunks",
            "embedding_cache_hits",
            "wall_s",
        ):
            table.add_row(name, str(getattr(summary, name)))
        for code, n in sorted(summary.failed_by_code.items()):
            table.add_row(f"failed: {code}", str(n))
        out.print(table)
        for failure in summary.failures:
            out.print(
                f"[red]{escape(failure['filename'])}[/red] {failure['error_code']}: "
                f"{escape(failure['error_message'] or '')}"
                + (f" (job {failure['job_id']})" if failure["job_id"] else ""),
                soft_wrap=True,
                highlight=False,
            )
        for w in summary.warnings:
            out.print(
                f"[yellow]warning:[/yellow] {escape(w['filename'])}: {escape(w['message'])}",
                soft_wrap=True,
                highlight=False,
            )
    raise typer.Exit(1 if summary.failed else 0)


@app.command()
def watch(
    paths: list[Path] = typer.Argument(..., help="files or directories (recursive)"),
    user: str = UserOpt,
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, max=64, help="worker slots"),
    prefix: str | None = SourcePrefixOpt,
    meta: list[str] | None = MetaOpt,
    debounce_ms: int = typer.Option(
        1600,
        "--debounce-ms",
        min=50,
        max=60_000,
        help="group the changes of at most this many milliseconds into one sync",
    ),
    verbose: bool = VerboseOpt,
) -> None:
    """Keep the index equal to the folder: a full `sync` at start (so changes made while it was
    not running are picked up), then a sync after each batch of file changes, with worker slots
    running in this process all along. Prints one line per source added, updated, deleted,
    indexed or failed.

    Each batch re-plans the whole folder: files whose size and modification time are unchanged
    are skipped without being read. Hidden files and folders are ignored, as `ingest` ignores
    them. Ctrl-C, SIGTERM and SIGHUP stop it: held jobs are released, exit 130, 143 or 129.
    """
    _setup_logging(verbose, job_lines=verbose)
    with _StopSignals() as stop:
        rt: Runtime | None = None
        worker: BaseWorker | None = None
        try:
            rt = _runtime()
            _probe_embedder(rt)
            worker = rt.worker(concurrency=concurrency)
            worker.start()
            _watch_loop(
                rt, worker, paths, user=user, prefix=prefix, meta=_parse_meta(meta), debounce_ms=debounce_ms
            )
        except (FileNotFoundError, SourceConflict) as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(2) from exc
        except KeyboardInterrupt as exc:
            if worker is not None:
                worker.stop()
                worker = None
            console.print(
                f"[yellow]{stop.interrupted}:[/yellow] stopped watching; held jobs released", soft_wrap=True
            )
            raise typer.Exit(stop.exit_code) from exc
        finally:
            if worker is not None:
                worker.stop()
            if rt is not None:
                rt.close()


def _say(verb: str, source: str, detail: str = "") -> None:
    """One line of ``watch``: ``HH:MM:SS verb source detail``."""
    out.print(
        f"{time.strftime('%H:%M:%S')} {verb:<8} {source}{' ' + detail if detail else ''}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _watch_loop(
    rt: Runtime,
    worker: BaseWorker,
    paths: list[Path],
    *,
    user: str,
    prefix: str | None,
    meta: dict[str, Any] | None,
    debounce_ms: int,
) -> None:
    """Sync now, then after each batch of changes under ``paths``; report jobs as they end.

    A root that is deleted is waited for: once it is back (recreated), it is watched anew and
    fully synced; one replaced (a new inode) is watched anew and synced at once. Returns only
    when the watcher stops; KeyboardInterrupt stops it."""
    import watchfiles

    from docingest.domain import State
    from docingest.services.sync import apply_plan, plan_sync

    roots = [p.resolve() for p in paths]

    def visible(change: watchfiles.Change, name: str) -> bool:
        path = Path(name)
        for root in roots:
            if path == root or root in path.parents:
                return not any(part.startswith(".") for part in path.relative_to(root).parts)
        return True

    pending: dict[Any, str] = {}  # document id -> source, registered and not terminal yet

    def resync() -> None:
        plan = plan_sync(rt, paths, user_id=user, prefix=prefix)
        registered, _ = apply_plan(rt, plan, user_id=user, meta=meta, on_change=_say)
        for r in registered:
            pending[r.document.document_id] = r.document.source
        for f in plan.unchanged:
            if f.document_id is not None and f.state is not None and not State.is_terminal(f.state):
                pending[f.document_id] = f.source  # an interrupted run's: the slots finish it
        if plan.changes:
            worker.wake.set()

    def report() -> None:
        if not pending:
            return
        rows = rt.documents.job_rows(document_ids=list(pending))
        for gone in set(pending) - {j["document_id"] for j in rows}:
            del pending[gone]  # a version superseded in flight by a later one (deleted)
        for j in rows:
            source = pending.get(j["document_id"])
            if source is None or not State.is_terminal(j["state"]):
                continue
            del pending[j["document_id"]]
            if j["state"] == State.DONE.value:
                _say("indexed", source)
            else:
                _say("failed", source, f"{j['error_code']}: {j['error_message'] or ''}")

    def guarded_resync() -> None:
        try:
            resync()
        except (OSError, SourceConflict, DocingestError) as exc:  # the next change retries
            console.print(f"[red]error:[/red] {escape(str(exc))}; still watching", soft_wrap=True)

    def identities() -> list[tuple[int, int] | None]:
        """Each root's (device, inode), None while it is missing: a root deleted (and maybe
        recreated) loses its watch, which then reports nothing more."""
        found: list[tuple[int, int] | None] = []
        for root in roots:
            try:
                st = root.stat()
            except OSError:
                found.append(None)
            else:
                found.append((st.st_dev, st.st_ino))
        return found

    from docingest.errors import DocingestError

    resync()
    console.print(
        f"watching {', '.join(map(str, paths))} (Ctrl-C to stop)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    seen = identities()
    while True:
        try:
            for changes in watchfiles.watch(
                *paths,
                watch_filter=visible,
                debounce=debounce_ms,
                step=min(300, debounce_ms),
                rust_timeout=1000,
                yield_on_timeout=True,
            ):
                if identities() != seen:
                    break  # a root was deleted or replaced: watch it anew (below)
                if changes:
                    guarded_resync()
                report()
            else:
                return  # the watcher stopped
        except FileNotFoundError:  # a root vanished as its watch started
            pass
        missing = [str(p) for p, i in zip(paths, identities(), strict=True) if i is None]
        if missing:
            console.print(
                f"[yellow]gone:[/yellow] {escape(', '.join(missing))}; its documents stay indexed; "
                "waiting for it to reappear (Ctrl-C to stop)",
                soft_wrap=True,
            )
            while None in identities():
                report()
                time.sleep(min(1.0, debounce_ms / 1000))
            console.print(
                f"back: {', '.join(missing)}; syncing it and watching again",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        seen = identities()
        guarded_resync()  # a full sync: what changed while it was gone or unwatched
        report()
