"""The ``docingest`` command line (typer): the entry module. Importing the command modules
registers their commands on :data:`docingest.cli.app.app`; ``main()`` is the console script.

- ``cli/app.py``: the ``app``, shared options and helpers
- ``cli/ingest.py``: ``ingest``
- ``cli/sync.py``: ``sync``, ``watch``
- ``cli/query.py``: ``search``, ``eval``, ``status``, ``info``
- ``cli/jobs.py``: ``retry``, ``delete``, ``migrate``, ``token``, ``errors``, ``prepare-embedder``
- ``cli/reembed.py``: ``reembed``
- ``cli/servers.py``: ``worker``, ``serve``, ``ui``, ``storage``, ``healthcheck``
- ``cli/mock.py``: ``mock openai``, ``mock llamaparse``
"""

from __future__ import annotations

import sys

# Importing a module registers its commands; this order is the order of `docingest --help`.
from docingest.cli import ingest, sync, query, jobs, reembed, servers  # noqa: F401  # isort: skip
from rich.markup import escape

from docingest.cli.app import app, console

__all__ = ["app", "main"]


def main() -> None:
    """The console script: run the command; a database that is not migrated is a one-line error."""
    from docingest.errors import DatabaseNotMigrated

    try:
        app()
    except DatabaseNotMigrated as exc:
        console.print(f"[red]database error:[/red] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
