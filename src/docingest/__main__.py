"""``python -m docingest``: the ``docingest`` command line."""

from docingest.cli.main import main

if __name__ == "__main__":  # pragma: no cover
    main()
