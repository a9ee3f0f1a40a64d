"""``docingest eval``: retrieval figures for a question file.

Question file: JSON lines ``{"query", "expected": [paths], "phrase"}``, one
question per line. A result matches an expected path
when its original file name equals the path's last component.

Figures (over distinct documents in rank order, a hit being any expected file):
recall@1, recall@5, MRR@5; and context-hit: walk the ranked chunks keeping
their words until 1,000 words in all are kept; a hit when a kept part of a
chunk from an expected file contains ``phrase`` (whitespace folded, case ignored).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docingest.domain import Mode
from docingest.services.documents import DocumentService
from docingest.services.filters import SearchFilter
from docingest.services.search import Searcher

CONTEXT_WORDS = 1000
RESULTS_PER_QUESTION = 20


@dataclass(frozen=True)
class Question:
    query: str
    expected: list[str]
    phrase: str


def load_questions(path: Path) -> list[Question]:
    """Read a JSON-lines question file.

    Raises:
        ValueError: naming the line that is not a valid question.
    """
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {exc.start}); a question file is UTF-8 JSON lines"
        ) from exc
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: not JSON ({exc})") from exc
        if not isinstance(obj, dict):
            raise ValueError(f"{path}:{n}: expected a JSON object")  # noqa: TRY004
        query, expected, phrase = obj.get("query"), obj.get("expected"), obj.get("phrase", "")
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"{path}:{n}: 'query' must be a non-empty string")
        if not isinstance(expected, list) or not expected or not all(isinstance(e, str) for e in expected):
            raise ValueError(f"{path}:{n}: 'expected' must be a non-empty list of file paths")
        if not isinstance(phrase, str):
            raise ValueError(f"{path}:{n}: 'phrase' must be a string")  # noqa: TRY004
        out.append(Question(query, expected, phrase))
    if not out:
        raise ValueError(f"{path}: no questions")
    return out


def unanswerable(questions: Iterable[Question], ingested: Iterable[str]) -> list[Question]:
    """The questions none of whose expected files is among ``ingested`` (file names).

    They score 0 whatever the search does: ``eval`` warns about them rather than letting
    them lower the figures silently.
    """
    names = set(ingested)
    return [q for q in questions if not any(Path(e).name in names for e in q.expected)]


def complete_filenames(documents: DocumentService, user_id: str) -> set[str]:
    """The file names of ``user_id``'s documents with a job ``done`` (searchable).

    Raises:
        psycopg.Error: the database cannot be read.
    """
    return {j["filename"] for j in documents.job_rows(user_id=user_id) if j["state"] == "done"}


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def question_scores(q: Question, results: list[dict[str, Any]]) -> dict[str, float]:
    """recall@1, recall@5, MRR@5 and context-hit of one question's ranked results."""
    expected = {Path(e).name for e in q.expected}
    docs: list[str] = []
    for r in results:
        if r["filename"] not in docs:
            docs.append(r["filename"])
    first = next((i for i, d in enumerate(docs[:5]) if d in expected), None)
    budget = CONTEXT_WORDS
    hit = False
    phrase = _fold(q.phrase)
    for r in results:
        if budget <= 0:
            break
        words = r["text"].split()
        kept = " ".join(words[:budget])
        budget -= len(words[:budget])
        if r["filename"] in expected and phrase and phrase in _fold(kept):
            hit = True
            break
    return {
        "recall@1": float(bool(docs) and docs[0] in expected),
        "recall@5": float(first is not None),
        "mrr@5": 1.0 / (first + 1) if first is not None else 0.0,
        "context_hit": float(hit),
    }


def aggregate(per_question: Iterable[dict[str, float]]) -> dict[str, float]:
    rows = list(per_question)
    keys = ["recall@1", "recall@5", "mrr@5", "context_hit"]
    return {k: round(sum(r[k] for r in rows) / len(rows), 4) if rows else 0.0 for k in keys}


def evaluate(
    searcher: Searcher,
    questions: list[Question],
    *,
    user_id: str,
    mode: Mode,
    filter: SearchFilter | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Run every question (over the documents ``filter`` matches, if given); return
    ``(figures, [{query, results}])`` (top 20 results each)."""
    records = []
    scores = []
    for q in questions:
        hits = [
            h.to_dict()
            for h in searcher.search(
                q.query, user_id=user_id, k=RESULTS_PER_QUESTION, mode=mode, filter=filter
            )
        ]
        scores.append(question_scores(q, hits))
        records.append(
            {"query": q.query, "expected": q.expected, "phrase": q.phrase, "mode": mode, "results": hits}
        )
    figures = aggregate(scores)
    figures["questions"] = len(questions)
    return figures, records
