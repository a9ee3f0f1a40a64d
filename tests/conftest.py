"""Shared fixtures: one embedded PostgreSQL per session, a template database with the
schema, and a fresh database cloned from it per test (``CREATE DATABASE ... TEMPLATE``)."""

from __future__ import annotations

import atexit
import itertools
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from docingest.db.migrate import apply_migrations
from docingest.runtime import Runtime
from docingest.settings import Settings

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("DOCINGEST_CORPUS", REPO.parent / "shared" / "corpus")).resolve()
TEMPLATE = "docingest_template"
# The default data dir is the per-user one (platformdirs): never the developer's own in tests.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="docingest-xdg-")
atexit.register(shutil.rmtree, os.environ["XDG_DATA_HOME"], ignore_errors=True)
os.environ.pop("UPLOAD_PIPELINE_DATA_DIR", None)
_counter = itertools.count()
_OWN_BASETEMP = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """Each session's tmp_path directories under a base of its own (``docingest-pytest-*``).

    The embedded PostgreSQL of several tests lives under tmp_path and runs as another user,
    which must traverse every parent; pytest resets its shared base (``pytest-of-<user>``) to
    mode 0700 whenever another session starts on the machine, which cut a running session's
    servers off. pytest-xdist's workers get subdirectories of the controller's base. The base
    is removed after a session with no failure (failed tests' directories are kept).
    """
    if config.option.basetemp is None and not os.environ.get("PYTEST_XDIST_WORKER"):
        config.option.basetemp = tempfile.mkdtemp(prefix="docingest-pytest-")
        config.stash[_OWN_BASETEMP] = Path(config.option.basetemp)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``'s worker count: one more than the usable cores (``--maxprocesses`` caps it;
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still overrides it). The tests mostly wait on PostgreSQL,
    subprocesses and sockets, so one worker per core leaves the cores idle part of the time."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own implementation reads it
    return len(os.sched_getaffinity(0)) + 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    base = session.config.stash.get(_OWN_BASETEMP, None)
    if base is not None and exitstatus == 0:
        shutil.rmtree(base, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without the third-party corpus (a clone with no ``../shared`` beside it), the tests that
    read it are skipped, naming what is missing; CI always has it."""
    if (CORPUS / "docs").is_dir():
        return
    skip = pytest.mark.skip(
        reason=f"needs the third-party corpus at {CORPUS}/docs "
        "(../shared/corpus beside the checkout, or DOCINGEST_CORPUS)"
    )
    for item in items:
        if item.get_closest_marker("shared_corpus"):
            item.add_marker(skip)


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead (pgserver URLs: ``.../postgres?host=...``)."""
    return (
        re.sub(r"/[^/?]*(\?|$)", rf"/{name}\1", url, count=1)
        if "?" in url
        else url.rsplit("/", 1)[0] + "/" + name
    )


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """libpq URL of the session's embedded server (database ``postgres``); the server is
    stopped and its data directory (about 1.5 GB after a full run) removed at the end."""
    from docingest.db import embedded

    root = Path(tempfile.mkdtemp(prefix="docingest-test-"))
    url = embedded.embedded_database_url(root)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    with psycopg.connect(with_database(url, TEMPLATE)) as conn:
        apply_migrations(conn, embedding_dimensions=384)
        conn.commit()
    try:
        yield url
    finally:
        pgdata = (root / "pg").resolve()
        server = embedded._servers.pop(pgdata, None)
        if server is not None:
            embedded.prune_dead_handles(pgdata)  # workers the crash tests killed
            server.cleanup()  # type: ignore[attr-defined]
        shutil.rmtree(root, ignore_errors=True)


def new_database(pg_url: str, prefix: str = "t") -> str:
    """A fresh database cloned from the migrated template; returns its URL."""
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return with_database(pg_url, name)


_migrated_names = itertools.count()


def database_before(pg_url: str, version: str) -> str:
    """A new database migrated by the migrations before ``version`` only (an earlier release's
    schema, ``${embedding_dimensions}`` 384); its URL."""
    from docingest.db.migrate import migration_files

    name = f"before{version[:3]}_{os.getpid()}_{next(_migrated_names)}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = with_database(pg_url, name)
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TABLE public.docingest_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for applied, sql in migration_files():
            if applied < version:
                conn.execute(sql.replace("${embedding_dimensions}", "384"))
                conn.execute("INSERT INTO public.docingest_migrations (version) VALUES (%s)", (applied,))
        conn.commit()
    return url


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``UPLOAD_PIPELINE_MODELS_DIR`` for the whole run, shared by pytest-xdist's workers
    (the export takes a file lock, so the first one exports and the others wait and read it)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = shared / "models"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def db_url(pg_url: str) -> str:
    return new_database(pg_url)


def make_settings(db_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Test settings: the given database, fast leases, the hashing embedder unless overridden."""
    values: dict[str, Any] = {
        "database_url": db_url,
        "data_dir": data_dir,
        "environment": "test",
        "embedding_provider": "hashing",
        "lease_seconds": 5.0,
        "heartbeat_seconds": 1.0,
        "poll_interval_seconds": 0.2,
        "backoff_base_seconds": 0.05,
        "backoff_max_seconds": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process the same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_PIPELINE_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"UPLOAD_PIPELINE_{name.upper()}"] = str(value)
    return env


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "data")


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings, migrate=False)
    yield rt
    rt.close()
