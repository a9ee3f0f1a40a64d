"""``docingest search`` and ``eval`` with filters, as a user runs them: two roots ingested with
their own ``--source-prefix`` and ``--meta``, then searched through ``--where`` and
``--source-prefix`` (hashing embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docingest.cli.main import app
from docingest.settings import Settings
from tests.conftest import make_settings, settings_env

pytestmark = pytest.mark.e2e
TEXT = "# Lighthouse {name}\n\nThe keeper of lighthouse {name} trimmed the lamp and logged the fog signals.\n"


def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=settings_env(settings))
    return result.exit_code, result.output


@pytest.fixture
def ingested(settings: Settings, tmp_path: Path) -> Settings:
    for team, year, names in (("a", "2024", ("north", "south")), ("b", "2023", ("east", "west"))):
        root = tmp_path / team
        root.mkdir()
        for name in names:
            (root / f"{name}.md").write_text(TEXT.format(name=name), encoding="utf-8")
        code, output = _cli(
            settings, "ingest", str(root), "--source-prefix", f"team-{team}/", "--meta", f"year={year}"
        )
        assert code == 0, output
    return settings


def test_search_where_and_source_prefix_keep_to_the_matching_documents(ingested: Settings) -> None:
    code, output = _cli(ingested, "search", "lighthouse keeper fog", "-k", "10", "--json")
    assert code == 0, output
    assert {h["source"] for h in json.loads(output)} == {
        "team-a/north.md",
        "team-a/south.md",
        "team-b/east.md",
        "team-b/west.md",
    }
    code, output = _cli(
        ingested, "search", "lighthouse keeper fog", "-k", "10", "--where", "year=2024", "--json"
    )
    assert code == 0, output
    assert {h["source"] for h in json.loads(output)} == {"team-a/north.md", "team-a/south.md"}
    code, output = _cli(
        ingested,
        "search",
        "lighthouse",
        "-k",
        "10",
        "--source-prefix",
        "team-b/",
        "--where",
        "year=2023",
        "--where",
        "year=2022",
        "--json",
    )
    assert code == 0, output
    assert {h["source"] for h in json.loads(output)} == {"team-b/east.md", "team-b/west.md"}
    code, output = _cli(ingested, "search", "lighthouse", "--where", "year=1999")
    assert code == 0, output
    assert "none of your documents matches the filter" in " ".join(output.split())
    code, output = _cli(ingested, "search", "lighthouse", "--where", "year")
    assert code == 2 and output.startswith("error: invalid_filter: "), output
    code, output = _cli(ingested, "search", "lighthouse", "--created-after", "yesterday")
    assert code == 2 and output.startswith("error: invalid_filter: ") and "ISO 8601" in output, output


def test_eval_where_searches_only_the_matching_documents(ingested: Settings, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"query": "lighthouse north keeper", "expected": ["north.md"]}) + "\n")
    code, output = _cli(ingested, "eval", str(questions), "--json")
    assert code == 0, output
    assert json.loads(output)["recall@5"] == 1.0
    code, output = _cli(ingested, "eval", str(questions), "--where", "year=2023", "--json")
    assert code == 0, output
    assert json.loads(output)["recall@5"] == 0.0  # north.md is team a's (2024): filtered out
    code, output = _cli(ingested, "eval", str(questions), "--source-prefix", "team-a/", "--json")
    assert code == 0, output
    assert json.loads(output)["recall@5"] == 1.0


def test_eval_says_when_the_filter_matches_nothing_on_stderr(ingested: Settings, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"query": "lighthouse north keeper", "expected": ["north.md"]}) + "\n")
    result = CliRunner().invoke(
        app, ["eval", str(questions), "--where", "year=1999", "--json"], env=settings_env(ingested)
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recall@5"] == 0.0  # stdout: the figures alone
    assert "none of your documents matches the filter" in " ".join(result.stderr.split())
    result = CliRunner().invoke(
        app, ["eval", str(questions), "--where", "year=2023", "--json"], env=settings_env(ingested)
    )
    assert result.exit_code == 0 and "matches the filter" not in result.stderr, result.output


def test_a_mime_type_is_matched_whatever_its_case(ingested: Settings) -> None:
    code, output = _cli(ingested, "search", "lighthouse", "-k", "10", "--mime", "TEXT/MARKDOWN", "--json")
    assert code == 0, output
    assert len({h["source"] for h in json.loads(output)}) == 4


def test_search_says_when_matching_documents_wait_for_reembed(db_url: str, tmp_path: Path) -> None:
    old = make_settings(db_url, tmp_path / "data", embedding_dimensions=256)
    new = make_settings(db_url, tmp_path / "data", embedding_dimensions=512)
    for settings, team, year in ((old, "a", "2024"), (new, "b", "2023")):
        root = tmp_path / team
        root.mkdir()
        (root / f"{team}.md").write_text(TEXT.format(name=team), encoding="utf-8")
        code, output = _cli(settings, "ingest", str(root), "--meta", f"year={year}")
        assert code == 0, output
    code, output = _cli(new, "search", "lighthouse", "--where", "year=2023")
    assert code == 0, output
    said = " ".join(output.split())
    assert "none of your searched documents matches the filter" in said, said
    assert (
        "1 chunk of your documents wait for `docingest reembed` (embedded by hashing/hashing-bow-v1/512)"
        in said
    )
    code, output = _cli(new, "search", "lighthouse", "--where", "year=1999")
    assert "1 chunk of your documents wait" in " ".join(output.split())  # it may match: not searched
