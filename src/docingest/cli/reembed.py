"""``docingest reembed``: move the stored chunks to this process's embedding model."""

from __future__ import annotations

import json

import typer

from docingest.cli.app import (
    UserOpt,
    VerboseOpt,
    _probe_embedder,
    _runtime,
    _setup_logging,
    app,
    console,
    out,
)


@app.command()
def reembed(
    user: str = UserOpt,
    all_users: bool = typer.Option(False, "--all-users", help="every user's chunks, not only --user's"),
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, max=64, help="worker slots"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON object"),
    verbose: bool = VerboseOpt,
) -> None:
    """Re-embed stored chunks with the configured EMBEDDING_PROVIDER/MODEL/DIMENSIONS, without
    parsing again; exit 1 when a document failed or chunks are left to re-embed.

    Searches keep using the previous model until every chunk of a user is re-embedded, then
    switch at once; the old vectors are dropped by the switch. Interrupted (Ctrl-C), it resumes
    where it stopped when run again; `docingest worker` processes take part in the work.
    """
    _setup_logging(verbose, job_lines=verbose)
    from docingest.services.ingest import IngestInterrupted
    from docingest.services.reembed import reembed as run_reembed

    rt = _runtime()
    try:
        _probe_embedder(rt)
        printed = [-1]

        def on_progress(finished: int, queued: int) -> None:
            if finished != printed[0]:
                printed[0] = finished
                console.print(f"re-embedding: {finished}/{queued} documents", highlight=False)

        try:
            summary = run_reembed(
                rt, user_id=None if all_users else user, concurrency=concurrency, on_progress=on_progress
            )
        except (KeyboardInterrupt, IngestInterrupted) as exc:
            console.print(
                "[yellow]interrupted:[/yellow] run the same command again to resume", soft_wrap=True
            )
            raise typer.Exit(130) from exc
    finally:
        rt.close()
    if as_json:
        out.print_json(json.dumps(summary.to_dict()))
    else:
        out.print(
            f"re-embedded {summary.complete}/{summary.queued} documents ({summary.chunks:,} chunks) into "
            f"{summary.generation} in {summary.wall_s:.1f} s; {summary.switched_users} user(s) switched",
            highlight=False,
            soft_wrap=True,
        )
        for c in summary.coverage:
            out.print(f"  {c.line}", highlight=False, soft_wrap=True)
        for code, n in sorted(summary.failed_by_code.items()):
            out.print(f"[red]failed:[/red] {n} {code} (see `docingest status`)", soft_wrap=True)
    if summary.remaining:
        console.print(
            f"[yellow]not finished:[/yellow] {summary.remaining:,} chunks are not re-embedded yet "
            "(documents still being ingested, or failed): run `docingest reembed` again once they are done",
            soft_wrap=True,
        )
    raise typer.Exit(1 if summary.failed or summary.remaining else 0)
