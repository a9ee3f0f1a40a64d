"""The HTTP API (FastAPI): ``create_app(runtime)``; routes under ``/api/v2``."""
