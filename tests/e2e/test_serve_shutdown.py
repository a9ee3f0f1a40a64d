"""``docingest serve`` stops at once with event streams open: SIGTERM ends every SSE stream (the
dashboard's client reconnects by itself), so uvicorn's graceful shutdown does not wait out its
timeout and cancel the streams with a traceback."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from docingest.api.auth import mint_token
from tests.conftest import make_settings, new_database
from tests.e2e.conftest import SECRET
from tests.e2e.servers import _env, cli, free_port, process

pytestmark = pytest.mark.e2e

#: uvicorn's graceful shutdown waits this long (``timeout_graceful_shutdown`` in cli/servers.py)
#: for open connections before it cancels them: a stream that does not end keeps the process
#: alive 10 s + ~2 s. Streams that end on the signal let it stop in about the time it takes
#: without them (~0.5 s, under load a few). 5 s lies between the two with room on a busy machine.
STOP_BOUND_SECONDS = 5.0


def _open_stream(port: int, path: str, token: str) -> socket.socket:
    """A raw HTTP/1.1 GET of an SSE ``path``, read up to its first message (``retry:``)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    sock.sendall(request.encode())
    seen = b""
    while b"retry: 2000" not in seen:
        chunk = sock.recv(4096)
        assert chunk, f"the stream {path} closed before its first message: {seen!r}"
        seen += chunk
    assert seen.startswith(b"HTTP/1.1 200"), seen
    return sock


def test_sigterm_with_event_streams_open_stops_at_once_without_an_error(pg_url: str, tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(new_database(pg_url), tmp_path / "data", jwt_secret=SECRET, api_port=port)
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "api.log"
    token = mint_token(SECRET, user_id="leaving")
    with process(
        cli("serve", "--host", "127.0.0.1", "--port", str(port)), _env(settings), log, f"{base}/health"
    ) as proc:
        data = b"# Open\n\nA document still waiting for its bytes keeps its own stream open.\n"
        upload = httpx.post(
            f"{base}/api/v2/upload",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "filename": "open.md",
                "mime": "text/markdown",
                "bytes_len": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            },
        )
        assert upload.status_code == 201, upload.text
        document_id = json.loads(upload.text)["document_id"]
        streams = [
            _open_stream(port, "/api/v2/events", token),
            _open_stream(port, f"/api/v2/documents/{document_id}/events", token),
        ]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve did not stop within 30 s of SIGTERM:\n{log.read_text()[-4000:]}")
        took = time.monotonic() - started
        for sock in streams:
            sock.close()
    out = log.read_text(errors="replace")
    assert code == 0, out[-4000:]
    assert "docingest API stopped" in out
    assert "Exception in ASGI application" not in out, out[-4000:]
    assert "Cancel" not in out and "CancelledError" not in out, out[-4000:]
    assert took < STOP_BOUND_SECONDS, f"serve took {took:.1f} s to stop with two streams open:\n{out[-4000:]}"
