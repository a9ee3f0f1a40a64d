"""``docingest ingest`` as a user runs it: summary, exit status, dedupe (hashing embedder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import numpy as np
import pytest

from docingest.settings import Settings
from tests.conftest import settings_env
from tests.integration.helpers import write_docs

pytestmark = pytest.mark.e2e


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "docingest.cli.main", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_ingest_reports_failures_by_code_and_exits_non_zero(settings: Settings, tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_docs(root / "nested" / "deeper", 3)
    (root / "empty.txt").write_bytes(b"")
    (root / "image.gif").write_bytes(b"GIF89a" + bytes(200))
    (root / ".hidden.md").write_text("# skipped\n\nhidden files are not ingested\n")
    proc = run_cli(settings, "ingest", str(root), "--json")
    assert proc.returncode == 1, proc.stderr
    s = json.loads(proc.stdout)
    assert s["documents"] == 5 and s["complete"] == 3 and s["failed"] == 2
    assert s["failed_by_code"] == {"empty_file": 1, "unsupported_type": 1}
    assert s["chunks"] >= 3 and s["wall_s"] > 0 and s["docs_per_s"] > 0
    assert {f["error_code"] for f in s["failures"]} == {"empty_file", "unsupported_type"}
    assert "docingest.jobs" not in proc.stderr  # the worker's job lines stay out of ingest's output

    # A subfolder ingested on its own names its files from there: with the prefix its sources
    # are those of the first run ("nested/deeper/doc-0000.md"), so they are duplicates.
    again = run_cli(settings, "ingest", str(root / "nested"), "--source-prefix", "nested")
    assert again.returncode == 0, again.stderr
    assert "duplicates" in again.stdout and "complete" in again.stdout  # the summary table
    assert "search it with" in again.stdout
    status = json.loads(run_cli(settings, "status", "--json").stdout)
    assert len(status) == 5
    failed = [r for r in status if r["state"] == "failed"]
    assert {r["error_code"] for r in failed} == {"empty_file", "unsupported_type"}
    assert all(r["attempts"] == 1 for r in failed), "permanent errors are not retried"
    # In an 80-column terminal each failure's message is printed whole, on its own line.
    table = subprocess.run(
        [sys.executable, "-m", "docingest.cli.main", "status"],
        env={**settings_env(settings), "COLUMNS": "80"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    lines = table.stdout.splitlines()
    for r in failed:
        assert f"{r['filename']} (job {r['job_id']}): {r['error_code']}: {r['error_message']}" in lines
    # A run in which every document fails stores nothing and says so (no search hint).
    only_failures = run_cli(settings, "ingest", str(root / "image.gif"))
    assert only_failures.returncode == 1
    assert "nothing was stored" in only_failures.stdout and "search it with" not in only_failures.stdout
    (tmp_path / "no-files").mkdir()
    none = run_cli(settings, "ingest", str(tmp_path / "no-files"))
    assert none.returncode == 0 and "no files to ingest" in none.stderr
    assert "nothing was stored" not in none.stdout and "search it with" not in none.stdout


def test_replaced_bytes_are_reported_by_ingest_and_status(settings: Settings, tmp_path: Path) -> None:
    """UTF-8 with two Latin-1 bytes in it is decoded with U+FFFD: the job completes, and the
    warning is printed by ``ingest`` and kept in the job's progress (``status``)."""
    doc = tmp_path / "mixed.txt"
    doc.write_bytes("UTF-8 café ici, ".encode() + b"mais un octet latin1: \xe9t\xe9 fini.\n" * 3)
    proc = run_cli(settings, "ingest", str(doc))
    assert proc.returncode == 0, proc.stderr
    assert "warning: mixed.txt: text is not valid utf-8" in " ".join(proc.stdout.split())
    (job,) = json.loads(run_cli(settings, "status", "--json").stdout)
    assert job["state"] == "done" and "6 undecodable" in job["progress"]["parse_warnings"][0]
    wide = subprocess.run(
        [sys.executable, "-m", "docingest.cli.main", "status"],
        env={**settings_env(settings), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert "1 warning" in wide.stdout


def test_square_brackets_in_a_file_name_are_printed_as_they_are(settings: Settings, tmp_path: Path) -> None:
    """Rich markup is not applied to names: ``[draft]`` was eaten from tables and errors."""
    doc = tmp_path / "[draft] notes.md"
    doc.write_text("# Draft\n\nThe bracketed quokka memo is here.\n")
    assert run_cli(settings, "ingest", str(doc)).returncode == 0
    wide = {**settings_env(settings), "COLUMNS": "200"}
    for args in (("status",), ("search", "quokka")):
        proc = subprocess.run(
            [sys.executable, "-m", "docingest.cli.main", *args],
            env=wide,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert "[draft] notes.md" in proc.stdout, proc.stdout
    missing = run_cli(settings, "ingest", str(tmp_path / "[x] missing.md"))
    assert missing.returncode == 2 and "[x] missing.md" in missing.stderr


def test_ingest_of_a_missing_path_is_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    proc = run_cli(settings, "ingest", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert "no such file or directory" in proc.stderr
    assert "registering files" not in proc.stderr + proc.stdout  # no progress bar after it


def test_search_refuses_a_bad_mode_and_an_empty_query(settings: Settings) -> None:
    for command in (["search", "x"], ["eval", str(Path(__file__))]):  # one --mode option for both
        bad = run_cli(settings, *command, "--mode", "fuzzy")
        assert bad.returncode == 2 and "Invalid value for '--mode'" in bad.stderr, bad.stderr
    proc = run_cli(settings, "search", "   ")
    assert proc.returncode == 2 and "empty" in proc.stderr


def run_cli_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "docingest.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "DATABASE_URL",
            "postgresql://docingest@127.0.0.1:1/docingest",
            "database error: database_unavailable: cannot connect to UPLOAD_PIPELINE_DATABASE_URL",
        ),
        (
            "DATABASE_URL",
            "nonsense",
            "configuration error: invalid_configuration: UPLOAD_PIPELINE_DATABASE_URL is not a PostgreSQL URL",
        ),
        ("DATA_DIR", "FILE", "configuration error: invalid_configuration: UPLOAD_PIPELINE_DATA_DIR="),
        ("DATA_DIR", "/proc/nope", "invalid_configuration: UPLOAD_PIPELINE_DATA_DIR=/proc/nope"),
        (
            "MAX_FILE_BYTES",
            "ten",
            "configuration error: invalid_configuration: UPLOAD_PIPELINE_MAX_FILE_BYTES:",
        ),
    ],
)
@pytest.mark.parametrize("command", [("status",), ("migrate",), ("search", "x"), ("worker",)])
def test_operator_mistakes_are_one_line_errors_with_exit_2(
    settings: Settings, tmp_path: Path, name: str, value: str, expected: str, command: tuple[str, ...]
) -> None:
    if value == "FILE":
        value = str(tmp_path / "a-file")
        Path(value).write_text("not a directory")
    env = settings_env(settings)
    env[f"UPLOAD_PIPELINE_{name}"] = value
    proc = run_cli_env(env, *command)
    assert proc.returncode == 2, proc.stderr
    assert expected in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr and "│" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_serve_refuses_a_port_out_of_range(settings: Settings) -> None:
    proc = run_cli(settings, "serve", "--port", "99999")
    assert proc.returncode == 2 and "65535" in proc.stderr and "OverflowError" not in proc.stderr


def test_an_interrupted_ingest_says_how_to_resume(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import docingest.services.ingest
    from docingest.cli.main import app

    def interrupted(*args: object, **kwargs: object) -> None:
        raise docingest.services.ingest.IngestInterrupted(7)

    monkeypatch.setattr(docingest.services.ingest, "ingest", interrupted)
    write_docs(tmp_path / "in", 1)
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "in")], env=settings_env(settings))
    assert result.exit_code == 130, result.output
    assert "interrupted: 7 documents not finished; run the same command again to resume" in " ".join(
        result.output.split()
    )


def test_delete_removes_a_document_and_an_edited_file_is_then_ingested_anew(
    settings: Settings, tmp_path: Path
) -> None:
    from docingest.runtime import Runtime
    from tests.fixtures import pipeline

    paths = write_docs(tmp_path / "in", 2)
    assert run_cli(settings, "ingest", str(tmp_path / "in")).returncode == 0
    docs = {r["filename"]: r["document_id"] for r in json.loads(run_cli(settings, "status", "--json").stdout)}
    gone = docs[paths[0].name]
    rt = Runtime(settings, migrate=False)
    try:
        with rt.pool().connection() as conn:
            raw_path = rt.repo.get_document(conn, UUID(gone)).raw_path  # type: ignore[union-attr]
        assert rt.storage.head(raw_path) is not None and pipeline.chunks(rt, UUID(gone))

        other_user = run_cli(settings, "delete", gone, "--user", "someone-else")
        assert other_user.returncode == 1 and f"no document {gone}" in other_user.stderr
        proc = run_cli(settings, "delete", gone)
        assert proc.returncode == 0, proc.stderr
        assert f"deleted {gone} ({paths[0].name})" in proc.stdout
        assert rt.storage.head(raw_path) is None and pipeline.chunks(rt, UUID(gone)) == []
        status = json.loads(run_cli(settings, "status", "--json").stdout)
        assert [r["filename"] for r in status] == [paths[1].name]
        assert pipeline.chunks(rt, UUID(docs[paths[1].name]))  # the other one is untouched
    finally:
        rt.close()

    again = run_cli(settings, "delete", gone)
    assert again.returncode == 1 and f"not_found: no document {gone}" in again.stderr
    assert "Traceback" not in again.stderr
    unknown_job = run_cli(settings, "retry", "00000000-0000-0000-0000-000000000001")
    assert unknown_job.returncode == 1
    assert "not_found: no job 00000000-0000-0000-0000-000000000001" in " ".join(unknown_job.stderr.split())
    assert run_cli(settings, "delete", "not-a-uuid").returncode == 2
    paths[0].write_text(paths[0].read_text() + "\nedited\n")
    s = json.loads(run_cli(settings, "ingest", str(tmp_path / "in"), "--json").stdout)
    assert (s["new"], s["duplicates"]) == (1, 1)


def test_an_unmigrated_database_is_a_one_line_error_naming_migrate(pg_url: str, tmp_path: Path) -> None:
    import psycopg

    from tests.conftest import make_settings, with_database

    name = f"unmigrated_{os.getpid()}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")  # from template1: no pgvector, no schema
    settings = make_settings(with_database(pg_url, name), tmp_path / "data")
    proc = run_cli(settings, "status")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "docingest migrate" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert run_cli(settings, "migrate").returncode == 0
    assert run_cli(settings, "status").returncode == 0


def test_a_configuration_error_names_the_environment_variable(settings: Settings) -> None:
    env = {**settings_env(settings), "UPLOAD_PIPELINE_EMBEDDING_BACKEND": "nonsense"}
    proc = run_cli_env(env, "status")
    assert proc.returncode == 2
    assert "UPLOAD_PIPELINE_EMBEDDING_BACKEND: Input should be" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_overlap_no_chunk_can_hold_is_refused_at_start_up(settings: Settings) -> None:
    """A chunk overlap >= the chunk's capacity used to fail every job at chunking, retried."""
    from typer.testing import CliRunner

    from docingest.cli.main import app

    env = {**settings_env(settings), "UPLOAD_PIPELINE_CHUNK_OVERLAP_TOKENS": "100000"}
    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "UPLOAD_PIPELINE_CHUNK_OVERLAP_TOKENS (100000) must be smaller" in message
    assert "= 254" in message  # 256 max tokens minus [CLS] and [SEP]


def test_a_misspelt_setting_is_named_with_the_setting_it_resembles(settings: Settings) -> None:
    from typer.testing import CliRunner

    from docingest.cli.main import app

    env = {**settings_env(settings), "UPLOAD_PIPELINE_WORKER_CONCURENCY": "4"}
    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 0, result.output
    assert (
        "UPLOAD_PIPELINE_WORKER_CONCURENCY is not a docingest setting, ignored; did you mean "
        "UPLOAD_PIPELINE_WORKER_CONCURRENCY?"
    ) in " ".join(result.output.split())


def test_search_with_the_embedding_provider_down_is_one_line_with_its_error_code(settings: Settings) -> None:
    from typer.testing import CliRunner

    from docingest.cli.main import app
    from docingest.runtime import Runtime
    from tests.fixtures.chunks import insert_chunks, unit

    # The user has chunks of the model the provider serves (its name and 384 dimensions), so the
    # search must embed the question (a user with nothing stored gets "no results" at once).
    rt = Runtime(settings, migrate=False)
    try:
        insert_chunks(rt, "local", unit(np.ones((1, 384))), model="all-MiniLM-L6-v2")
    finally:
        rt.close()
    env = {
        **settings_env(settings),
        "UPLOAD_PIPELINE_EMBEDDING_PROVIDER": "openai",
        "UPLOAD_PIPELINE_OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # discard port: refused
        "UPLOAD_PIPELINE_EMBEDDING_REQUEST_ATTEMPTS": "1",
    }
    result = CliRunner().invoke(app, ["search", "what is vacuum"], env=env)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: embedding_unavailable: ")
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_query_over_the_limit_shows_query_too_long(settings: Settings) -> None:
    from typer.testing import CliRunner

    from docingest.cli.main import app

    env = {**settings_env(settings), "UPLOAD_PIPELINE_SEARCH_MAX_QUERY_CHARS": "10"}
    result = CliRunner().invoke(app, ["search", "a question longer than ten characters"], env=env)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: query_too_long: ")


def test_an_empty_folder_says_there_was_nothing_to_ingest(settings: Settings, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from docingest.cli.main import app

    (tmp_path / "in" / ".git").mkdir(parents=True)
    (tmp_path / "in" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "in")], env=settings_env(settings))
    assert result.exit_code == 0, result.output
    assert "warning: no files to ingest under" in " ".join(result.output.split())
    assert "hidden files and folders are skipped" in " ".join(result.output.split())


def test_a_misspelt_setting_in_the_env_file_is_named_too(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from docingest.cli.main import app

    monkeypatch.chdir(tmp_path)  # Settings reads ./.env
    (tmp_path / ".env").write_text("UPLOAD_PIPELINE_MAX_RETRYS=3\n")
    result = CliRunner().invoke(app, ["status"], env=settings_env(settings))
    assert result.exit_code == 0, result.output
    assert (
        "UPLOAD_PIPELINE_MAX_RETRYS is not a docingest setting, ignored; did you mean "
        "UPLOAD_PIPELINE_MAX_RETRIES?"
    ) in " ".join(result.output.split())


def test_a_min_score_no_hit_reaches_says_so(settings: Settings, tmp_path: Path) -> None:
    write_docs(tmp_path / "in", 2)
    assert run_cli(settings, "ingest", str(tmp_path / "in")).returncode == 0
    every = run_cli(settings, "search", "document", "--json", "--min-score", "-1")
    hits = json.loads(every.stdout)
    assert hits and all(-1.0 <= h["score"] <= 1.0 for h in hits)
    none = run_cli(settings, "search", "document", "--json", "--min-score", "1")
    assert none.returncode == 0 and json.loads(none.stdout) == []
    said = " ".join(none.stderr.split())
    assert "no results at or above --min-score 1: every hit's score (cosine similarity) is lower" in said
    assert "none is complete" not in said  # the documents are fine: the cutoff removed the hits


@pytest.mark.parametrize("value", ["nan", "1.5", "-2"])
def test_a_min_score_outside_minus_one_to_one_is_refused_by_its_value(value: str) -> None:
    from typer.testing import CliRunner

    from docingest.cli.main import app

    result = CliRunner().invoke(app, ["search", "anything", "--min-score", value])
    said = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2, result.output
    assert f"a cosine similarity is a number from -1 to 1, not {float(value):g}" in said, said


def _sea_notes(path: Path) -> Path:
    """A Markdown file of eight sections, one chunk each (the hashing embedder's chunker)."""
    filler = " ".join(f"line {i} of the survey mentions the harbour wall" for i in range(14))
    sections = [f"## Section {s}\n\nsection{s} marker. {filler} end of section{s}.\n" for s in range(8)]
    path.write_text("# Sea notes\n\n" + "\n".join(sections))
    return path


def test_search_context_prints_each_hit_with_its_neighbours(settings: Settings, tmp_path: Path) -> None:
    _sea_notes(tmp_path / "sea.md")
    assert run_cli(settings, "ingest", str(tmp_path / "sea.md")).returncode == 0

    def search(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "docingest.cli.main", "search", *args],
            env={**settings_env(settings), "COLUMNS": "200"},
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    # --json: the hit (section 4 is chunk 4) with chunks 3 and 5 around it, in order.
    (hit,) = json.loads(search("section4 marker", "-k", "1", "--json", "--context", "1").stdout)
    assert (hit["ordinal"], hit["passage_rank"]) == (4, 1)
    passage = hit["passage"]
    assert passage["ordinals"] == [3, 4, 5] and passage["hit_ranks"] == [1]
    spans = [passage["text"][c["start"] : c["end"]] for c in passage["chunks"]]
    assert [f"section{o} marker" in t for o, t in zip([3, 4, 5], spans, strict=True)] == [True] * 3
    assert spans[1] == hit["text"] and [c["hit_rank"] for c in passage["chunks"]] == [None, 1, None]
    # Clipped at the document's first and last chunks.
    for query, ordinals in (("section0 marker", [0, 1, 2]), ("section7 marker", [5, 6, 7])):
        (edge,) = json.loads(search(query, "-k", "1", "--json", "-C", "2").stdout)
        assert edge["passage"]["ordinals"] == ordinals
    # Without --context: no passage, and the table.
    (plain,) = json.loads(search("section4 marker", "-k", "1", "--json").stdout)
    assert plain["passage"] is None and plain["passage_rank"] is None
    assert "section3 marker" not in search("section4 marker", "-k", "1").stdout

    # Printed: the passage under its header, its chunks in document order with the hit's rank.
    printed = search("section4 marker", "-k", "1", "-C", "1").stdout
    assert all(line == line.rstrip() for line in printed.splitlines())  # no padding to copy
    shown = " ".join(printed.split())
    assert shown.startswith("#1 sea.md score ") and " chunks 3-5 " in shown
    at = [shown.index(f"{o} ## Section {o} section{o} marker.") for o in (3, 5)]
    assert at[0] < shown.index("#1 4 ## Section 4 section4 marker.") < at[1]
    assert "section2 marker" not in shown and "section6 marker" not in shown
    # Three hits: each passage printed once, under its best hit; a hit inside it points there.
    hits = json.loads(search("section4 marker", "-k", "3", "--json", "-C", "1").stdout)
    shown = " ".join(search("section4 marker", "-k", "3", "-C", "1").stdout.split())
    for h in hits:
        if h["passage"] is None:
            line = f"#{h['rank']} sea.md score {h['score']:.2f} chunk {h['ordinal']}: in #{h['passage_rank']}'s passage above"
            assert line in shown
        else:
            first, last = h["passage"]["ordinals"][0], h["passage"]["ordinals"][-1]
            assert f"#{h['rank']} sea.md score {h['score']:.2f} chunks {first}-{last}" in shown
    printed = [o for h in hits if h["passage"] for o in h["passage"]["ordinals"]]
    assert len(printed) == len(set(printed))
    assert all(shown.count(f"section{o} marker.") == 1 for o in printed)


@pytest.mark.parametrize("value", ["-1", "11", "two"])
def test_search_refuses_a_bad_context(settings: Settings, value: str) -> None:
    proc = run_cli(settings, "search", "tides", "--context", value)
    assert proc.returncode == 2 and "Invalid value for '--context' / '-C'" in proc.stderr, proc.stderr
