"""No log line of a run holds a signed URL's token, a JWT or an API key, at the most verbose level:
the API (uvicorn, access log on) with an upload through its signed URL (local storage), a worker
processing it, embeddings from an OpenAI-compatible server (``docingest mock openai``) with a key."""

from __future__ import annotations

import hashlib
import io
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
import structlog
import uvicorn

from docingest.api.app import create_app
from docingest.api.auth import mint_token
from docingest.cli.servers import _uvicorn_logging
from docingest.observability import logs
from docingest.runtime import Runtime
from tests.conftest import make_settings
from tests.e2e.servers import free_port
from tests.mockservers import MockServer, openai_settings

pytestmark = pytest.mark.e2e

OPENAI_KEY = f"e2e-openai-{uuid4().hex}"
LLAMA_KEY = f"e2e-llama-{uuid4().hex}"
SERVICE_KEY = f"e2e-service-{uuid4().hex}"
JWT_SECRET = f"e2e-jwt-{uuid4().hex}"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.configure_logging(logging.DEBUG, json=True, stream=stream, job_lines=True)
    yield stream
    logging.getLogger().handlers.clear()
    logging.getLogger().setLevel(logging.WARNING)  # the root's default: later tests log as usual
    for name in (*logs.QUIET_LOGGERS, logs.JOBS_LOGGER, "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    structlog.reset_defaults()


def test_no_token_jwt_or_key_in_any_log_line(db_url: str, tmp_path: Path, log_stream: io.StringIO) -> None:
    with MockServer("openai", log_dir=tmp_path) as mock:
        port = free_port()
        settings = make_settings(
            db_url,
            tmp_path / "data",
            api_port=port,
            jwt_secret=JWT_SECRET,
            llamaparse_api_key=LLAMA_KEY,
            storage_service_key=SERVICE_KEY,
            **openai_settings(mock, openai_api_key=OPENAI_KEY),
        )
        rt = Runtime(settings, migrate=False)
        config = uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, **_uvicorn_logging(True))
        for name in (*logs.QUIET_LOGGERS, "uvicorn.error", "uvicorn.access", "openai"):
            logging.getLogger(name).setLevel(logging.DEBUG)  # the most verbose: httpx's request lines too
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        worker = rt.worker(concurrency=1)
        worker.start()
        bearer = mint_token(JWT_SECRET, user_id="u-logs", audience=settings.jwt_audience)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while not server.started:
                assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
                time.sleep(0.05)
            data = b"# Notes\n\n" + b"Leases and fencing keep one writer per job. " * 40
            with httpx.Client(
                base_url=base, headers={"authorization": f"Bearer {bearer}"}, timeout=30
            ) as api:
                ticket = api.post(
                    "/api/v2/upload",
                    json={
                        "filename": "notes.md",
                        "mime": "text/markdown",
                        "bytes_len": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                    },
                ).json()
                signed = ticket["signed_url"]
                token = signed.split("token=", 1)[1]
                put = httpx.put(signed, content=data, headers={"content-type": "text/markdown"}, timeout=30)
                assert put.status_code == 200, put.text
                deadline = time.monotonic() + 60
                while (doc := api.get(f"/api/v2/documents/{ticket['document_id']}").json())["state"] not in (
                    "done",
                    "failed",
                ):
                    assert time.monotonic() < deadline, doc
                    time.sleep(0.2)
                assert doc["state"] == "done", doc
                found = api.get("/api/v2/search", params={"q": "fencing one writer"})
                assert found.status_code == 200, found.text
                # a key in a query string, as a misconfigured client might send it
                api.get("/health", params={"apikey": OPENAI_KEY, "key": SERVICE_KEY})
        finally:
            worker.stop()
            server.should_exit = True
            thread.join(30)
            rt.close()
        assert mock.stats()["by_status"].get("200", 0) >= 2  # the document's chunks and the query

    text = log_stream.getvalue()
    lines = text.splitlines()
    assert len(lines) > 10
    assert any("/storage/v1/object/upload/sign/" in line and "token=REDACTED" in line for line in lines)
    assert any("HTTP Request: POST" in line and "/v1/embeddings" in line for line in lines)  # httpx's
    assert any('"job complete"' in line for line in lines)
    for secret in (token, bearer, OPENAI_KEY, LLAMA_KEY, SERVICE_KEY, JWT_SECRET):
        assert secret not in text
    assert not re.search(r"eyJ[A-Za-z0-9_-]{6,}", text)
