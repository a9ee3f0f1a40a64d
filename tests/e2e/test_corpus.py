"""The whole pipeline on the shared corpus, ingested once per session with the hashing
embedder: what these checks assert does not depend on the model's vectors (the chunker sizes
chunks with the model's own tokenizer whatever the embedder).

Checks: every file completes (source2e.pdf's 1,221 pages included); every chunk fits the
model's 256 word pieces and the chunks cover all of the parsed text, none of them only a
heading, a code fence or punctuation; a second ingest is a
no-op; the CLI's JSON shapes. The retrieval figures, which need the real model, are in
``tests/corpus/test_retrieval.py`` (``pytest -m corpus``, a CI step of its own).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docingest.providers.chunking.chunker import fragment_kind, load_tokenizer
from docingest.providers.embedding.local import model_dir
from docingest.runtime import Runtime
from docingest.settings import Settings
from docingest.stages.artifacts import ParsedArtifact
from docingest.stages.chunk import MARKDOWN_KINDS
from tests.conftest import CORPUS, new_database, settings_env
from tests.integration.helpers import rows

# Under pytest-xdist's loadscope (pyproject) this module's tests share one worker: one ingest.
pytestmark = [pytest.mark.e2e, pytest.mark.shared_corpus]
DOCS = CORPUS / "docs"
CORPUS_FILES = sorted(p for p in DOCS.rglob("*") if p.is_file())


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
def corpus(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The corpus ingested once with the hashing embedder: settings, runtime, summary."""
    data = tmp_path_factory.mktemp("corpus-data")
    settings = Settings(
        database_url=new_database(pg_url, "corpus"),
        data_dir=data,
        environment="test",
        embedding_provider="hashing",
    )
    proc = cli(settings, "ingest", str(DOCS), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    rt = Runtime(settings, migrate=False)
    yield {"settings": settings, "runtime": rt, "summary": summary}
    rt.close()


def test_every_corpus_file_completes(corpus: dict[str, Any]) -> None:
    s = corpus["summary"]
    print("\ningest summary:", json.dumps({k: v for k, v in s.items() if k != "failures"}))
    assert s["documents"] == len(CORPUS_FILES) and s["complete"] == len(CORPUS_FILES)
    assert s["failed"] == 0 and s["failed_by_code"] == {}
    assert s["pages"] >= 1221 and s["chunks"] > 5000
    for key in (
        "documents",
        "complete",
        "failed",
        "failed_by_code",
        "pages",
        "chunks",
        "wall_s",
        "docs_per_s",
    ):
        assert key in s
    source2e = rows(
        corpus["runtime"],
        "SELECT d.page_count, count(c.*) n FROM upload_pipeline.documents d "
        "JOIN upload_pipeline.document_chunks c USING (document_id) "
        "WHERE d.filename = 'source2e.pdf' GROUP BY 1",
    )
    assert source2e[0]["page_count"] == 1221 and source2e[0]["n"] > 1000


def test_every_chunk_fits_the_model_and_all_text_is_embedded(corpus: dict[str, Any]) -> None:
    rt: Runtime = corpus["runtime"]
    tok = load_tokenizer(str(model_dir() / "tokenizer.json"))
    docs = rows(rt, "SELECT * FROM upload_pipeline.documents")
    over = 0
    fragments: list[tuple[str, str]] = []
    for d in docs:
        chunks = rows(
            rt,
            "SELECT text, meta, token_count FROM upload_pipeline.document_chunks "
            "WHERE document_id = %s ORDER BY ordinal",
            (d["document_id"],),
        )
        counts = [len(e.ids) for e in tok.encode_batch([c["text"] for c in chunks])]
        over += sum(n > 256 for n in counts)
        assert counts == [c["token_count"] for c in chunks]
        from docingest.domain import Document

        artifact = ParsedArtifact.load(rt.storage, Document.from_row(d))
        text = artifact.text
        covered = bytearray(len(text))
        for c in chunks:
            start, end = c["meta"]["start"], c["meta"]["end"]
            header = c["meta"].get("header_chars", 0)  # a long table's header, repeated
            assert text[start:end] == c["text"][header:]
            assert not header or c["text"][:header] in text
            covered[start:end] = b"\x01" * (end - start)
        missing = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
        assert missing == [], f"{d['filename']}: {len(missing)} characters of text in no chunk"
        assert all(c["text"].strip() for c in chunks)
        markdown = artifact.kind in MARKDOWN_KINDS
        fragments += [(d["filename"], c["text"][:60]) for c in chunks if fragment_kind(c["text"], markdown)]
    assert over == 0
    assert fragments == []  # no chunk is only a heading, a code fence or punctuation


def test_second_ingest_is_a_no_op(corpus: dict[str, Any]) -> None:
    rt: Runtime = corpus["runtime"]
    jobs_before = rows(rt, "SELECT count(*) n FROM upload_pipeline.upload_jobs")[0]["n"]
    # A subfolder of the root ingested before, named with the prefix its files had then (their
    # sources are "md/installation.md", ...): the same sources and bytes, nothing to do.
    proc = cli(corpus["settings"], "ingest", str(DOCS / "md"), "--source-prefix", "md", "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    md_files = len(list((DOCS / "md").iterdir()))
    assert s["new"] == s["updated"] == 0 and s["duplicates"] == s["documents"] == s["complete"] == md_files
    assert rows(rt, "SELECT count(*) n FROM upload_pipeline.upload_jobs")[0]["n"] == jobs_before


def test_search_eval_and_status_json_shapes(corpus: dict[str, Any], tmp_path: Path) -> None:
    proc = cli(
        corpus["settings"], "search", "What is the difference between json and jsonb?", "-k", "3", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    assert len(hits) == 3
    assert {"document_id", "filename", "page", "score", "text"} <= hits[0].keys()
    out = tmp_path / "results.jsonl"
    proc = cli(
        corpus["settings"],
        "eval",
        str(CORPUS / "queries.jsonl"),
        "--json",
        "--mode",
        "vector",
        "--results-out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert {"recall@1", "recall@5", "mrr@5", "context_hit"} <= figures.keys()
    lines = out.read_text().splitlines()
    assert len(lines) == 56 and len(json.loads(lines[0])["results"]) == 20
    status = json.loads(cli(corpus["settings"], "status", "--json").stdout)
    assert len(status) == len(CORPUS_FILES)
    assert {
        "document_id",
        "job_id",
        "filename",
        "stage",
        "state",
        "attempts",
        "error_code",
        "error_message",
    } <= status[0].keys()
