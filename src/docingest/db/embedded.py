"""The embedded PostgreSQL (pgserver) used when no database URL is configured.

pgserver ships PostgreSQL 16 with pgvector in a wheel. Several processes that
point at one data directory share one server: pgserver keeps a list of the
processes holding a handle and stops the server when the last one exits.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

_servers: dict[Path, object] = {}


def embedded_database_url(data_dir: Path) -> str:
    """Start (or join) the pgserver under ``data_dir/pg`` and return its libpq URL.

    Raises:
        RuntimeError: when the server cannot start; the message points at its log.
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
        try:
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise RuntimeError(
                f"could not start the embedded PostgreSQL in {pgdata}: {exc} "
                f"(see {pgdata / 'log'})"
            ) from exc
        _servers[pgdata] = server
    return str(server.get_uri())  # type: ignore[attr-defined]
