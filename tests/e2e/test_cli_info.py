"""Where docingest keeps its data, and saying so: ``--version``, ``info``, the default data
dir and its override, and the messages of a search or status that finds nothing.

In-process through typer's ``CliRunner`` (the settings come from the environment, as in a
shell); the hashing embedder, a database of its own per test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from docingest.cli.main import app
from docingest.services.info import redact_url, where
from docingest.settings import Settings
from tests.conftest import settings_env
from tests.integration.helpers import write_docs

pytestmark = pytest.mark.e2e

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run a ``docingest`` command in this process with ``settings`` in the environment."""
    for name, value in settings_env(settings).items():
        if name.startswith("UPLOAD_PIPELINE_"):
            monkeypatch.setenv(name, value)

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), catch_exceptions=False)

    return run


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"docingest {version('docingest')}"


def test_the_default_data_dir_is_the_per_user_one_wherever_you_stand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UPLOAD_PIPELINE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for here in (tmp_path / "a", tmp_path / "b"):
        here.mkdir()
        monkeypatch.chdir(here)
        assert Settings(environment="test").data_dir == tmp_path / "xdg" / "docingest"
    monkeypatch.setenv("UPLOAD_PIPELINE_DATA_DIR", str(tmp_path / "mine"))
    assert Settings(environment="test").data_dir == tmp_path / "mine"


def test_info_names_where_everything_is_and_counts_the_users_data(
    invoke: Invoke, settings: Settings, tmp_path: Path
) -> None:
    write_docs(tmp_path / "in", 2)
    assert invoke("ingest", str(tmp_path / "in"), "--json").exit_code == 0
    write_docs(tmp_path / "other", 1, prefix="other")
    assert invoke("ingest", str(tmp_path / "other"), "--user", "bob", "--json").exit_code == 0

    result = invoke("info", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["data_dir"] == str(settings.data_dir)
    assert found["database"] == redact_url(settings.database_url or "")
    assert found["storage"] == f"local: {settings.storage_dir}"
    assert found["embedder"].startswith("hashing") and found["embedding_dimensions"] == 384
    assert found["user"] == "local" and found["documents"] == 2 and found["users"] == 2
    assert found["jobs_by_state"] == {"done": 2} and found["chunks"] >= 2

    table = invoke("info", "--user", "bob").stdout
    for line in (
        f"data dir              {settings.data_dir}",
        "user                  bob",
        "documents             1",
        "jobs                  1 done",
    ):
        assert line in table.splitlines()

    # A failed document counts as a document, not as a searchable one.
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "empty.md").write_bytes(b"")
    assert invoke("ingest", str(tmp_path / "empty"), "--json").exit_code == 1
    found = json.loads(invoke("info", "--json").stdout)
    assert (found["documents"], found["searchable"]) == (3, 2)
    assert "documents             3 (2 searchable)" in invoke("info").stdout.splitlines()


def test_a_database_password_is_never_printed() -> None:
    assert (
        redact_url("postgresql://app:s3cret@db:5432/docs?sslmode=require")
        == "postgresql://app:***@db:5432/docs?sslmode=require"
    )
    assert redact_url("postgresql://app@db/docs?password=s3cret") == "postgresql://app@db/docs?password=***"
    assert redact_url("host=db user=app password=s3cret") == "host=db user=app password=***"
    assert redact_url("postgresql:///docs?host=/tmp") == "postgresql:///docs?host=/tmp"
    assert (
        redact_url("postgresql://db:5432/x?application_name=a@b")
        == "postgresql://db:5432/x?application_name=a@b"
    )
    assert redact_url("postgres://u:p%2Fw@h/d") == "postgres://u:***@h/d"


def test_a_search_that_finds_nothing_says_where_it_looked(
    invoke: Invoke, settings: Settings, tmp_path: Path
) -> None:
    result = invoke("search", "how do leases work?", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    message = " ".join(result.stderr.split())
    assert f"looked in {where(settings)}" in message and "user 'local'" in message
    assert "has no documents there; ingest some with `docingest ingest PATH`" in message

    write_docs(tmp_path / "in", 1)
    assert invoke("ingest", str(tmp_path / "in"), "--user", "alice").exit_code == 0
    message = " ".join(invoke("search", "how do leases work?").stderr.split())
    assert "the data dir holds documents of 1 other user: pass --user" in message


def test_a_status_that_finds_nothing_says_where_it_looked(invoke: Invoke, settings: Settings) -> None:
    result = invoke("status")
    assert result.exit_code == 0
    message = " ".join(result.stderr.split())
    assert f"no jobs: looked in {where(settings)} for any user" in message
    assert "UPLOAD_PIPELINE_DATA_DIR" in message
    assert json.loads(invoke("status", "--json").stdout) == []


def test_ingest_names_the_data_dir(invoke: Invoke, settings: Settings, tmp_path: Path) -> None:
    write_docs(tmp_path / "in", 1)
    result = invoke("ingest", str(tmp_path / "in"))
    assert result.exit_code == 0
    assert f"stored in {where(settings)}" in " ".join(result.stdout.split())
    again = json.loads(invoke("ingest", str(tmp_path / "in"), "--json").stdout)
    assert again["data_dir"] == str(settings.data_dir)


def test_a_look_at_a_data_dir_with_nothing_ingested_creates_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("UPLOAD_PIPELINE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("UPLOAD_PIPELINE_ENVIRONMENT", "test")
    monkeypatch.setenv("UPLOAD_PIPELINE_EMBEDDING_PROVIDER", "hashing")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UPLOAD_PIPELINE_DATA_DIR", "relative/dir")  # resolved from where you stand
    data_dir = tmp_path / "relative" / "dir"

    status = CliRunner().invoke(app, ["status", "--json"], catch_exceptions=False)
    assert status.exit_code == 0 and json.loads(status.stdout) == []
    assert f"nothing has been ingested in data dir {data_dir} yet" in " ".join(status.stderr.split())
    info = CliRunner().invoke(app, ["info", "--json"], catch_exceptions=False)
    assert info.exit_code == 0, info.output
    found = json.loads(info.stdout)
    assert found["data_dir"] == str(data_dir) and found["documents"] == 0
    assert found["database"].endswith("(not created yet: nothing has been ingested here)")
    assert not (data_dir / "pg").exists()
