"""``docingest serve --host 0.0.0.0``: signed URLs for the host the client called, forwarded
headers only when trusted, start-up warnings; on 127.0.0.1, for the loopback name called. Only loopback traffic: the server is called on
127.0.0.1 with another ``Host``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from docingest.api.auth import mint_token
from tests.conftest import make_settings
from tests.e2e.servers import _env, cli, free_port, process

pytestmark = pytest.mark.e2e
FORWARDED = {"X-Forwarded-Host": "docs.example.test", "X-Forwarded-Proto": "https"}


def _serve(db_url: str, tmp_path: Path, *args: str, host: str = "0.0.0.0", **overrides: Any) -> Any:
    settings = make_settings(db_url, tmp_path / "data", api_port=free_port(), **overrides)
    log = tmp_path / "serve.log"
    ctx = process(
        cli("serve", "--host", host, "--port", str(settings.api_port), *args),
        _env(settings),
        log,
        f"http://127.0.0.1:{settings.api_port}/health",
    )
    return settings, log, ctx


def _signed_url(settings: Any, headers: dict[str, str]) -> str:
    bearer = mint_token(settings.jwt_secret, user_id="u-host", audience=settings.jwt_audience)
    reply = httpx.post(
        f"http://127.0.0.1:{settings.api_port}/api/v2/upload",
        timeout=30,
        headers={"authorization": f"Bearer {bearer}", **headers},
        json={
            "filename": "a.md",
            "mime": "text/markdown",
            "bytes_len": 3,
            "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        },
    )
    assert reply.status_code == 201, reply.text
    url: str = reply.json()["signed_url"]
    return url


def test_signed_urls_use_the_host_the_client_called(db_url: str, tmp_path: Path) -> None:
    settings, log, ctx = _serve(db_url, tmp_path, "--worker-slots", "1")
    with ctx:
        url = _signed_url(settings, {"Host": "docs.example.test:8443", **FORWARDED})
        assert url.startswith("http://docs.example.test:8443/storage/v1/object/upload/sign/documents/")
        # the same URL, called on the address the test can reach, accepts the bytes
        put = httpx.put(
            url.replace("http://docs.example.test:8443", f"http://127.0.0.1:{settings.api_port}"),
            content=b"abc",
            headers={"content-type": "text/markdown"},
            timeout=30,
        )
        assert put.status_code == 200, put.text
        deadline = time.monotonic() + 30  # --worker-slots logs the outcome at the default level
        while '"event": "job complete"' not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    lines = log.read_text().splitlines()
    assert sum("development JWT secret" in line for line in lines) == 1
    assert sum("/metrics on 0.0.0.0 needs no token" in line for line in lines) == 1


def test_forwarded_headers_count_only_when_trusted(db_url: str, tmp_path: Path) -> None:
    settings, log, ctx = _serve(db_url, tmp_path, trust_forwarded=True, jwt_secret="s" * 40)
    with ctx:
        url = _signed_url(settings, {"Host": "10.0.0.5:8000", **FORWARDED})
        assert url.startswith("https://docs.example.test/storage/v1/object/upload/sign/")
    text = log.read_text()
    assert "development JWT secret" not in text and "/metrics on 0.0.0.0 needs no token" in text


def test_public_url_still_wins(db_url: str, tmp_path: Path) -> None:
    settings, _, ctx = _serve(db_url, tmp_path, public_url="https://api.example.org/")
    with ctx:
        url = _signed_url(settings, {"Host": "docs.example.test:8443"})
        assert url.startswith("https://api.example.org/storage/v1/object/upload/sign/")


def test_loopback_server_signs_for_the_loopback_name_the_page_used(db_url: str, tmp_path: Path) -> None:
    """A dashboard opened as ``localhost`` PUTs to ``localhost`` (same origin, no CORS);
    a foreign ``Host`` or another port keeps ``API_HOST:API_PORT``."""
    settings, _, ctx = _serve(db_url, tmp_path, host="127.0.0.1")
    port = settings.api_port
    with ctx:
        url = _signed_url(settings, {"Host": f"localhost:{port}"})
        assert url.startswith(f"http://localhost:{port}/storage/v1/object/upload/sign/documents/")
        put = httpx.put(url, content=b"abc", headers={"content-type": "text/markdown"}, timeout=30)
        assert put.status_code == 200, put.text
        configured = f"http://127.0.0.1:{port}/storage/v1/object/upload/sign/"
        assert _signed_url(settings, {"Host": "evil.example"}).startswith(configured)
        assert _signed_url(settings, {"Host": f"evil.example:{port}"}).startswith(configured)
        assert _signed_url(settings, {"Host": f"localhost:{port + 1}"}).startswith(configured)
        assert _signed_url(settings, {"Host": f"[::1]:{port}"}).startswith(f"http://[::1]:{port}/")
