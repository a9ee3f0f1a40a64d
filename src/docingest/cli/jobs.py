"""Administration commands: ``retry``, ``delete``, ``migrate``, ``token``, ``errors`` and
``prepare-embedder``."""

from __future__ import annotations

import sys
from uuid import UUID

import typer
from rich.markup import escape

from docingest.cli.app import UserOpt, _check_data_dir, _check_user, _runtime, _settings, app, console, out


@app.command()
def retry(job_id: UUID = typer.Argument(..., help="the failed job")) -> None:
    """Requeue a failed job from its last good stage (as POST /jobs/{id}/retry). A job whose file
    was never stored, or was deleted when refused, needs the file: ingest it again."""
    from docingest.errors import Conflict, NotFound

    rt = _runtime()
    try:
        job, _ = rt.documents.retry(job_id, via="cli")
    except NotFound as exc:
        console.print(f"[red]error:[/red] not_found: no job {job_id} (see `docingest status`)")
        raise typer.Exit(1) from exc
    except Conflict as exc:  # not failed, or its file is needed again
        console.print(f"[red]error:[/red] {exc.error_code}: {escape(exc.message)}", soft_wrap=True)
        raise typer.Exit(1) from exc
    finally:
        rt.close()
    out.print(
        f"job {job.job_id} queued again at stage {job.stage.value}; a running `docingest worker` (or "
        "`docingest serve --worker-slots N`) picks it up",
        soft_wrap=True,
    )


@app.command()
def delete(
    document_ids: list[UUID] = typer.Argument(
        ..., help="the documents (document_id in `docingest status --json`)"
    ),
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
                console.print(
                    f"[red]error:[/red] not_found: no document {document_id} for user {user!r} (see "
                    f"`docingest status --json --user {user}` for document ids)",
                    soft_wrap=True,
                )
                continue
            out.print(f"deleted {document_id} ({doc.filename})", markup=False, highlight=False)
    finally:
        rt.close()
    raise typer.Exit(1 if missing else 0)


@app.command()
def migrate() -> None:
    """Apply the database migrations (the embedded database is migrated automatically)."""
    rt = _runtime()
    applied = rt.apply_migrations()
    out.print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")


#: Lifetime of ``docingest token --service-role`` keys unless ``--ttl``: 10 years, as the
#: service-role keys of a Supabase project.
SERVICE_KEY_TTL_SECONDS = 10 * 365 * 24 * 3600
USER_TOKEN_TTL_SECONDS = 3600


@app.command()
def token(
    user: str | None = typer.Option(
        None, "--user", help="the user id (the token's sub)", callback=_check_user
    ),
    ttl: int | None = typer.Option(
        None,
        "--ttl",
        min=1,
        help=f"lifetime in seconds (default: {USER_TOKEN_TTL_SECONDS} for a user token, "
        f"{SERVICE_KEY_TTL_SECONDS} = 10 years for --service-role, as Supabase's keys)",
    ),
    service_role: bool = typer.Option(
        False, "--service-role", help="a storage service-role key instead of a user token"
    ),
) -> None:
    """Print a development token signed with UPLOAD_PIPELINE_JWT_SECRET (the token alone on
    stdout; its expiry on stderr)."""
    import time

    from docingest.api.auth import mint_token
    from docingest.providers.storage.signing import mint_service_key

    settings = _settings()
    if not service_role and not user:
        console.print("[red]error:[/red] --user is required")
        raise typer.Exit(2)
    lifetime = (
        ttl if ttl is not None else (SERVICE_KEY_TTL_SECONDS if service_role else USER_TOKEN_TTL_SECONDS)
    )
    if service_role:
        print(mint_service_key(settings.jwt_secret, ttl_seconds=lifetime))
    else:
        print(
            mint_token(
                settings.jwt_secret, user_id=user, ttl_seconds=lifetime, audience=settings.jwt_audience
            )
        )
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + lifetime))
    print(f"expires {expires} (in {lifetime} s; --ttl sets it)", file=sys.stderr)


@app.command("errors")
def errors_() -> None:
    """Print the table of error codes (code, meaning, retried, what to do) as Markdown."""
    from docingest.errors import error_table_markdown

    out.print(error_table_markdown(), markup=False, highlight=False, soft_wrap=True)


@app.command("prepare-embedder")
def prepare_embedder(
    backend: str | None = typer.Option(
        None,
        "--backend",
        help="auto, openvino, openvino-bf16, onnx, onnx-int8, torch or torch-bf16; "
        "default: UPLOAD_PIPELINE_EMBEDDING_BACKEND",
    ),
) -> None:
    """Make the local model ready ahead of first use (workers do it otherwise): export it to ONNX
    (and, for openvino-bf16, to a float16 OpenVINO IR) into UPLOAD_PIPELINE_MODELS_DIR (default
    DATA_DIR/models) and load it once. ``auto`` prepares the backend it picks for this CPU."""
    from docingest.providers.embedding.local import AUTO, BACKENDS, make_local_embedder, resolve_backend

    settings = _settings()
    _check_data_dir(settings)
    name = backend or settings.embedding_backend
    if name != AUTO and name not in BACKENDS:
        console.print(
            f"[red]error:[/red] unknown embedding backend {escape(repr(name))}: use one of "
            f"{', '.join((AUTO, *BACKENDS))}"
        )
        raise typer.Exit(2)
    names = list(dict.fromkeys(resolve_backend(name, purpose) for purpose in ("documents", "queries")))
    try:
        for each in names:
            make_local_embedder(each, cache_dir=settings.model_cache_dir).embed(["docingest warm-up"])
    except (ValueError, RuntimeError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    out.print(f"{' and '.join(names)} ready under {settings.model_cache_dir}")
