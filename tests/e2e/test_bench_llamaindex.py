"""The LlamaIndex side of ``python -m bench.llamaindex`` runs on a tiny folder of three formats.

Its child process reads a Markdown file, a PDF (whose text holds a NUL, which PostgreSQL
refuses) and a DOCX with ``SimpleDirectoryReader``, refuses PDFs or DOCX read as raw bytes,
ingests them into ``PGVectorStore`` on an embedded PostgreSQL with the packaged model, and
answers questions from its vector index; each question's file comes first only when that
file's text, not its bytes, was read and embedded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docx
import pytest

from tests.conftest import REPO
from tests.fixtures.pdfgen import PdfBuilder

pytestmark = pytest.mark.e2e

QUESTIONS = [
    {
        "query": "How is sourdough bread leavened?",
        "expected": ["pdf/bread.pdf"],
        "phrase": "wild yeast",
    },
    {
        "query": "Which chess opening starts with the king's pawn?",
        "expected": ["docx/chess.docx"],
        "phrase": "e4",
    },
    {
        "query": "What kind of lava do shield volcanoes erupt?",
        "expected": ["md/volcano.md"],
        "phrase": "basalt",
    },
]


def _tiny_folder(docs: Path) -> None:
    (docs / "md").mkdir(parents=True)
    (docs / "md" / "volcano.md").write_text(
        "# Volcanoes\n\nShield volcanoes erupt fluid basalt lava that flows far from the vent, "
        "building broad gentle slopes.\n"
    )
    (docs / "pdf").mkdir()
    (docs / "pdf" / "bread.pdf").write_bytes(
        PdfBuilder()
        .add_text_page(
            [b"Sourdough bread is leavened by wild yeast and lactic acid bacteria", b"kept in a starter.\x01"]
        )
        .build()
    )
    (docs / "docx").mkdir()
    document = docx.Document()
    document.add_paragraph("The King's Pawn opening begins with the move e4, the king's pawn two squares.")
    document.save(str(docs / "docx" / "chess.docx"))


def test_the_llamaindex_side_reads_text_ingests_and_retrieves(tmp_path: Path) -> None:
    docs, data, out = tmp_path / "docs", tmp_path / "data", tmp_path / "report.json"
    _tiny_folder(docs)
    data.mkdir()
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.llamaindex", "--child", str(docs), str(questions), str(data), str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.splitlines()[0] == "INGESTED"
    report = json.loads(out.read_text())
    assert report["files"] == 3
    assert report["chunks"] == report["documents"] == 3  # one page, one file, one file: one node each
    assert 0 < report["embedded_tokens"] == report["chunk_tokens"]  # short nodes: all embedded
    assert report["embedded_tokens_after_header"] <= report["embedded_tokens"]
    assert report["retrieval"] == {
        "recall@1": 1.0,
        "recall@5": 1.0,
        "mrr@5": 1.0,
        "context_hit": 1.0,
        "questions": 3,
    }
