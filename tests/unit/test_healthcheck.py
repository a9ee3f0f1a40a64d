"""``docingest healthcheck``: a container's HEALTHCHECK, against real HTTP servers on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from docingest.cli.main import app


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/health" else 503
        self.send_response(status)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_2xx_answer_is_healthy(server: str) -> None:
    result = CliRunner().invoke(app, ["healthcheck", "--url", f"{server}/health"])
    assert result.exit_code == 0, result.output
    assert "healthy" in result.output


def test_an_error_status_is_unhealthy_and_named(server: str) -> None:
    result = CliRunner().invoke(app, ["healthcheck", "--url", f"{server}/ready"])
    assert result.exit_code == 1
    assert "HTTP 503" in result.output


def test_nothing_listening_is_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The default URL is the API's /health on UPLOAD_PIPELINE_API_PORT.
    monkeypatch.setenv("UPLOAD_PIPELINE_API_PORT", str(port))
    result = CliRunner().invoke(app, ["healthcheck", "--timeout", "2"])
    assert result.exit_code == 1
    assert f"127.0.0.1:{port}/health" in result.output and "ConnectError" in result.output


def test_an_embedder_refusal_keeps_its_brackets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker's start-up refusal is printed as written: ``docingest[local]`` is not taken for
    console markup (it printed ``pip install 'docingest'``)."""
    from types import SimpleNamespace

    import typer

    from docingest.cli.app import _probe_embedder
    from docingest.errors import DependencyMissing
    from docingest.services import embedder_check

    def refuse(*args: object, **kwargs: object) -> None:
        raise DependencyMissing("the openvino backend needs openvino: pip install 'docingest[local]'")

    monkeypatch.setattr(embedder_check, "probe_embedder", refuse)
    runtime = SimpleNamespace(
        settings=SimpleNamespace(embedding_provider="local"),
        check_embedder_dimensions=None,
        close=lambda: None,
    )
    with pytest.raises(typer.Exit):
        _probe_embedder(runtime)  # type: ignore[arg-type]
    assert "pip install 'docingest[local]'" in " ".join(capsys.readouterr().err.split())
