"""Fixtures of the API tests: a module-wide API server and worker on a fresh database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from docingest.settings import Settings
from tests.conftest import make_settings, new_database
from tests.e2e.servers import api_server, free_port, worker

SECRET = "e2e-secret-" + "x" * 32


@contextmanager
def running_api(
    pg_url: str, tmp: Path, *, with_worker: bool = True, **overrides: Any
) -> Iterator[tuple[str, Settings]]:
    """An API server (and a worker) on a new database; yields ``(base_url, settings)``."""
    values: dict[str, Any] = {"jwt_secret": SECRET, "api_port": free_port(), "upload_sweep_seconds": 0.5}
    values.update(overrides)
    settings = make_settings(new_database(pg_url), tmp / "data", **values)
    with ExitStack() as stack:
        base = stack.enter_context(api_server(settings, tmp))
        if with_worker:
            stack.enter_context(worker(settings, tmp))
        yield base, settings


@pytest.fixture(scope="module")
def api(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """One API + worker for the module; users keep to their own data, so tests don't interfere."""
    with running_api(pg_url, tmp_path_factory.mktemp("api"), max_active_jobs_per_user=5) as stack:
        yield stack
