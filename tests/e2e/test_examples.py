"""The sample documents under ``examples/``: a fresh clone ingests them on the defaults and
answers their questions; the committed renders say what their Markdown sources say."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from docingest.providers.parsing import detect, parse_file
from docingest.services.evaluation import load_questions
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

EXAMPLES = REPO / "examples"
DOCS = EXAMPLES / "docs"
SOURCES = sorted((DOCS / "md").glob("*.md"))
FORMATS = ("md", "pdf", "docx", "html")
QUESTIONS = load_questions(EXAMPLES / "queries.jsonl")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*$", re.MULTILINE)


def _fold(text: str) -> str:
    """Whitespace runs as one space, case folded: how ``eval`` matches a phrase."""
    return re.sub(r"\s+", " ", text).strip().lower()


def _headings(markdown: str) -> list[str]:
    """The ATX headings of a Markdown page, outside fenced code."""
    outside_code = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return _HEADING.findall(outside_code)


def test_every_question_names_example_files_and_every_page_is_asked_about() -> None:
    stems = {p.stem for p in SOURCES}
    assert len(stems) >= 6
    files = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*") if p.is_file()}
    assert files == {f"{fmt}/{stem}.{fmt}" for stem in stems for fmt in FORMATS}, (
        "examples/docs holds exactly each page in each format, nothing else"
    )
    asked = set()
    for q in QUESTIONS:
        assert q.phrase, f"{q.query!r} has no phrase"
        for name in q.expected:
            stem, _, ext = name.rpartition(".")
            assert (DOCS / ext / name).is_file(), (
                f"{q.query!r} expects {name}, which is not under examples/docs"
            )
            asked.add(stem)
    assert stems - asked == set(), "pages no question expects"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_rendered_files_say_what_their_source_says(source: Path) -> None:
    headings = _headings(source.read_text(encoding="utf-8"))
    phrases = [q.phrase for q in QUESTIONS if source.name in q.expected]
    assert len(headings) >= 3 and phrases
    for fmt in FORMATS:
        path = DOCS / fmt / f"{source.stem}.{fmt}"
        detected = detect(path, filename=path.name)
        assert detected.kind == {"md": "markdown"}.get(fmt, fmt)
        parsed = parse_file(path, detected.kind)
        assert parsed.warnings == []
        text = _fold(parsed.markdown)
        missing = [h for h in headings + phrases if _fold(h) not in text]
        assert missing == [], f"{path.name} lacks {missing}"
        if fmt == "docx":  # headings are real heading styles, parsed back as Markdown headings
            assert [_fold(h) for h in _headings(parsed.markdown)] == [_fold(h) for h in headings]


def _stop_postgres(data_dir: Path) -> None:
    """Stop the embedded PostgreSQL if a killed ``docingest`` left it running."""
    try:
        pid = int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])
        psutil.Process(pid).terminate()
    except (OSError, ValueError, IndexError, psutil.Error):
        pass


def test_a_fresh_clone_ingests_the_examples_and_answers_their_questions(
    tmp_path: Path, models_dir: Path
) -> None:
    """The README's first command on the defaults (the local model), in a clone with no
    ../shared beside it: every example completes, and every question finds its page in 5.
    The ONNX export is the test session's shared one (UPLOAD_PIPELINE_MODELS_DIR); exporting on
    first use is tested in tests/unit/test_embedding_backends.py."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    assert not (clone.parent / "shared").exists()
    expected_files = sorted(p for p in (clone / "examples" / "docs").rglob("*") if p.is_file())
    # Not under tmp_path: run as root, pgserver runs PostgreSQL as its own user, which must
    # traverse every parent, and pytest sets its base directory back to 0700 whenever another
    # session starts on the machine.
    data_dir = Path(tempfile.mkdtemp(prefix="docingest-examples-")) / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_PIPELINE_")}
    env["UPLOAD_PIPELINE_DATA_DIR"] = str(data_dir)
    env["UPLOAD_PIPELINE_MODELS_DIR"] = str(models_dir)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "docingest.cli.main", *args],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )

    try:
        started = time.monotonic()
        ingest = cli("ingest", "examples/docs", "--json")
        wall = time.monotonic() - started
        assert ingest.returncode == 0, ingest.stderr[-3000:]
        summary = json.loads(ingest.stdout)
        print(
            f"\ningest: {wall:.1f} s wall (the command), {summary['documents']} documents, "
            f"{summary['complete']} complete, {summary['pages']} pages, {summary['chunks']} chunks, "
            f"summary wall_s {summary['wall_s']}"
        )
        assert summary["documents"] == summary["complete"] == len(expected_files)
        assert summary["failed"] == 0

        evaluated = cli("eval", "examples/queries.jsonl", "--json")
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        assert "warning" not in evaluated.stdout + evaluated.stderr, "a question expects no ingested file"
        figures = json.loads(evaluated.stdout)
        print(f"eval: {figures}")
        assert figures["questions"] == len(QUESTIONS)
        assert figures["recall@5"] == 1.0
    finally:
        _stop_postgres(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)
