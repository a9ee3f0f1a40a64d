"""The embedded PostgreSQL (pgserver) used when no database URL is configured.

pgserver ships PostgreSQL 16 with pgvector in a wheel. Several processes that
point at one data directory share one server: pgserver keeps a list of the
processes holding a handle and stops the server when the last one exits.
A process killed without running its exit handlers would stay in that list for
good (and keep the server running for good), so the list is pruned of dead
processes whenever a process starts or joins the server.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import psutil

from docingest.errors import EmbeddedDatabaseFailed

_servers: dict[Path, object] = {}


def embedded_database_url(data_dir: Path) -> str:
    """Start (or join) the pgserver under ``data_dir/pg`` and return its libpq URL.

    Raises:
        EmbeddedDatabaseFailed: when the server cannot start (a ``RuntimeError``); the
            message points at its log.
    """
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"runtime-{os.getuid()}"))
    runtime_dir = Path(os.environ["XDG_RUNTIME_DIR"])
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    if runtime_dir.stat().st_uid == os.getuid():
        runtime_dir.chmod(0o700)
    import pgserver  # heavy: imported only when the embedded database is used

    logging.getLogger("pgserver").setLevel(logging.WARNING)
    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = _servers.get(pgdata)
    if server is None:
        prune_dead_handles(pgdata)
        try:
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise EmbeddedDatabaseFailed(
                f"could not start the embedded PostgreSQL in {pgdata}: {exc} (see {pgdata / 'log'})"
            ) from exc
        _servers[pgdata] = server
    return str(server.get_uri())  # type: ignore[attr-defined]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop the pids of processes that no longer run from ``pgdata/.handle_pids.json``.

    Returns the pids removed. Taken under pgserver's inter-process lock, the one that
    guards the list when a process joins or leaves.
    """
    from pgserver.postgres_server import PostgresServer

    path = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        try:
            pids = json.loads(path.read_text())
        except (OSError, ValueError):
            return []
        if not isinstance(pids, list):
            return []
        dead = [p for p in pids if not isinstance(p, int) or (p != os.getpid() and not _alive(p))]
        if dead:
            path.write_text(json.dumps([p for p in pids if p not in dead]))
            logging.getLogger(__name__).info(
                "embedded PostgreSQL: dropped handles of exited processes %s", dead
            )
    return dead
