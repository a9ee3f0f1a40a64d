"""Retrieval figures on the shared corpus with the real local model (all-MiniLM-L6-v2 on the
default ONNX backend), ingested once per session through the CLI as a user would.

Deselected by the default run (``-m "not corpus"`` in pyproject's addopts); CI runs it as a
step of its own, ``pytest -m corpus``, where ``../shared/corpus`` is present. The structural
checks of the same corpus (every file completes, chunks fit, all text covered) run in the
default suite on the hashing embedder: ``tests/e2e/test_corpus.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docingest.runtime import Runtime
from docingest.services.evaluation import evaluate, load_questions
from docingest.settings import Settings
from tests.conftest import CORPUS, new_database, settings_env

pytestmark = [pytest.mark.e2e, pytest.mark.corpus, pytest.mark.shared_corpus]
DOCS = CORPUS / "docs"


def cli(settings: Settings, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "docingest.cli.main", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def corpus(
    pg_url: str, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The corpus ingested once with the default (local) embedder: settings, runtime, summary."""
    data = tmp_path_factory.mktemp("corpus-data")
    settings = Settings(
        database_url=new_database(pg_url, "corpus"),
        data_dir=data,
        environment="test",
        models_dir=models_dir,
    )
    proc = cli(settings, "ingest", str(DOCS), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    print("\ningest summary:", json.dumps({k: v for k, v in summary.items() if k != "failures"}))
    assert summary["complete"] == summary["documents"] == len([p for p in DOCS.rglob("*") if p.is_file()])
    assert summary["chunks"] <= settings.search_exact_max_chunks  # searched exactly: no HNSW index needed
    rt = Runtime(settings, migrate=False)
    yield {"settings": settings, "runtime": rt, "summary": summary}
    rt.close()


def test_retrieval_on_the_corpus_questions(corpus: dict[str, Any]) -> None:
    rt: Runtime = corpus["runtime"]
    questions = load_questions(CORPUS / "queries.jsonl")
    assert len(questions) == 56
    searcher = rt.searcher()
    figures = {
        mode: evaluate(searcher, questions, user_id="local", mode=mode)[0] for mode in ("vector", "hybrid")
    }
    for mode, f in figures.items():
        print(
            f"\n{mode:>6}: recall@1 {f['recall@1']:.3f}  recall@5 {f['recall@5']:.3f}  "
            f"MRR@5 {f['mrr@5']:.3f}  context-hit {f['context_hit']:.3f}"
        )
    default = figures["hybrid"]
    assert default["recall@1"] >= 0.84 and default["recall@5"] >= 0.98
    assert default["mrr@5"] >= 0.91 and default["context_hit"] >= 0.90
    for key in ("recall@1", "recall@5", "mrr@5", "context_hit"):
        assert figures["hybrid"][key] >= figures["vector"][key], f"hybrid is worse on {key}"


def test_search_answers_with_the_right_page(corpus: dict[str, Any]) -> None:
    proc = cli(
        corpus["settings"], "search", "What is the difference between json and jsonb?", "-k", "3", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    assert len(hits) == 3 and hits[0]["filename"] == "datatype-json.html"
    pdf_hit = json.loads(
        cli(corpus["settings"], "search", "LaTeX font encoding", "--json", "--mode", "vector").stdout
    )
    assert any(h["page"] for h in pdf_hit), "PDF results carry their page number"
