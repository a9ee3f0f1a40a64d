"""The long-running commands: ``worker``, ``serve`` (the HTTP API) and ``storage`` (the local
storage service alone)."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import uvicorn

from docingest.cli.app import (
    VerboseOpt,
    _check_data_dir,
    _probe_embedder,
    _runtime,
    _settings,
    _setup_logging,
    app,
    console,
)


def _uvicorn_logging(verbose: bool) -> dict[str, Any]:
    """uvicorn's logging options: its lines go through ``logs.configure_logging``'s handler
    (JSON, redacted: no signed URL's token in the access log), access lines only with ``-v``."""
    return {"log_config": None, "log_level": "info" if verbose else "warning", "access_log": verbose}


@app.command()
def worker(
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, max=64, help="slots in this process"),
    verbose: bool = VerboseOpt,
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", min=0, max=65535, help="serve Prometheus /metrics on this port"
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1", "--metrics-host", help="address for /metrics (0.0.0.0 to be scraped from elsewhere)"
    ),
    reembed: bool = typer.Option(
        False,
        "--reembed",
        help="first queue the re-embedding of every user's chunks of another generation into this "
        "worker's model (as `docingest reembed --all-users`, without waiting)",
    ),
) -> None:
    """Run a worker until SIGTERM, SIGINT or SIGHUP: stop claiming, release held jobs, exit.

    Logs one line per job outcome (complete, failed, retry scheduled) and lease takeover.
    """
    _setup_logging(verbose, job_lines=True)
    rt = _runtime()
    _probe_embedder(rt)
    w = rt.worker(concurrency=concurrency)
    if reembed:
        from docingest.services.reembed import queue

        generation, queued = queue(rt)
        console.print(f"queued {len(queued)} documents to re-embed into {generation.label}", highlight=False)
    if metrics_port is not None:
        from docingest.observability.metrics import start_metrics_server

        server, _ = start_metrics_server(metrics_port, metrics_host, count_jobs=rt.documents.job_counts)
        console.print(f"metrics on http://{metrics_host}:{server.server_port}/metrics")

    def _stop(signum: int, frame: Any) -> None:
        if not w.stopping.is_set():
            os.write(
                2,
                f"worker {w.worker_id}: {signal.Signals(signum).name}: stopping; held jobs are "
                "released at their next checkpoint\n".encode(),
            )
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


HostOpt = typer.Option(None, "--host", help="default: UPLOAD_PIPELINE_API_HOST (127.0.0.1)")
PortOpt = typer.Option(None, "--port", min=0, max=65535, help="default: UPLOAD_PIPELINE_API_PORT (8000)")
_SLOTS_HELP = "also run this many worker slots in the API process"


@app.command()
def serve(
    host: str | None = HostOpt,
    port: int | None = PortOpt,
    worker_slots: int = typer.Option(0, "--worker-slots", min=0, max=64, help=_SLOTS_HELP),
    verbose: bool = VerboseOpt,
) -> None:
    """Run the HTTP API (FastAPI under uvicorn) and the dashboard at /; OpenAPI at /openapi.json.

    With --worker-slots, logs one line per job outcome, as ``docingest worker`` does.
    """
    _serve(host, port, worker_slots, verbose)


@app.command()
def ui(
    host: str | None = HostOpt,
    port: int | None = PortOpt,
    worker_slots: int = typer.Option(2, "--worker-slots", min=0, max=64, help=_SLOTS_HELP),
    verbose: bool = VerboseOpt,
) -> None:
    """The dashboard: ``serve`` with two worker slots; prints its URL (opens no browser)."""
    _serve(host, port, worker_slots, verbose, dashboard=True)


def _serve(
    host: str | None, port: int | None, worker_slots: int, verbose: bool, *, dashboard: bool = False
) -> None:
    """``serve``'s body; ``dashboard``: also print the dashboard's URL (and, in development, how
    to sign in)."""
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
    console.print(
        f"docingest API on http://{settings.api_host}:{settings.api_port} "
        f"(storage: {settings.storage_backend}, public URL {public})",
        soft_wrap=True,
    )
    for warning in exposure_warnings(settings):
        console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
    if dashboard:
        console.print(f"docingest dashboard: {settings.api_base_url()}/", soft_wrap=True, highlight=False)
        if settings.environment == "development":
            console.print(
                'development: the sign-in page\'s "Use the local development user" button signs '
                "you in as `local` (the CLI's user) from this machine",
                soft_wrap=True,
                highlight=False,
            )
    try:
        api = create_app(rt)
        # proxy_headers: uvicorn's own X-Forwarded-* handling follows TRUST_FORWARDED too
        config = uvicorn.Config(
            api,
            host=settings.api_host,
            port=settings.api_port,
            proxy_headers=settings.trust_forwarded,
            timeout_graceful_shutdown=10,
            **_uvicorn_logging(verbose),
        )
        server = _stopping_server(config, api.state.stopping)
        server.run()
        if not server.started:  # as uvicorn.run: the port was taken, or the app failed to start
            raise typer.Exit(3)
    except KeyboardInterrupt:  # a signal before uvicorn took over (it handles those after, and returns)
        pass
    finally:
        if worker_ is not None:
            worker_.stop()
        rt.close()
    console.print("docingest API stopped")


def _stopping_server(config: uvicorn.Config, stopping: threading.Event) -> uvicorn.Server:
    """A uvicorn ``Server`` for ``config`` that sets ``stopping`` (``app.state.stopping``) the
    moment it is told to exit (SIGTERM, SIGINT), before it waits for open connections: the event
    streams see it and end, so the graceful shutdown neither waits out its timeout for them nor
    cancels them (a traceback in the log). The dashboard's client reconnects by itself."""
    import uvicorn

    class StoppingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            stopping.set()
            super().handle_exit(sig, frame)

    return StoppingServer(config)


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
    console.print(
        f"docingest storage on http://{host}:{port}/storage/v1 (bucket {settings.storage_bucket}, "
        f"{settings.storage_dir})"
    )
    uvicorn.run(create_storage_app(settings), host=host, port=port, **_uvicorn_logging(verbose))


@app.command()
def healthcheck(
    url: str | None = typer.Option(
        None, "--url", help="default: http://127.0.0.1:UPLOAD_PIPELINE_API_PORT/health (the API's liveness)"
    ),
    timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="seconds to wait for the answer"),
) -> None:
    """Exit 0 when URL answers 2xx within --timeout, else 1 saying why: a container's HEALTHCHECK
    (the image checks `serve`; compose.yaml points the worker's at its /metrics, the storage
    service's at its /health)."""
    import httpx

    target = url or f"http://127.0.0.1:{_settings().api_port}/health"
    try:
        reply = httpx.get(target, timeout=timeout)
    except httpx.HTTPError as exc:
        console.print(f"unhealthy: {target}: {type(exc).__name__}: {exc}", highlight=False, markup=False)
        raise typer.Exit(1) from exc
    if not reply.is_success:
        console.print(f"unhealthy: {target}: HTTP {reply.status_code}", highlight=False, markup=False)
        raise typer.Exit(1)
    console.print(f"healthy: {target}", highlight=False, markup=False)
