"""``docingest ingest``: the command, its progress display (a bar on a terminal, plain lines
otherwise), its handling of stop signals, and the summary it prints."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
from rich.table import Column, Table
from rich.text import Text

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
from docingest.errors import DocingestError, InvalidSource, SourceConflict
from docingest.services.progress import IngestSnapshot, clock, duration
from docingest.settings import Settings

if TYPE_CHECKING:
    from docingest.runtime import Runtime
    from docingest.services.ingest import IngestSummary


class _StopSignals:
    """While entered, SIGINT, SIGTERM and SIGHUP raise ``KeyboardInterrupt`` in the main thread.

    ``timeout``, a closed terminal and CI runners stop a command with SIGTERM or SIGHUP; their
    default action ends the process at once, so a command that holds jobs would leave them
    leased to a dead process. Raised as Ctrl-C is, they unwind through the same ``finally``
    blocks (the worker's slots stop and release their jobs). A second signal while that happens
    is ignored, so the release is not cut short. On exit the previous handlers come back.

    Attributes:
        signum: the first signal received (None: none yet).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            return  # already stopping
        self.signum = signum
        # At once, and with a plain write (a handler may run while rich holds its console): a
        # slot gives its job back at its next checkpoint, which can be seconds away.
        os.write(
            2,
            f"\n{self.interrupted}: releasing held jobs when their current step reaches a "
            "checkpoint (seconds; longer while a large file is parsed or chunked)...\n".encode(),
        )
        raise KeyboardInterrupt

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (130 for Ctrl-C, also when no handler saw it)."""
        return 128 + (self.signum or signal.SIGINT)

    @property
    def interrupted(self) -> str:
        """``"interrupted"``, or ``"stopped by SIGTERM"``/``"stopped by SIGHUP"``."""
        if self.signum in (None, signal.SIGINT):
            return "interrupted"
        return f"stopped by {signal.Signals(self.signum).name}"


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(..., help="files or directories (recursive)"),
    user: str = UserOpt,
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, max=64, help="worker slots"),
    prefix: str | None = SourcePrefixOpt,
    meta: list[str] | None = MetaOpt,
    as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON object"),
    verbose: bool = VerboseOpt,
) -> None:
    """Ingest files: parse, chunk, embed and store them; exit 1 when any document failed.

    Each file is its source: its path relative to the directory named (its name, for a file
    named on its own), after --source-prefix. A changed file becomes a new version that
    replaces the old one once it is searchable; files gone from the folder stay (use `sync`).

    Ctrl-C, SIGTERM and SIGHUP stop it the same way: the jobs it holds are released (claimable
    at once), and it exits 130, 143 or 129 (128 + the signal's number).
    """
    _setup_logging(verbose, job_lines=verbose)  # job lines would break through the bar
    with _StopSignals() as stop:
        try:
            rt = _runtime()
        except KeyboardInterrupt as exc:  # nothing registered yet: nothing to release
            console.print(
                f"[yellow]{stop.interrupted}:[/yellow] before any file was registered; "
                "run the same command again to start",
                soft_wrap=True,
            )
            raise typer.Exit(stop.exit_code) from exc
        try:
            _probe_embedder(rt)
        except KeyboardInterrupt as exc:
            rt.close()
            console.print(
                f"[yellow]{stop.interrupted}:[/yellow] while probing the embedder, before any "
                "file was registered; run the same command again to start",
                soft_wrap=True,
            )
            raise typer.Exit(stop.exit_code) from exc
        summary = _ingest_with_progress(
            rt,
            paths,
            user=user,
            concurrency=concurrency,
            as_json=as_json,
            stop=stop,
            prefix=prefix,
            meta=_parse_meta(meta),
        )
    _print_ingest_summary(summary, paths, as_json=as_json, settings=rt.settings)


#: Seconds between the plain progress lines ``ingest`` prints when stderr is not a terminal.
PLAIN_PROGRESS_SECONDS = 5.0


class _DetailColumn(ProgressColumn):
    """A task's ``detail`` on one line, cut with an ellipsis; the only column a narrow terminal
    shrinks (a column rich may wrap is shrunk first; its text never wraps)."""

    def render(self, task: Any) -> Text:
        return Text(task.fields.get("detail", ""), no_wrap=True, overflow="ellipsis")


class _IngestBar(Progress):
    """``ingest``'s bar: ``ingesting ━━━━━━ 0:01:12 12/45 docs, eta 1m47s, 1,024/3,310 chunks,
    21.3 chunks/s``, and what it waits for on a second line. The name, the bar and the elapsed
    time keep their width; on a narrow terminal the text is cut at its end (least useful last)."""

    def __init__(self, **kwargs: Any) -> None:
        self.note = ""  # before Progress's init, which renders once
        super().__init__(
            TextColumn("[bold]{task.description}", table_column=Column(width=9, no_wrap=True)),
            BarColumn(bar_width=16, table_column=Column(width=16, no_wrap=True)),
            TextColumn("{task.fields[elapsed]}", table_column=Column(width=8, no_wrap=True)),
            _DetailColumn(),
            **kwargs,
        )

    def get_renderables(self) -> Any:
        yield self.make_tasks_table(self.tasks)
        if self.note:
            yield Text(self.note, style="yellow", overflow="fold")


def _show_snapshot(bar: _IngestBar, task: Any, snap: IngestSnapshot) -> None:
    """Move ``bar`` to ``snap``: work done of work expected, counts, ETA, rate, elapsed."""
    parts = [f"{snap.finished}/{snap.documents} docs"]
    if snap.eta_s is not None:
        parts.append(f"eta {duration(snap.eta_s)}")
    if snap.rate_chunks_s is not None:
        parts.append(f"{snap.rate_chunks_s:,.1f} chunks/s")
    parts.append(snap.chunks_text())  # last: at 80 columns the cut falls here
    bar.update(
        task,
        total=max(snap.work_total, 1e-9),
        completed=snap.work_done,
        detail=", ".join(parts),
        elapsed=clock(snap.elapsed_s),
    )
    bar.note = snap.note()


def usage_error(exc: BaseException) -> str:
    """A refusal of the command's input as one line: ``error_code: message`` for a docingest
    error (``source_conflict``, ``invalid_source``), else the exception's text (a path)."""
    if isinstance(exc, DocingestError):
        return f"{exc.error_code}: {exc.message}"
    return str(exc)


def progress_shower(bar: _IngestBar, task: Any, *, live: bool) -> Callable[[IngestSnapshot], None]:
    """The ``on_progress`` of a run shown by ``bar``: on a terminal (``live``) each snapshot
    moves the bar; otherwise one plain line on stderr every :data:`PLAIN_PROGRESS_SECONDS`."""
    printed = [float("-inf")]

    def on_progress(snap: IngestSnapshot) -> None:
        if live:
            _show_snapshot(bar, task, snap)
        elif snap.elapsed_s - printed[0] >= PLAIN_PROGRESS_SECONDS:
            printed[0] = snap.elapsed_s
            console.print(snap.line(), markup=False, highlight=False, soft_wrap=True)

    return on_progress


def _ingest_with_progress(
    rt: Runtime,
    paths: list[Path],
    *,
    user: str,
    concurrency: int,
    as_json: bool,
    stop: _StopSignals,
    prefix: str | None = None,
    meta: Any = None,
) -> IngestSummary:
    """Run :func:`docingest.services.ingest.ingest` under a progress display; closes ``rt``.

    On a terminal: a bar (:class:`_IngestBar`). Otherwise (a pipe, a CI log): a plain line on
    stderr every :data:`PLAIN_PROGRESS_SECONDS` (:meth:`IngestSnapshot.line`).
    """
    from docingest.services.ingest import IngestInterrupted
    from docingest.services.ingest import ingest as run_ingest

    live = console.is_terminal
    with _IngestBar(console=console, transient=as_json, disable=not live) as bar:
        task = bar.add_task("ingesting", total=None, detail="registering files", elapsed="")
        on_progress = progress_shower(bar, task, live=live)

        try:
            summary = run_ingest(
                rt,
                paths,
                user_id=user,
                concurrency=concurrency,
                on_progress=on_progress,
                prefix=prefix,
                meta=meta,
            )
        except (FileNotFoundError, SourceConflict, InvalidSource) as exc:
            bar.update(task, visible=False)  # nothing was registered: no bar after the error
            bar.stop()
            console.print(
                f"[red]error:[/red] {escape(usage_error(exc))}", soft_wrap=True
            )  # a path in one piece
            raise typer.Exit(2) from exc
        except IngestInterrupted as exc:
            bar.stop()
            console.print(
                f"[yellow]{stop.interrupted}:[/yellow] {exc.unfinished} documents not finished; "
                "run the same command again to resume",
                soft_wrap=True,
            )
            raise typer.Exit(stop.exit_code) from exc
        except KeyboardInterrupt as exc:  # outside ingest's loop (listing files, its last reads)
            bar.stop()
            console.print(
                f"[yellow]{stop.interrupted}:[/yellow] run the same command again to resume", soft_wrap=True
            )
            raise typer.Exit(stop.exit_code) from exc
        finally:
            rt.close()
    return summary


def _print_ingest_summary(
    summary: IngestSummary, paths: list[Path], *, as_json: bool, settings: Settings
) -> None:
    if not summary.documents:
        console.print(
            f"[yellow]warning:[/yellow] no files to ingest under {escape(', '.join(map(str, paths)))} "
            "(hidden files and folders are skipped)",
            soft_wrap=True,
            highlight=False,
        )
    if as_json:
        out.print_json(json.dumps(summary.to_dict()))
    else:
        table = Table(title="docingest ingest")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for name in (
            "documents",
            "new",
            "updated",
            "duplicates",
            "attachments",
            "requeued",
            "resumed",
            "complete",
            "failed",
            "pages",
            "chunks",
            "wall_s",
            "docs_per_s",
            "chunks_per_s",
            "embedding_cache_hits",
        ):
            table.add_row(name, str(getattr(summary, name)))
        for code, n in sorted(summary.failed_by_code.items()):
            table.add_row(f"failed: {code}", str(n))
        out.print(table)
        from docingest.services.info import where

        if summary.documents:  # none: the warning "no files to ingest" was printed already
            stored = summary.complete + summary.duplicates
            out.print(
                f'stored in {where(settings)}; search it with `docingest search "..."`'
                if stored
                else f"nothing was stored in {where(settings)}: every document failed (below)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        for f in summary.failures:
            out.print(
                f"[red]{escape(f['filename'])}[/red] {f['error_code']}: "
                f"{escape(f['error_message'] or '')}" + (f" (job {f['job_id']})" if f["job_id"] else ""),
                soft_wrap=True,
                highlight=False,
            )
        for w in summary.warnings:
            out.print(
                f"[yellow]warning:[/yellow] {escape(w['filename']) + ': ' if w['filename'] else ''}"
                f"{escape(w['message'])}",
                soft_wrap=True,
                highlight=False,
            )
    raise typer.Exit(1 if summary.failed else 0)
