"""``docingest mock openai|llamaparse``: the paid services' mock servers as commands.

Every knob is a flag and an environment variable (``DOCINGEST_MOCK_*``); see
:class:`docingest.testing.mocks.common.Knobs` for what each does.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)

mock_app = typer.Typer(
    help="Mock servers of the paid cloud services, for tests and development.", no_args_is_help=True
)


def _knobs(
    latency_ms: float,
    error_rate: float,
    rate_limit_rate: float,
    retry_after: float,
    malformed_rate: float,
    seed: int | None,
) -> Any:
    from docingest.testing.mocks.common import Knobs

    return Knobs(
        latency_ms=latency_ms,
        error_rate=error_rate,
        rate_limit_rate=rate_limit_rate,
        retry_after=retry_after,
        malformed_rate=malformed_rate,
        seed=seed,
    )


_HOST = typer.Option("127.0.0.1", "--host", envvar="DOCINGEST_MOCK_HOST")
_LATENCY = typer.Option(
    0.0,
    "--latency-ms",
    envvar="DOCINGEST_MOCK_LATENCY_MS",
    min=0,
    help="time from a request's arrival to its answer",
)
_ERRORS = typer.Option(
    0.0, "--error-rate", envvar="DOCINGEST_MOCK_ERROR_RATE", min=0, max=1, help="fraction answered 500"
)
_LIMITED = typer.Option(
    0.0,
    "--rate-limit-rate",
    envvar="DOCINGEST_MOCK_RATE_LIMIT_RATE",
    min=0,
    max=1,
    help="fraction answered 429",
)
_RETRY_AFTER = typer.Option(
    1.0,
    "--retry-after",
    envvar="DOCINGEST_MOCK_RETRY_AFTER",
    min=0,
    help="seconds, sent in Retry-After with each 429",
)
_MALFORMED = typer.Option(
    0.0,
    "--malformed-rate",
    envvar="DOCINGEST_MOCK_MALFORMED_RATE",
    min=0,
    max=1,
    help="fraction answered 200 with a truncated JSON body",
)
_SEED = typer.Option(None, "--seed", envvar="DOCINGEST_MOCK_SEED")


@mock_app.command("openai")
def mock_openai(
    port: int = typer.Option(8002, "--port", envvar="DOCINGEST_MOCK_PORT", min=0, max=65535),
    host: str = _HOST,
    latency_ms: float = _LATENCY,
    error_rate: float = _ERRORS,
    rate_limit_rate: float = _LIMITED,
    retry_after: float = _RETRY_AFTER,
    malformed_rate: float = _MALFORMED,
    seed: int | None = _SEED,
    dimensions: int | None = typer.Option(
        None,
        "--dimensions",
        envvar="DOCINGEST_MOCK_DIMENSIONS",
        help="vector length of every reply, whatever is asked (a request OpenAI refuses is still refused)",
    ),
    max_input_tokens: int = typer.Option(
        8192, "--max-input-tokens", envvar="DOCINGEST_MOCK_MAX_INPUT_TOKENS"
    ),
) -> None:
    """OpenAI embeddings API on loopback: POST /v1/embeddings, GET /health, GET /_mock/stats.

    Without the ``bpe-openai`` package (the ``mock`` extra's) it does not start: one line
    ``error: dependency_missing: ...`` naming ``pip install 'docingest[mock]'``, exit 2.
    """
    from docingest.errors import DependencyMissing
    from docingest.testing.mocks.common import serve
    from docingest.testing.mocks.openai import OpenAIMockConfig, create_app

    knobs = _knobs(latency_ms, error_rate, rate_limit_rate, retry_after, malformed_rate, seed)
    try:
        mock = create_app(
            OpenAIMockConfig(knobs=knobs, dimensions=dimensions, max_input_tokens=max_input_tokens)
        )
    except DependencyMissing as exc:
        console.print(
            f"[red]error:[/red] {exc.error_code}: {escape(str(exc))}", soft_wrap=True, highlight=False
        )
        raise typer.Exit(2) from exc
    console.print(f"mock OpenAI on http://{host}:{port}/v1")
    serve(mock, host, port)


@mock_app.command("llamaparse")
def mock_llamaparse(
    port: int = typer.Option(8001, "--port", envvar="DOCINGEST_MOCK_PORT", min=0, max=65535),
    host: str = _HOST,
    latency_ms: float = _LATENCY,
    error_rate: float = _ERRORS,
    rate_limit_rate: float = _LIMITED,
    retry_after: float = _RETRY_AFTER,
    malformed_rate: float = _MALFORMED,
    seed: int | None = _SEED,
    job_seconds: float = typer.Option(
        1.0, "--job-seconds", envvar="DOCINGEST_MOCK_JOB_SECONDS", min=0, help="time until a job succeeds"
    ),
    never_finish_rate: float = typer.Option(
        0.0, "--never-finish-rate", min=0, max=1, envvar="DOCINGEST_MOCK_NEVER_FINISH_RATE"
    ),
    fail_rate: float = typer.Option(
        0.0,
        "--fail-rate",
        envvar="DOCINGEST_MOCK_FAIL_RATE",
        min=0,
        max=1,
        help="fraction of jobs that end FAILED",
    ),
    cancel_rate: float = typer.Option(
        0.0,
        "--cancel-rate",
        envvar="DOCINGEST_MOCK_CANCEL_RATE",
        min=0,
        max=1,
        help="fraction of jobs that end CANCELLED",
    ),
) -> None:
    """LlamaParse API v2 on loopback: POST /api/v2/parse/upload, GET /api/v2/parse/{id}, /health."""
    from docingest.testing.mocks.common import serve
    from docingest.testing.mocks.llamaparse import LlamaParseMockConfig, create_app

    knobs = _knobs(latency_ms, error_rate, rate_limit_rate, retry_after, malformed_rate, seed)
    console.print(f"mock LlamaParse on http://{host}:{port}")
    serve(
        create_app(
            LlamaParseMockConfig(
                knobs=knobs,
                job_seconds=job_seconds,
                never_finish_rate=never_finish_rate,
                fail_rate=fail_rate,
                cancel_rate=cancel_rate,
            )
        ),
        host,
        port,
    )
