"""A client hanging up in the middle of a PUT to a signed upload URL: one warning, no
traceback, no partial object (the local storage service, over real HTTP on loopback)."""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from docingest.api.app import create_storage_app
from docingest.providers.storage.signing import UrlSigner
from docingest.settings import Settings
from tests.mockservers import free_port


def test_a_client_disconnecting_mid_put_leaves_no_partial_object_and_no_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path / "data", environment="test")
    body = b"x" * 300_000
    key = "u1/raw/doc.txt"
    token, _ = UrlSigner(settings.jwt_secret).sign(
        f"{settings.storage_bucket}/{key}",
        typ="upload",
        expires_in=60,
        len=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        max=settings.max_file_bytes,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_storage_app(settings), host="127.0.0.1", port=port, log_config=None, log_level="info"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    caplog.set_level(logging.INFO)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                (
                    f"PUT /storage/v1/object/upload/sign/{settings.storage_bucket}/{key}?token={token} "
                    f"HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body[: len(body) // 2]
            )
            time.sleep(0.5)  # the server is streaming the body to a temporary file
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            "interrupted" in r.getMessage() for r in caplog.records
        ):
            time.sleep(0.05)
    finally:
        server.should_exit = True
        thread.join(10)
    warnings = [r for r in caplog.records if "interrupted" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING, [
        r.getMessage() for r in caplog.records
    ]
    assert "disconnected after" in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info or "Exception in ASGI" in r.getMessage()]
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file()]  # no object, no temp file
