"""The commands that read what was ingested: ``search``, ``eval``, ``status`` and ``info``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.markup import escape
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from docingest.cli.app import (
    ModeOpt,
    UserOpt,
    _exit_on_error,
    _explain_nothing_found,
    _no_database_yet,
    _runtime,
    _settings,
    app,
    console,
    out,
)
from docingest.domain import MAX_CONTEXT, Mode

if TYPE_CHECKING:
    from docingest.runtime import Runtime
    from docingest.services.filters import SearchFilter
    from docingest.services.search import SearchHit


def _check_score(value: float | None) -> float | None:
    """``--min-score``: a cosine similarity, a number from -1 to 1 (``nan`` is refused by name:
    a range check alone would say it is over 1)."""
    if value is not None and not -1.0 <= value <= 1.0:
        raise typer.BadParameter(f"a cosine similarity is a number from -1 to 1, not {value:g}")
    return value


WhereOpt = typer.Option(
    None,
    "--where",
    metavar="KEY=VALUE",
    help="only documents whose metadata KEY equals VALUE (compared as text: year=2024 matches 2024 and "
    '"2024"; a list value matches when it holds VALUE); repeatable: other keys AND, the same key twice OR',
)
FilterSourcePrefixOpt = typer.Option(
    None,
    "--source-prefix",
    metavar="PREFIX",
    help="only documents whose source (path for ingest) starts with this",
)
DocumentIdOpt = typer.Option(
    None, "--document-id", metavar="ID", help="only this document (repeatable: any of them)"
)
MimeOpt = typer.Option(
    None, "--mime", metavar="TYPE", help="only documents of this MIME type, e.g. application/pdf (repeatable)"
)
CreatedAfterOpt = typer.Option(
    None,
    "--created-after",
    metavar="TIME",
    help="only documents registered at or after this ISO 8601 time (no offset: UTC)",
)
CreatedBeforeOpt = typer.Option(
    None, "--created-before", metavar="TIME", help="only documents registered before this time"
)
UpdatedAfterOpt = typer.Option(
    None, "--updated-after", metavar="TIME", help="only documents updated at or after this time"
)
UpdatedBeforeOpt = typer.Option(
    None, "--updated-before", metavar="TIME", help="only documents updated before this time"
)


def _filter(
    where: list[str] | None,
    source_prefix: str | None,
    document_id: list[str] | None,
    mime: list[str] | None,
    created_after: str | None,
    created_before: str | None,
    updated_after: str | None,
    updated_before: str | None,
) -> SearchFilter:
    """The search filter of the command's options; a refused one ends the command with its
    ``error_code`` (``invalid_filter``: a ``--where`` without ``=``, a value
    :meth:`SearchFilter.build` refuses; exit 2) as every query error does (``_exit_on_error``)."""
    from docingest.services.filters import SearchFilter, parse_where

    try:
        return SearchFilter.build(
            source_prefix=source_prefix,
            document_ids=document_id or None,
            meta=parse_where(where or []),
            mime=mime or None,
            created_after=created_after,
            created_before=created_before,
            updated_after=updated_after,
            updated_before=updated_before,
        )
    except Exception as exc:
        _exit_on_error(exc)
        raise


@app.command()
def search(
    query: str = typer.Argument(..., help="the question"),
    k: int = typer.Option(5, "-k", min=1, max=100, help="results to return"),
    mode: Mode = ModeOpt,
    min_score: float | None = typer.Option(
        None,
        "--min-score",
        callback=_check_score,
        help="drop hits whose cosine score is below this",
    ),
    context: int = typer.Option(
        0,
        "--context",
        "-C",
        min=0,
        max=MAX_CONTEXT,
        help="also show this many chunks before and after each hit (merged where hits are close)",
    ),
    where: list[str] | None = WhereOpt,
    source_prefix: str | None = FilterSourcePrefixOpt,
    document_id: list[str] | None = DocumentIdOpt,
    mime: list[str] | None = MimeOpt,
    created_after: str | None = CreatedAfterOpt,
    created_before: str | None = CreatedBeforeOpt,
    updated_after: str | None = UpdatedAfterOpt,
    updated_before: str | None = UpdatedBeforeOpt,
    user: str = UserOpt,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Search your chunks; prints filename, page, score (cosine similarity to the question) and a
    snippet, or with --context each hit's passage: the hit with its neighbouring chunks.
    --where, --source-prefix, --document-id, --mime and the time options search only the
    documents they match (all of them must hold)."""
    f = _filter(
        where, source_prefix, document_id, mime, created_after, created_before, updated_after, updated_before
    )
    rt = _runtime()
    try:
        searcher = rt.searcher()
        hits = searcher.search(
            query, user_id=user, k=k, mode=mode, min_score=min_score, context=context, filter=f
        )
        if (
            not hits
            and min_score is not None
            and searcher.search(query, user_id=user, k=1, mode=mode, filter=f)
        ):
            # stderr: --json's stdout stays the (empty) list
            console.print(
                f"no results at or above --min-score {min_score:g}: every hit's score (cosine similarity) "
                "is lower; lower --min-score or leave it out",
                soft_wrap=True,
                highlight=False,
            )
        elif not hits and not f.empty and searcher.search(query, user_id=user, k=1, mode=mode):
            _say_the_filter_matches_nothing(rt, user, "no results")
        elif not hits:
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
    if context:
        _print_passages(hits)
        return
    table = Table()
    for col in ("#", "file", "page", "score", "text"):
        table.add_column(col)
    for h in hits:
        snippet = " ".join(h.text.split())[:160]
        pages = (
            ""
            if h.page is None
            else str(h.page)
            if h.page_end in (None, h.page)
            else f"{h.page}-{h.page_end}"
        )
        table.add_row(str(h.rank), escape(h.name), pages, f"{h.score:.2f}", escape(snippet))
    out.print(table)


def _say_the_filter_matches_nothing(rt: Runtime, user: str, what: str) -> None:
    """Say on stderr that the filter matched none of ``user``'s searched chunks, and how many
    of their chunks are not searched yet: embedded by a generation that does not serve them
    (they wait for ``docingest reembed``; :func:`docingest.services.reembed.coverage`)."""
    import psycopg

    from docingest.services.reembed import coverage

    try:
        generations = coverage(rt.database, rt.repo, user)
    except psycopg.Error:  # the hint is best effort: the command itself already succeeded
        generations = []
    others = [g for g in generations if g.chunks and not g.serving_users]
    waiting = sum(g.chunks for g in others)
    if waiting and any(g.serving_users for g in generations):
        labels = ", ".join(g.label for g in others)
        message = (
            f"{what}: none of your searched documents matches the filter (--where, --source-prefix, "
            f"--document-id, --mime, the times); {waiting} chunk{'s' if waiting != 1 else ''} of your "
            f"documents wait for `docingest reembed` (embedded by {labels}) and are not searched "
            "until then; run it, or loosen the filter"
        )
    else:
        message = (
            f"{what}: none of your documents matches the filter (--where, --source-prefix, "
            "--document-id, --mime, the times); loosen it or leave it out"
        )
    console.print(escape(message), soft_wrap=True, highlight=False)


def _pages(first: int | None, last: int | None) -> str:
    if first is None:
        return ""
    return f"page {first}" if last in (None, first) else f"pages {first}-{last}"


class _Unpadded:
    """``inner`` rendered without the spaces rich pads its lines with (a grid pads every line to
    its columns' width), so text copied from the terminal has no trailing blanks."""

    def __init__(self, inner: RenderableType) -> None:
        self.inner = inner

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in console.render_lines(self.inner, options, pad=False):
            while line and not line[-1].control and not line[-1].text.rstrip():
                line.pop()
            if line and not line[-1].control:
                last = line[-1]
                line[-1] = Segment(last.text.rstrip(), last.style)
            yield from line
            yield Segment.line()


def _print_passages(hits: list[SearchHit]) -> None:
    """Each passage once, under the best hit in it: a header (rank, file, pages, score, the
    ordinals covered), then its chunks in document order, one row each: the hit's rank, the
    chunk's ordinal, its text (neighbours dimmed). A hit already shown in an earlier passage is
    one line pointing there."""
    by_rank = {h.rank: h for h in hits}
    for h in hits:
        passage = h.passage
        if passage is None:  # inside an earlier passage (or its document was deleted meanwhile)
            where = f"in #{h.passage_rank}'s passage above" if h.passage_rank else "its document is gone"
            line = f"#{h.rank}  {h.name}  score {h.score:.2f}  chunk {h.ordinal}: {where}"
            out.print(Text(line), soft_wrap=True, highlight=False)
            continue
        ordinals = passage.ordinals
        header = Text(f"#{h.rank}  ", style="bold")
        header.append(h.name, style="bold")
        pages = _pages(passage.page, passage.page_end)
        header.append(f"  {pages}" if pages else "")
        covered = f"chunks {ordinals[0]}-{ordinals[-1]}" if len(ordinals) > 1 else f"chunk {ordinals[0]}"
        header.append(f"  score {h.score:.2f}  {covered}")
        if len(passage.hit_ranks) > 1:
            header.append(" (hits " + ", ".join(f"#{r}" for r in passage.hit_ranks) + ")")
        out.print(header, soft_wrap=True, highlight=False)
        grid = Table.grid(padding=(0, 1))
        grid.add_column(justify="right", no_wrap=True)  # the hit's rank
        grid.add_column(justify="right", no_wrap=True, style="dim")  # the ordinal
        grid.add_column()  # the text
        for c in passage.chunks:
            text = passage.text[c.start : c.end]
            if c.hit_rank is None:
                grid.add_row("", str(c.ordinal), Text(text, style="dim"))
            else:
                hit = by_rank[c.hit_rank]
                grid.add_row(Text(f"#{hit.rank}", style="bold"), str(c.ordinal), Text(text))
        out.print(_Unpadded(grid))
        out.print()


@app.command("eval")
def eval_(
    questions: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSON-lines questions"),
    mode: Mode = ModeOpt,
    user: str = UserOpt,
    as_json: bool = typer.Option(False, "--json"),
    results_out: Path | None = typer.Option(
        None, "--results-out", help="write each question's top 20 results here"
    ),
    where: list[str] | None = WhereOpt,
    source_prefix: str | None = FilterSourcePrefixOpt,
    document_id: list[str] | None = DocumentIdOpt,
    mime: list[str] | None = MimeOpt,
    created_after: str | None = CreatedAfterOpt,
    created_before: str | None = CreatedBeforeOpt,
    updated_after: str | None = UpdatedAfterOpt,
    updated_before: str | None = UpdatedBeforeOpt,
) -> None:
    """Retrieval figures: doc recall@1, recall@5, MRR@5 and context-hit; with filter options
    (as ``search``'s), each question searches only the documents they match."""
    from docingest.services.evaluation import complete_filenames, evaluate, load_questions, unanswerable

    f = _filter(
        where, source_prefix, document_id, mime, created_after, created_before, updated_after, updated_before
    )
    if results_out is not None and not results_out.parent.is_dir():
        console.print(f"[red]error:[/red] --results-out: no such directory {results_out.parent}")
        raise typer.Exit(2)
    rt = _runtime()
    try:
        loaded = load_questions(questions)
        missing = unanswerable(loaded, complete_filenames(rt.documents, user))
        if missing:
            console.print(
                f"[yellow]warning:[/yellow] {len(missing)} of {len(loaded)} questions expect only "
                f"files user {user!r} has no complete document for (first: "
                f"{', '.join(missing[0].expected)}); they score 0",
                soft_wrap=True,
            )
        searcher = rt.searcher()
        figures, records = evaluate(searcher, loaded, user_id=user, mode=mode, filter=f)
        if (
            records
            and not f.empty
            and not any(r["results"] for r in records)
            and searcher.search(loaded[0].query, user_id=user, k=1, mode=mode)
        ):  # stderr: --json's stdout stays the figures
            _say_the_filter_matches_nothing(rt, user, "every question found nothing")
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
        console.print(
            f"[yellow]no jobs:[/yellow] nothing has been ingested in data dir {escape(str(settings.data_dir))} "
            "yet (it has no database); ingest with `docingest ingest PATH`, or point "
            "UPLOAD_PIPELINE_DATA_DIR at the data dir you ingested into",
            soft_wrap=True,
            highlight=False,
        )
        if as_json:
            out.print_json("[]")
        return
    rt = _runtime(settings)
    try:
        rows = rt.documents.statuses(user_id=user)
        if not rows:
            _explain_nothing_found(rt, user, "no jobs")
        from docingest.services.reembed import coverage

        generations = coverage(rt.database, rt.repo, user)
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
    # The job id whole where it fits beside the rest (it is copied into `docingest retry`). Under
    # 120 columns it is left out: folded, it took five lines a row and squeezed the file names;
    # a failed job's id is printed whole under the table, and every id is in --json.
    with_ids = out.width >= 120
    if with_ids:
        table.add_column("job", no_wrap=True, min_width=36)
    for r in rows:
        cells = [
            escape(r.name),
            f"re-embed: {r.stage}" if r.kind == "reembed" else r.stage,
            "[red]stalled[/red]" if r.stalled else r.state,
            format_progress(r.progress),
            str(r.attempts),
            r.error_code or "",
        ]
        table.add_row(*cells, *([r.job_id] if with_ids else []))
    out.print(table)
    if not with_ids:
        console.print(
            ("job ids: the failed jobs' below; " if any(r.error_code for r in rows) else "job ids: ")
            + "every job's in `docingest status --json` (or in a terminal of 120 columns or more)",
            highlight=False,
            soft_wrap=True,
        )
    if len(generations) > 1 or any(g.waiting for g in generations):  # a model change under way
        for g in generations:
            console.print(f"embeddings {g.line}", highlight=False, soft_wrap=True)
    # The messages at full width under the table: in a column they wrapped to a few letters a line.
    for r in rows:
        if r.error_code:
            serving = "; the previous version still answers searches" if r.older_version_serving else ""
            out.print(
                f"{r.name} (job {r.job_id}): {r.error_code}: {r.error_message}{serving}",
                soft_wrap=True,
                highlight=False,
                markup=False,
            )


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
    rows = [
        ("version", found.version),
        ("data dir", found.data_dir),
        ("database", found.database),
        ("storage", found.storage),
        ("parser", found.parser),
        (
            "embedder",
            f"{found.embedder}, {found.embedding_dimensions} dimensions"
            + (f"; backend {found.embedding_backend}" if found.embedding_backend else ""),
        ),
        *([("models", found.models_dir)] if found.models_dir else []),
        ("user", str(found.user)),
        (
            "documents",
            f"{found.documents} ({found.searchable} searchable)"
            if found.searchable != found.documents
            else str(found.documents),
        ),
        ("jobs", ", ".join(f"{n} {state}" for state, n in found.jobs_by_state.items()) or "none"),
        ("chunks", str(found.chunks)),
        *[("embeddings", g["line"]) for g in found.generations],
        ("users with documents", str(found.users)),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        out.print(f"{name:<{width}}  {value}", markup=False, highlight=False, soft_wrap=True)
