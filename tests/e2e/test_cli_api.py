"""``docingest token`` and the start-up refusal of ``docingest serve`` in production."""

from __future__ import annotations

import os
import subprocess

import jwt
import pytest

from docingest.api.auth import verify_service_key, verify_user_token
from tests.e2e.servers import REPO, cli

pytestmark = pytest.mark.e2e
SECRET = "cli-secret-" + "c" * 32


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_PIPELINE_")}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), base.get("PYTHONPATH", "")])
    return subprocess.run(
        cli(*args),
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO / "tests",
    )  # no .env file there


def test_token_prints_the_token_alone() -> None:
    done = _run("token", "--user", "user-42", "--ttl", "120", UPLOAD_PIPELINE_JWT_SECRET=SECRET)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert verify_user_token(lines[0], SECRET, audience="authenticated") == "user-42"
    assert "expires" in done.stderr and "in 120 s" in done.stderr
    claims = jwt.decode(lines[0], SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["exp"] - claims["iat"] == 120
    service = _run("token", "--service-role", UPLOAD_PIPELINE_JWT_SECRET=SECRET)
    key = service.stdout.strip()
    verify_service_key(key, SECRET)
    claims = jwt.decode(key, SECRET, algorithms=["HS256"])  # 10 years unless --ttl, as Supabase's keys
    assert claims["exp"] - claims["iat"] == 10 * 365 * 24 * 3600 and "expires" in service.stderr
    short = _run("token", "--service-role", "--ttl", "60", UPLOAD_PIPELINE_JWT_SECRET=SECRET).stdout.strip()
    claims = jwt.decode(short, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 60 and claims["role"] == "service_role"


@pytest.mark.parametrize("secret", [None, "docingest-development-secret-change-me", "short"])
def test_serve_refuses_to_start_in_production_without_a_real_secret(secret: str | None) -> None:
    env = {
        "UPLOAD_PIPELINE_ENVIRONMENT": "production",
        "UPLOAD_PIPELINE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    }
    if secret is not None:
        env["UPLOAD_PIPELINE_JWT_SECRET"] = secret
    done = _run("serve", "--port", "1", **env)
    assert done.returncode == 2
    assert "UPLOAD_PIPELINE_JWT_SECRET" in done.stderr + done.stdout
