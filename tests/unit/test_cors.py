"""CORS of the storage service run alone (``docingest storage``): the configured origin's page
may PUT a signed upload; without CORS_ORIGINS no CORS header is sent."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from docingest.api.app import create_storage_app
from docingest.settings import Settings

ORIGIN = "https://app.example.com"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "PUT",
    "Access-Control-Request-Headers": "content-type, x-upsert",
}


def test_the_storage_service_answers_the_configured_origins_preflight(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, cors_origins=f"{ORIGIN}, http://localhost:5173")
    with TestClient(create_storage_app(settings)) as client:
        reply = client.options("/storage/v1/object/upload/sign/documents/a/b.md", headers=PREFLIGHT)
        assert reply.status_code == 200
        assert reply.headers["access-control-allow-origin"] == ORIGIN
        assert "PUT" in reply.headers["access-control-allow-methods"]
        assert "x-upsert" in reply.headers["access-control-allow-headers"].lower()


def test_without_cors_origins_no_cors_header_is_sent(tmp_path: Path) -> None:
    with TestClient(create_storage_app(Settings(data_dir=tmp_path))) as client:
        reply = client.get("/health", headers={"Origin": ORIGIN})
        assert reply.status_code == 200 and "access-control-allow-origin" not in reply.headers
