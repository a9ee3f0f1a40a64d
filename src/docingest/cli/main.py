"""The ``docingest`` command line (typer): ingest, search, eval, status, retry, delete, worker,
migrate, serve, token, storage."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Self
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape  # file names and messages are printed as-is, never as markup
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
from rich.table import Column, Table
from rich.text import Text

from docingest.cli.mock import mock_app
from docingest.domain import State
from docingest.services.progress import IngestSnapshot, clock, duration
from docingest.settings import Settings

app = typer.Typer(help="docingest: document ingestion for retrieval-augmented generation.",
                  no_args_is_help=True, add_completion=False,
                  pretty_exceptions_show_locals=False)
console = Console(stderr=True)
out = Console()


def _print_version(value: bool) -> None:
    if value:
        from docingest.services.info import version

        out.print(f"docingest {version()}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="print the version and exit"),
) -> None:
    """docingest: document ingestion for retrieval-augmented generation."""

def _check_user(value: str | None) -> str | None:
    if value is not None and not (1 <= len(value) <= 256 and value.isprintable() and value.strip()):
        raise typer.BadParameter("a user id is 1-256 printable characters, not blank")
    return value


UserOpt = typer.Option("local", "--user", help="the user whose documents these are",
                       callback=_check_user)
VerboseOpt = typer.Option(False, "--verbose", "-v", help="log at info level (JSON lines on stderr)")


def _settings() -> Settings:
    """The settings from the environment; a configuration error ends the command (exit 2)."""
    from pydantic import ValidationError

    _warn_unknown_settings()
    try:
        return Settings()
    except ValidationError as exc:  # name the environment variables a user sets, not the fields
        prefix = Settings.model_config.get("env_prefix", "")
        problems = "; ".join(
            (f"{prefix}{'_'.join(str(p) for p in e['loc']).upper()}: " if e["loc"] else "") + e["msg"]
            for e in exc.errors())
        console.print(f"[red]configuration error:[/red] {problems}", soft_wrap=True)
        raise typer.Exit(2) from exc
    except Exception as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _exit_on_error(exc: BaseException) -> None:
    """End a query command with one line for the errors a user can act on; return otherwise.

    A :class:`~docingest.errors.DocingestError` prints its ``error_code`` and message: exit 2
    for bad input (a ``RequestError`` such as ``query_too_long``), 1 for a failure elsewhere
    (``embedding_unavailable``: the provider is down). A ``ValueError`` (an empty query, a
    malformed questions file) exits 2. Anything else returns, for the caller to re-raise.
    """
    from docingest.errors import DocingestError, RequestError

    if isinstance(exc, DocingestError):
        console.print(f"[red]error:[/red] {exc.error_code}: {escape(_one_line(exc))}", soft_wrap=True)
        raise typer.Exit(2 if isinstance(exc, RequestError) else 1) from exc
    if isinstance(exc, ValueError):
        console.print(f"[red]error:[/red] {escape(_one_line(exc))}", soft_wrap=True)
        raise typer.Exit(2) from exc


def _warn_unknown_settings() -> None:
    """Warn about ``UPLOAD_PIPELINE_*`` variables, in the environment or the ``.env`` file
    Settings reads, that name no setting (a typo is otherwise silent)."""
    import difflib
    import os

    from dotenv import dotenv_values  # python-dotenv: what pydantic-settings reads .env with

    prefix = Settings.model_config.get("env_prefix", "")
    known = {prefix + name.upper() for name in Settings.model_fields}
    env_file = Settings.model_config.get("env_file")
    in_file = dotenv_values(env_file) if isinstance(env_file, str) and Path(env_file).is_file() else {}
    for name in sorted(set(os.environ) | set(in_file)):
        if name.upper().startswith(prefix) and name.upper() not in known:
            close = difflib.get_close_matches(name.upper(), known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            console.print(f"[yellow]warning:[/yellow] {name} is not a docingest setting, ignored{hint}",
                          soft_wrap=True, highlight=False)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_data_dir(settings: Settings) -> None:
    """Create the data directory; a path that cannot be one ends the command (exit 2)."""
    path = settings.data_dir
    try:
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"{path} exists and is not a directory")
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        console.print(f"[red]configuration error:[/red] UPLOAD_PIPELINE_DATA_DIR={path}: cannot use it as "
                      f"the data directory ({_one_line(exc)}); point it at a writable directory", soft_wrap=True)
        raise typer.Exit(2) from exc


def _runtime(settings: Settings | None = None) -> Any:
    """The process's Runtime with the database reachable; an operator mistake (data directory,
    database URL, database down) ends the command with one line and exit 2."""
    import psycopg

    from docingest.db.pool import database_url
    from docingest.runtime import Runtime

    settings = settings or _settings()
    _check_data_dir(settings)
    rt = Runtime(settings)
    where = "UPLOAD_PIPELINE_DATABASE_URL" if settings.database_url else \
        f"the embedded PostgreSQL under UPLOAD_PIPELINE_DATA_DIR={settings.data_dir}"
    try:
        psycopg.connect(database_url(settings), connect_timeout=10).close()  # starts the embedded one
    except psycopg.ProgrammingError as exc:  # libpq could not parse the URL
        console.print(f"[red]configuration error:[/red] UPLOAD_PIPELINE_DATABASE_URL is not a PostgreSQL "
                      f"URL ({_one_line(exc)}); use postgresql://USER:PASSWORD@HOST:5432/DBNAME, or unset "
                      "it for the embedded database", soft_wrap=True)
        raise typer.Exit(2) from exc
    except (psycopg.Error, RuntimeError, OSError) as exc:
        console.print(f"[red]database error:[/red] cannot connect to {where}: {_one_line(exc)}; "
                      "check that PostgreSQL is running and the setting is right", soft_wrap=True)
        raise typer.Exit(2) from exc
    return rt


def _no_database_yet(settings: Settings) -> bool:
    """True when the database is the embedded one and its data dir has none yet (nothing was
    ever ingested there): a command that only reads then says so instead of creating one."""
    return not settings.database_url and not (settings.data_dir / "pg").exists()


def _explain_nothing_found(rt: Any, user: str | None, what: str) -> None:
    """Say on stderr where a search or status that found nothing looked, and what to do.

    Names the data directory (and database) and the user; tells apart a user with no
    documents, one whose documents are still being processed, and a data directory whose
    documents belong to other users.
    """
    import psycopg

    from docingest.services.info import where

    try:
        mine = rt.documents.inventory(user)
    except psycopg.Error:  # the hint is best effort: the command itself already succeeded
        mine = {"documents": 0, "users": 0, "jobs_by_state": {}}
    who = f"user {user!r}" if user is not None else "any user"
    place = where(rt.settings)
    unfinished = sum(n for state, n in mine["jobs_by_state"].items() if not State.is_terminal(state))
    if mine["documents"] and unfinished:
        hint = (f"{unfinished} of {who}'s {mine['documents']} documents are still being processed: "
                "`docingest status` shows where they are (a worker must be running: `docingest worker`, "
                "or `docingest ingest` runs its own)")
    elif mine["documents"]:
        hint = f"{who} has {mine['documents']} documents and none is complete: `docingest status` says why"
    else:
        others = mine["users"]
        hint = (f"{who} has no documents there; ingest some with `docingest ingest PATH`"
                + (f" (the data dir holds documents of {others} other user{'s' if others != 1 else ''}: "
                   "pass --user)" if others and user is not None else "")
                + ", or point UPLOAD_PIPELINE_DATA_DIR (or UPLOAD_PIPELINE_DATABASE_URL) at the data "
                  "you ingested")
    console.print(f"[yellow]{what}:[/yellow] looked in {escape(place)} for {escape(who)}; {escape(hint)}",
                  soft_wrap=True, highlight=False)


def _setup_logging(verbose: bool, *, job_lines: bool | None = None) -> None:
    """INFO with ``-v``, else WARNING; ``job_lines``: see ``logs.configure_logging``."""
    from docingest.observability.logs import configure_logging

    configure_logging(logging.INFO if verbose else logging.WARNING, job_lines=job_lines)


def _uvicorn_logging(verbose: bool) -> dict[str, Any]:
    """uvicorn's logging options: its lines go through ``logs.configure_logging``'s handler
    (JSON, redacted: no signed URL's token in the access log), access lines only with ``-v``."""
    return {"log_config": None, "log_level": "info" if verbose else "warning", "access_log": verbose}


@app.command()
def migrate() -> None:
    """Apply the database migrations (the embedded database is migrated automatically)."""
    rt = _runtime()
    applied = rt.apply_migrations()
    out.print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")


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
        os.write(2, f"\n{self.interrupted}: releasing held jobs when their current step reaches a "
                    "checkpoint (seconds; longer while a large file is parsed or chunked)...\n".encode())
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
    as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON object"),
    verbose: bool = VerboseOpt,
) -> None:
    """Ingest files: parse, chunk, embed and store them; exit 1 when any document failed.

    Ctrl-C, SIGTERM and SIGHUP stop it the same way: the jobs it holds are released (claimable
    at once), and it exits 130, 143 or 129 (128 + the signal's number).
    """
    _setup_logging(verbose, job_lines=verbose)  # job lines would break through the bar
    with _StopSignals() as stop:
        try:
            rt = _runtime()
        except KeyboardInterrupt as exc:  # nothing registered yet: nothing to release
            console.print(f"[yellow]{stop.interrupted}:[/yellow] before any file was registered; "
                          "run the same command again to start", soft_wrap=True)
            raise typer.Exit(stop.exit_code) from exc
        try:
            _probe_embedder(rt)
        except KeyboardInterrupt as exc:
            rt.close()
            console.print(f"[yellow]{stop.interrupted}:[/yellow] while probing the embedder, before any "
                          "file was registered; run the same command again to start", soft_wrap=True)
            raise typer.Exit(stop.exit_code) from exc
        summary = _ingest_with_progress(rt, paths, user=user, concurrency=concurrency, as_json=as_json,
                                        stop=stop)
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
            _DetailColumn(), **kwargs)

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
    bar.update(task, total=max(snap.work_total, 1e-9), completed=snap.work_done, detail=", ".join(parts),
               elapsed=clock(snap.elapsed_s))
    bar.note = snap.note()


def _ingest_with_progress(rt: Any, paths: list[Path], *, user: str, concurrency: int, as_json: bool,
                          stop: _StopSignals) -> Any:
    """Run :func:`docingest.services.ingest.ingest` under a progress display; closes ``rt``.

    On a terminal: a bar (:class:`_IngestBar`). Otherwise (a pipe, a CI log): a plain line on
    stderr every :data:`PLAIN_PROGRESS_SECONDS` (:meth:`IngestSnapshot.line`).
    """
    from docingest.services.ingest import IngestInterrupted
    from docingest.services.ingest import ingest as run_ingest

    live = console.is_terminal
    with _IngestBar(console=console, transient=as_json, disable=not live) as bar:
        task = bar.add_task("ingesting", total=None, detail="registering files", elapsed="")
        printed = [float("-inf")]

        def on_progress(snap: IngestSnapshot) -> None:
            if live:
                _show_snapshot(bar, task, snap)
            elif snap.elapsed_s - printed[0] >= PLAIN_PROGRESS_SECONDS:
                printed[0] = snap.elapsed_s
                console.print(snap.line(), markup=False, highlight=False, soft_wrap=True)

        try:
            summary = run_ingest(rt, paths, user_id=user, concurrency=concurrency,
                                 on_progress=on_progress)
        except FileNotFoundError as exc:
            bar.update(task, visible=False)  # nothing was registered: no bar after the error
            bar.stop()
            console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)  # a path in one piece
            raise typer.Exit(2) from exc
        except IngestInterrupted as exc:
            bar.stop()
            console.print(f"[yellow]{stop.interrupted}:[/yellow] {exc.unfinished} documents not finished; "
                          "run the same command again to resume", soft_wrap=True)
            raise typer.Exit(stop.exit_code) from exc
        except KeyboardInterrupt as exc:  # outside ingest's loop (listing files, its last reads)
            bar.stop()
            console.print(f"[yellow]{stop.interrupted}:[/yellow] run the same command again to resume",
                          soft_wrap=True)
            raise typer.Exit(stop.exit_code) from exc
        finally:
            rt.close()
    return summary


def _print_ingest_summary(summary: Any, paths: list[Path], *, as_json: bool, settings: Settings) -> None:
    if not summary.documents:
        console.print(f"[yellow]warning:[/yellow] no files to ingest under {escape(', '.join(map(str, paths)))} "
                      "(hidden files and folders are skipped)", soft_wrap=True, highlight=False)
    if as_json:
        out.print_json(json.dumps(summary.to_dict()))
    else:
        table = Table(title="docingest ingest")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for name in ("documents", "new", "duplicates", "requeued", "resumed", "complete", "failed", "pages", "chunks",
                     "wall_s", "docs_per_s", "chunks_per_s", "embedding_cache_hits"):
            table.add_row(name, str(getattr(summary, name)))
        for code, n in sorted(summary.failed_by_code.items()):
            table.add_row(f"failed: {code}", str(n))
        out.print(table)
        from docingest.services.info import where

        out.print(f"stored in {where(settings)}; search it with `docingest search \"...\"`",
                  markup=False, highlight=False, soft_wrap=True)
        for f in summary.failures:
            out.print(f"[red]{escape(f['filename'])}[/red] {f['error_code']}: "
                      f"{escape(f['error_message'] or '')} (job {f['job_id']})", soft_wrap=True, highlight=False)
        for w in summary.warnings:
            out.print(f"[yellow]warning:[/yellow] {escape(w['filename'])}: {escape(w['message'])}",
                      soft_wrap=True, highlight=False)
    raise typer.Exit(1 if summary.failed else 0)


@app.command()
def search(
    query: str = typer.Argument(..., help="the question"),
    k: int = typer.Option(5, "-k", min=1, max=100, help="results to return"),
    mode: str = typer.Option("hybrid", "--mode", help="vector or hybrid"),
    user: str = UserOpt,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Search your chunks; prints filename, page, score and a snippet."""
    if mode not in ("vector", "hybrid"):
        console.print("[red]error:[/red] --mode must be vector or hybrid")
        raise typer.Exit(2)
    rt = _runtime()
    try:
        hits = rt.searcher().search(query, user_id=user, k=k, mode=mode)
        if not hits:  # stderr: --json's stdout stays the (empty) list
            _explain_nothing_found(rt, user, "no results")
    except Exception as exc:
        _exit_on_error(exc)
        raise
    finally:
        rt.close()
    if as_json:
        out.print_json(json.dumps([h.to_dict() for h in hits]))
    if as_json or not hits:
        return
    table = Table()
    for col in ("#", "file", "page", "score", "text"):
        table.add_column(col)
    for i, h in enumerate(hits, start=1):
        snippet = " ".join(h.text.split())[:160]
        table.add_row(str(i), escape(h.filename), str(h.page or ""), f"{h.score:.4f}", escape(snippet))
    out.print(table)


@app.command("eval")
def eval_(
    questions: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSON-lines questions"),
    mode: str = typer.Option("hybrid", "--mode", help="vector or hybrid"),
    user: str = UserOpt,
    as_json: bool = typer.Option(False, "--json"),
    results_out: Path | None = typer.Option(None, "--results-out",
                                               help="write each question's top 20 results here"),
) -> None:
    """Retrieval figures: doc recall@1, recall@5, MRR@5 and context-hit."""
    from docingest.services.evaluation import complete_filenames, evaluate, load_questions, unanswerable

    if results_out is not None and not results_out.parent.is_dir():
        console.print(f"[red]error:[/red] --results-out: no such directory {results_out.parent}")
        raise typer.Exit(2)
    rt = _runtime()
    try:
        loaded = load_questions(questions)
        missing = unanswerable(loaded, complete_filenames(rt.documents, user))
        if missing:
            console.print(f"[yellow]warning:[/yellow] {len(missing)} of {len(loaded)} questions expect only "
                          f"files user {user!r} has no complete document for (first: "
                          f"{', '.join(missing[0].expected)}); they score 0", soft_wrap=True)
        figures, records = evaluate(rt.searcher(), loaded, user_id=user,
                                    mode=mode)  # type: ignore[arg-type]
    except Exception as exc:
        _exit_on_error(exc)
        raise
    finally:
        rt.close()
    if results_out:
        results_out.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    figures["mode"] = mode  # type: ignore[assignment]
    if as_json:
        out.print_json(json.dumps(figures))
        return
    table = Table(title=f"retrieval ({mode})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, str(value))
    out.print(table)


@app.command()
def status(
    user: str | None = typer.Option(None, "--user", help="only this user's jobs"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Every job's stage, state, attempts and error.

    A job ``working`` under an expired lease (its process died or hung) shows as ``stalled``,
    without an ETA; in ``--json`` its ``state`` stays as stored, with ``stalled: true``.
    """
    from docingest.services.progress import format_progress

    settings = _settings()
    if _no_database_yet(settings):  # a read-only look creates no database
        console.print(f"[yellow]no jobs:[/yellow] nothing has been ingested in data dir {escape(str(settings.data_dir))} "
                      "yet (it has no database); ingest with `docingest ingest PATH`, or point "
                      "UPLOAD_PIPELINE_DATA_DIR at the data dir you ingested into", soft_wrap=True, highlight=False)
        if as_json:
            out.print_json("[]")
        return
    rt = _runtime(settings)
    try:
        rows = rt.documents.statuses(user_id=user)
        if not rows:
            _explain_nothing_found(rt, user, "no jobs")
    finally:
        rt.close()
    if not rows:
        if as_json:
            out.print_json("[]")
        return
    if as_json:
        out.print_json(json.dumps([r.to_dict() for r in rows], default=str))
        return
    table = Table()
    for col in ("file", "stage", "state", "progress", "attempts", "error"):
        table.add_column(col, overflow="fold")  # every letter shown, none cut to an ellipsis
    # Whole where it fits beside the rest (it is copied into `docingest retry`); at 80 columns it
    # folds, or the other columns would fold to a few letters a line (ids are whole in --json).
    table.add_column("job", **({"no_wrap": True, "min_width": 36} if out.width >= 120 else {"overflow": "fold"}))
    for r in rows:
        table.add_row(escape(r.filename), r.stage, "[red]stalled[/red]" if r.stalled else r.state,
                      format_progress(r.progress), str(r.attempts), r.error_code or "", r.job_id)
    out.print(table)
    # The messages at full width under the table: in a column they wrapped to a few letters a line.
    for r in rows:
        if r.error_code:
            out.print(f"{r.filename} (job {r.job_id}): {r.error_code}: {r.error_message}",
                      soft_wrap=True, highlight=False, markup=False)


@app.command()
def info(
    user: str = UserOpt,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Version, data dir, database, storage, parser, embedder, and the user's documents, jobs
    by state and chunks."""
    from docingest.services.info import collect, describe

    settings = _settings()
    if _no_database_yet(settings):  # a read-only look creates no database
        found = describe(settings, user=user)
        found.database += " (not created yet: nothing has been ingested here)"
    else:
        rt = _runtime(settings)
        try:
            found = collect(rt.settings, rt.documents, user=user)
        finally:
            rt.close()
    if as_json:
        out.print_json(json.dumps(found.to_dict()))
        return
    rows = [("version", found.version), ("data dir", found.data_dir), ("database", found.database),
            ("storage", found.storage), ("parser", found.parser),
            ("embedder", f"{found.embedder}, {found.embedding_dimensions} dimensions"
             + (f"; backend {found.embedding_backend}" if found.embedding_backend else "")),
            *([("models", found.models_dir)] if found.models_dir else []),
            ("user", str(found.user)), ("documents", str(found.documents)),
            ("jobs", ", ".join(f"{n} {state}" for state, n in found.jobs_by_state.items()) or "none"),
            ("chunks", str(found.chunks)), ("users with documents", str(found.users))]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        out.print(f"{name:<{width}}  {value}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def retry(job_id: UUID = typer.Argument(..., help="the failed job")) -> None:
    """Requeue a failed job from its last good stage (as POST /jobs/{id}/retry). A job whose file
    was never stored, or was deleted when refused, needs the file: ingest it again."""
    from docingest.errors import Conflict, NotFound

    rt = _runtime()
    try:
        job, _ = rt.documents.retry(job_id, via="cli")
    except NotFound as exc:
        console.print(f"[red]error:[/red] no failed job {job_id}")
        raise typer.Exit(1) from exc
    except Conflict as exc:  # not failed, or its file is needed again
        console.print(f"[red]error:[/red] {escape(exc.message)}", soft_wrap=True)
        raise typer.Exit(1) from exc
    finally:
        rt.close()
    out.print(f"job {job.job_id} queued again at stage {job.stage.value}")


@app.command()
def delete(
    document_ids: list[UUID] = typer.Argument(..., help="the documents (document_id in `docingest status --json`)"),
    user: str = UserOpt,
) -> None:
    """Delete documents: their stored file, parsed text, chunks, vectors, jobs and events
    (what the API's DELETE /api/v2/documents/{id} does); exit 1 when an id is unknown."""
    from docingest.errors import NotFound

    rt = _runtime()
    missing = 0
    try:
        for document_id in dict.fromkeys(document_ids):
            try:
                doc = rt.documents.delete(user, document_id)
            except NotFound:
                missing += 1
                console.print(f"[red]error:[/red] no document {document_id} for user {user!r} (see "
                              f"`docingest status --json --user {user}` for document ids)", soft_wrap=True)
                continue
            out.print(f"deleted {document_id} ({doc.filename})", markup=False, highlight=False)
    finally:
        rt.close()
    raise typer.Exit(1 if missing else 0)


@app.command()
def worker(
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, max=64,
                                    help="slots in this process"),
    verbose: bool = VerboseOpt,
    metrics_port: int | None = typer.Option(None, "--metrics-port", min=0, max=65535,
                                               help="serve Prometheus /metrics on this port"),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host",
                                     help="address for /metrics (0.0.0.0 to be scraped from elsewhere)"),
) -> None:
    """Run a worker until SIGTERM, SIGINT or SIGHUP: stop claiming, release held jobs, exit.

    Logs one line per job outcome (complete, failed, retry scheduled) and lease takeover.
    """
    _setup_logging(verbose, job_lines=True)
    rt = _runtime()
    _probe_embedder(rt)
    w = rt.worker(concurrency=concurrency)
    if metrics_port is not None:
        from docingest.observability.metrics import start_metrics_server

        server, _ = start_metrics_server(metrics_port, metrics_host, count_jobs=rt.documents.job_counts)
        console.print(f"metrics on http://{metrics_host}:{server.server_port}/metrics")

    def _stop(signum: int, frame: Any) -> None:
        if not w.stopping.is_set():
            os.write(2, f"worker {w.worker_id}: {signal.Signals(signum).name}: stopping; held jobs are "
                        "released at their next checkpoint\n".encode())
        w.stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # SIGHUP: a closed terminal
        signal.signal(signum, _stop)
    console.print(f"worker {w.worker_id}: {concurrency} slots")
    from docingest.services.documents import UploadSweeper

    # finds uploads that arrived, expires those that did not
    sweeper = UploadSweeper(rt.documents, rt.settings.upload_sweep_seconds)
    sweeper.start()
    try:
        w.run_forever()
    finally:
        sweeper.stop()
        rt.close()
    console.print(f"worker {w.worker_id} stopped", highlight=False)


@app.command()
def serve(
    host: str | None = typer.Option(None, "--host", help="default: UPLOAD_PIPELINE_API_HOST (127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", min=0, max=65535,
                                    help="default: UPLOAD_PIPELINE_API_PORT (8000)"),
    worker_slots: int = typer.Option(0, "--worker-slots", min=0, max=64,
                                     help="also run this many worker slots in the API process"),
    verbose: bool = VerboseOpt,
) -> None:
    """Run the HTTP API (FastAPI under uvicorn); OpenAPI at /openapi.json.

    With --worker-slots, logs one line per job outcome, as ``docingest worker`` does.
    """
    import uvicorn

    from docingest.api.app import create_app
    from docingest.api.public_url import exposure_warnings, uses_request_host

    _setup_logging(verbose, job_lines=True)
    # SIGTERM like SIGINT: uvicorn captures both, shuts down gracefully, then raises the signal
    # again with our handler back in place; KeyboardInterrupt runs the finally below and the exit
    # handlers (the embedded PostgreSQL's), where the default SIGTERM action would skip them.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    update = {k: v for k, v in (("api_host", host), ("api_port", port)) if v is not None}
    settings = _settings().model_copy(update=update)
    rt = _runtime(settings)
    worker_ = rt.worker(concurrency=worker_slots) if worker_slots else None
    if worker_ is not None:
        worker_.start()
    public = "the host each client calls" if uses_request_host(settings) else settings.api_base_url()
    console.print(f"docingest API on http://{settings.api_host}:{settings.api_port} "
                  f"(storage: {settings.storage_backend}, public URL {public})", soft_wrap=True)
    for warning in exposure_warnings(settings):
        console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
    try:
        # proxy_headers: uvicorn's own X-Forwarded-* handling follows TRUST_FORWARDED too
        uvicorn.run(create_app(rt), host=settings.api_host, port=settings.api_port,
                    proxy_headers=settings.trust_forwarded, timeout_graceful_shutdown=10,
                    **_uvicorn_logging(verbose))
    except KeyboardInterrupt:  # a signal before uvicorn took over (it handles those after, and returns)
        pass
    finally:
        if worker_ is not None:
            worker_.stop()
        rt.close()
    console.print("docingest API stopped")


@app.command()
def token(
    user: str | None = typer.Option(None, "--user", help="the user id (the token's sub)"),
    ttl: int = typer.Option(3600, "--ttl", min=1, help="lifetime in seconds"),
    service_role: bool = typer.Option(False, "--service-role",
                                      help="a storage service-role key instead of a user token"),
) -> None:
    """Print a development token signed with UPLOAD_PIPELINE_JWT_SECRET (the token alone)."""
    from docingest.api.auth import mint_service_key, mint_token

    settings = _settings()
    if service_role:
        print(mint_service_key(settings.jwt_secret, ttl_seconds=ttl))
        return
    if not user:
        console.print("[red]error:[/red] --user is required")
        raise typer.Exit(2)
    print(mint_token(settings.jwt_secret, user_id=user, ttl_seconds=ttl, audience=settings.jwt_audience))


@app.command("storage")
def storage_service(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(5000, "--port", min=0, max=65535),
    verbose: bool = VerboseOpt,
) -> None:
    """Run the local storage service alone (Supabase Storage's REST contract under /storage/v1)."""
    import uvicorn

    from docingest.api.app import create_storage_app

    _setup_logging(verbose)
    settings = _settings()
    _check_data_dir(settings)
    console.print(f"docingest storage on http://{host}:{port}/storage/v1 (bucket {settings.storage_bucket}, "
                  f"{settings.storage_dir})")
    uvicorn.run(create_storage_app(settings), host=host, port=port, **_uvicorn_logging(verbose))
@app.command("errors")
def errors_() -> None:
    """Print the table of error codes (code, meaning, retried, what to do) as Markdown."""
    from docingest.errors import error_table_markdown

    out.print(error_table_markdown(), markup=False, highlight=False, soft_wrap=True)
def _probe_embedder(rt: Any) -> None:
    """Render :func:`docingest.services.embedder_check.probe_embedder`: each transient failure as
    it happens; a refusal ends the command (exit 2); a failure that persists is a warning and
    the command starts anyway."""
    from docingest.errors import DocingestError
    from docingest.services.embedder_check import probe_embedder

    settings = rt.settings
    if settings.embedding_provider == "openai":
        console.print(f"probing the embedding provider at {settings.openai_base_url or 'api.openai.com'} "
                      f"({settings.embedding_model}, {settings.embedding_dimensions} dimensions)",
                      soft_wrap=True, highlight=False)

    def on_retry(attempt: int, attempts: int, exc: DocingestError, delay: float) -> None:
        console.print(f"[yellow]embedder probe {attempt}/{attempts} failed:[/yellow] "
                      f"{exc.error_code}: {_one_line(exc)}; trying again in {delay:.1f} s", soft_wrap=True)

    try:
        failed = probe_embedder(rt.check_embedder_dimensions, on_retry=on_retry)
    except DocingestError as exc:
        console.print(f"[red]embedder refused:[/red] {exc.error_code}: {exc}")
        rt.close()
        raise typer.Exit(2) from exc
    except ValueError as exc:
        console.print(f"[red]embedder refused:[/red] configuration: {exc}")
        rt.close()
        raise typer.Exit(2) from exc
    if failed is not None:
        console.print(f"[yellow]warning:[/yellow] embedder probe failed ({failed.error_code}: "
                      f"{_one_line(failed)}); starting anyway, replies are checked per batch", soft_wrap=True)


# --- mock servers: docingest mock openai|llamaparse ---------------------------------
app.add_typer(mock_app, name="mock")


@app.command("prepare-embedder")
def prepare_embedder(
    backend: str | None = typer.Option(
        None, "--backend",
        help="auto, onnx, onnx-int8, torch or torch-bf16; default: UPLOAD_PIPELINE_EMBEDDING_BACKEND"),
) -> None:
    """Make the local model ready ahead of first use (workers do it otherwise): export it to ONNX
    into UPLOAD_PIPELINE_MODELS_DIR (default DATA_DIR/models) and load it once. ``auto`` prepares
    the backends it picks for documents and for queries."""
    from docingest.providers.embedding.local import make_local_embedder, resolve_backend

    settings = _settings()
    _check_data_dir(settings)
    name = backend or settings.embedding_backend
    names = list(dict.fromkeys(resolve_backend(name, purpose) for purpose in ("documents", "queries")))
    try:
        for each in names:
            make_local_embedder(each, cache_dir=settings.model_cache_dir).embed(["docingest warm-up"])
    except (ValueError, RuntimeError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    out.print(f"{' and '.join(names)} ready under {settings.model_cache_dir}")


def main() -> None:
    """The console script: run the command; a database that is not migrated is a one-line error."""
    from docingest.errors import DatabaseNotMigrated

    try:
        app()
    except DatabaseNotMigrated as exc:
        console.print(f"[red]database error:[/red] {exc}", soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
