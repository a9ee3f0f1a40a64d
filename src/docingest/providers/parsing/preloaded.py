"""Imported by the parse children's forkserver: every parser module, and the library each
wraps, loaded once so that a forked child parses any kind without importing."""

from docingest.providers.parsing import preload

preload()
