"""The one typer ``app`` every command registers on, and what the commands share: the consoles,
the ``--version`` callback, the common options, settings and runtime set-up, error rendering."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape  # file names and messages are printed as-is, never as markup

from docingest.cli.mock import mock_app
from docingest.domain import State
from docingest.settings import Settings

if TYPE_CHECKING:
    from docingest.runtime import Runtime

app = typer.Typer(
    help="docingest: document ingestion for retrieval-augmented generation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)
out = Console()


def _print_version(value: bool) -> None:
    if value:
        from docingest.services.info import version

        out.print(f"docingest {version()}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """docingest: document ingestion for retrieval-augmented generation."""


def _check_user(value: str | None) -> str | None:
    if value is not None and not (1 <= len(value) <= 256 and value.isprintable() and value.strip()):
        raise typer.BadParameter("a user id is 1-256 printable characters, not blank")
    return value


UserOpt = typer.Option("local", "--user", help="the user whose documents these are", callback=_check_user)
VerboseOpt = typer.Option(False, "--verbose", "-v", help="log at info level (JSON lines on stderr)")


def _parse_meta(values: list[str] | None) -> dict[str, str]:
    """``--meta key=value`` options as a metadata object (values are strings).

    Raises:
        typer.BadParameter: an option without ``=`` or with an empty key, or an object that
            :func:`~docingest.services.documents.check_meta` refuses.
    """
    from docingest.services.documents import check_meta

    meta: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: write key=value")
        meta[key.strip()] = value
    try:
        return check_meta(meta)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _check_meta_option(values: list[str] | None) -> list[str] | None:
    """``--meta``'s callback: refuses what :func:`_parse_meta` refuses (a usage error, exit 2)
    and returns the options as given (typer would turn a dict returned here into its keys)."""
    _parse_meta(values)
    return values


MetaOpt = typer.Option(
    None,
    "--meta",
    metavar="KEY=VALUE",
    help="metadata for every document (repeatable)",
    callback=_check_meta_option,
)
SourcePrefixOpt = typer.Option(
    None,
    "--source-prefix",
    help="put before each file's path relative to the directory named (to keep several roots apart)",
)
#: ``--mode`` of search and eval, typed ``domain.Mode``: typer refuses another value (usage error, exit 2).
ModeOpt = typer.Option("hybrid", "--mode", help="vector or hybrid")


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
            for e in exc.errors()
        )
        _configuration_error(problems)
        raise typer.Exit(2) from exc
    except Exception as exc:
        _configuration_error(_one_line(exc))
        raise typer.Exit(2) from exc


def _configuration_error(message: str) -> None:
    """Print a configuration error with its code, as :func:`_exit_on_error` prints the others:
    ``configuration error: invalid_configuration: VARIABLE: what is wrong``."""
    from docingest.errors import InvalidConfiguration

    console.print(
        f"[red]configuration error:[/red] {InvalidConfiguration.error_code}: {escape(message)}",
        soft_wrap=True,
        highlight=False,
    )


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
            console.print(
                f"[yellow]warning:[/yellow] {name} is not a docingest setting, ignored{hint}",
                soft_wrap=True,
                highlight=False,
            )


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
        _configuration_error(
            f"UPLOAD_PIPELINE_DATA_DIR={path}: cannot use it as the data directory "
            f"({_one_line(exc)}); point it at a writable directory"
        )
        raise typer.Exit(2) from exc


def _runtime(settings: Settings | None = None) -> Runtime:
    """The process's Runtime with the database reachable; an operator mistake (data directory,
    database URL, database down) ends the command with one line and exit 2."""
    import psycopg

    from docingest.db.pool import database_url
    from docingest.runtime import Runtime

    settings = settings or _settings()
    _check_data_dir(settings)
    rt = Runtime(settings)
    where = (
        "UPLOAD_PIPELINE_DATABASE_URL"
        if settings.database_url
        else f"the embedded PostgreSQL under UPLOAD_PIPELINE_DATA_DIR={settings.data_dir}"
    )
    try:
        psycopg.connect(database_url(settings), connect_timeout=10).close()  # starts the embedded one
    except psycopg.ProgrammingError as exc:  # libpq could not parse the URL
        _configuration_error(
            f"UPLOAD_PIPELINE_DATABASE_URL is not a PostgreSQL URL ({_one_line(exc)}); use "
            "postgresql://USER:PASSWORD@HOST:5432/DBNAME, or unset it for the embedded database"
        )
        raise typer.Exit(2) from exc
    except (psycopg.Error, RuntimeError, OSError) as exc:
        from docingest.errors import DatabaseUnavailable

        console.print(
            f"[red]database error:[/red] {DatabaseUnavailable.error_code}: cannot connect to {where}: "
            f"{escape(_one_line(exc))}; check that PostgreSQL is running and the setting is right",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(2) from exc
    return rt


def _no_database_yet(settings: Settings) -> bool:
    """True when the database is the embedded one and its data dir has none yet (nothing was
    ever ingested there): a command that only reads then says so instead of creating one."""
    return not settings.database_url and not (settings.data_dir / "pg").exists()


def _explain_nothing_found(rt: Runtime, user: str | None, what: str) -> None:
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
        hint = (
            f"{unfinished} of {who}'s {mine['documents']} documents are still being processed: "
            "`docingest status` shows where they are (a worker must be running: `docingest worker`, "
            "or `docingest ingest` runs its own)"
        )
    elif mine["documents"]:
        hint = f"{who} has {mine['documents']} documents and none is complete: `docingest status` says why"
    else:
        others = mine["users"]
        hint = (
            f"{who} has no documents there; ingest some with `docingest ingest PATH`"
            + (
                f" (the data dir holds documents of {others} other user{'s' if others != 1 else ''}: "
                "pass --user)"
                if others and user is not None
                else ""
            )
            + ", or point UPLOAD_PIPELINE_DATA_DIR (or UPLOAD_PIPELINE_DATABASE_URL) at the data "
            "you ingested"
        )
    console.print(
        f"[yellow]{what}:[/yellow] looked in {escape(place)} for {escape(who)}; {escape(hint)}",
        soft_wrap=True,
        highlight=False,
    )


def _setup_logging(verbose: bool, *, job_lines: bool | None = None) -> None:
    """INFO with ``-v``, else WARNING; ``job_lines``: see ``logs.configure_logging``."""
    from docingest.observability.logs import configure_logging

    configure_logging(logging.INFO if verbose else logging.WARNING, job_lines=job_lines)


def _probe_embedder(rt: Runtime) -> None:
    """Render :func:`docingest.services.embedder_check.probe_embedder`: each transient failure as
    it happens; a refusal ends the command (exit 2); a failure that persists is a warning and
    the command starts anyway."""
    from docingest.errors import DocingestError
    from docingest.services.embedder_check import probe_embedder

    settings = rt.settings
    if settings.embedding_provider == "openai":
        console.print(
            f"probing the embedding provider at {settings.openai_base_url or 'api.openai.com'} "
            f"({settings.embedding_model}, {settings.embedding_dimensions} dimensions)",
            soft_wrap=True,
            highlight=False,
        )

    def on_retry(attempt: int, attempts: int, exc: DocingestError, delay: float) -> None:
        console.print(
            f"[yellow]embedder probe {attempt}/{attempts} failed:[/yellow] "
            f"{exc.error_code}: {escape(_one_line(exc))}; trying again in {delay:.1f} s",
            soft_wrap=True,
        )

    try:
        failed = probe_embedder(rt.check_embedder_dimensions, on_retry=on_retry)
    except DocingestError as exc:
        console.print(f"[red]embedder refused:[/red] {exc.error_code}: {escape(str(exc))}")
        rt.close()
        raise typer.Exit(2) from exc
    except ValueError as exc:
        console.print(f"[red]embedder refused:[/red] configuration: {escape(str(exc))}")
        rt.close()
        raise typer.Exit(2) from exc
    if failed is not None:
        console.print(
            f"[yellow]warning:[/yellow] embedder probe failed ({failed.error_code}: "
            f"{_one_line(failed)}); starting anyway, replies are checked per batch",
            soft_wrap=True,
        )


# --- mock servers: docingest mock openai|llamaparse ---------------------------------
app.add_typer(mock_app, name="mock")
