"""``compose.yaml``, ``.env.example`` and the ``Dockerfile`` agree: every variable compose reads
is documented in .env.example (and nothing else is), podman-compose accepts the file with
every profile, the workers can be scaled, and no secret is baked into the image."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.containers.stack import podman_env

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; $$ escapes a $.
_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
# Lines of .env.example that name a variable: VAR=... or, for an optional one, # VAR=...
_DOCUMENTED = re.compile(r"^#? ?([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def _compose_variables() -> set[str]:
    return set(_REFERENCE.findall(COMPOSE.read_text()))


def _documented_variables() -> set[str]:
    return set(_DOCUMENTED.findall(ENV_EXAMPLE.read_text()))


def test_every_variable_compose_reads_is_in_env_example() -> None:
    missing = _compose_variables() - _documented_variables()
    assert not missing, f"compose.yaml reads {sorted(missing)}, which .env.example does not name"


def test_env_example_names_only_variables_compose_reads() -> None:
    stale = _documented_variables() - _compose_variables()
    assert not stale, f".env.example names {sorted(stale)}, which compose.yaml does not read"


def test_the_required_secrets_are_empty_in_env_example() -> None:
    values = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert values == {"POSTGRES_PASSWORD": "", "UPLOAD_PIPELINE_JWT_SECRET": ""}


def test_every_upload_pipeline_variable_is_a_setting() -> None:
    from docingest.settings import Settings

    settings = {f"UPLOAD_PIPELINE_{name.upper()}" for name in Settings.model_fields}
    passed = set(re.findall(r"^\s+(UPLOAD_PIPELINE_[A-Z0-9_]+):", COMPOSE.read_text(), re.MULTILINE))
    assert passed and not passed - settings, sorted(passed - settings)


def test_the_dockerfile_bakes_in_no_secret() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    env_lines = re.findall(r"^(?:ENV|ARG) .*$", dockerfile, re.MULTILINE)
    assert env_lines
    for line in env_lines:
        assert not re.search(r"SECRET|PASSWORD|API_KEY|SERVICE_KEY|DATABASE_URL", line), line


def _podman_compose() -> str:
    found = Path(sys.executable).with_name("podman-compose")
    path = str(found) if found.exists() else shutil.which("podman-compose")
    assert path, "podman-compose is a dev dependency: pip install -e '.[dev]'"
    assert shutil.which("podman"), (
        "podman-compose needs podman: apt-get install podman (Debian's package, as .ci/run installs it)"
    )
    return path


def _config(env_file: Path, profiles: list[str]) -> subprocess.CompletedProcess[str]:
    """``podman-compose --env-file ENV_FILE [--profile P]... config`` in the repository."""
    args = [_podman_compose(), "--env-file", str(env_file)]
    for profile in profiles:
        args += ["--profile", profile]
    return subprocess.run(
        [*args, "config"],
        check=False,
        cwd=REPO,
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("profiles", [[], ["supabase"], ["mocks"]], ids=["default", "supabase", "mocks"])
def test_podman_compose_accepts_the_file(tmp_path: Path, profiles: list[str]) -> None:
    env = tmp_path / ".env"
    env.write_text(
        ENV_EXAMPLE.read_text()
        .replace("POSTGRES_PASSWORD=\n", "POSTGRES_PASSWORD=pw\n")
        .replace("UPLOAD_PIPELINE_JWT_SECRET=\n", f"UPLOAD_PIPELINE_JWT_SECRET={'s' * 40}\n")
    )
    done = _config(env, profiles)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    services = config["services"]
    expected = {"db", "migrate", "storage", "api", "worker"} | {
        "supabase": {"supabase-storage"},
        "mocks": {"mock-openai", "mock-llamaparse"},
    }.get(profiles[0] if profiles else "", set())
    assert expected <= set(services), sorted(services)
    # Scalable: a fixed container name or a fixed host port would stop a second worker.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["worker"]["depends_on"]["storage"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["api"]["environment"]["UPLOAD_PIPELINE_JWT_SECRET"] == "s" * 40
    assert {"db-data", "objects"} <= set(config["volumes"])


def test_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(ENV_EXAMPLE.read_text())
    done = _config(env, [])
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr + done.stdout
