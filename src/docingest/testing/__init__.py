"""Test tooling shipped with the package: fault-injection wrappers and mock provider servers.

Used by tests, benchmarks and ``docingest mock ...``; only ``runtime`` and ``cli`` import it.
"""
