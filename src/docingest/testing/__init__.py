"""Test tooling shipped with the package: fault injection and mock provider servers.

Used by tests, benchmarks and `docingest mock ...`; product code never imports it except
the composition root, which wraps providers in faults when fault settings ask for it.
"""
