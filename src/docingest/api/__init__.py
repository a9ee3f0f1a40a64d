"""The HTTP API (FastAPI): ``create_app(runtime)``, typed dependencies, one error handler, routes.

Layer 2: imports services, runtime and everything below; never ``cli``.
"""
