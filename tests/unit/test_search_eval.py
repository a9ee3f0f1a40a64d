"""Reciprocal rank fusion and the evaluation figures, on hand-made rankings."""

from __future__ import annotations

from pathlib import Path

import pytest

from docingest.services.evaluation import Question, aggregate, load_questions, question_scores
from docingest.services.search import reciprocal_rank_fusion


def test_rrf_rewards_items_ranked_by_both_lists() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c"]], k=60)
    assert max(fused, key=fused.get) == "b"
    assert fused["a"] == 1 / 61
    weighted = reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0, 0.5])
    assert weighted["a"] > weighted["b"]


def _r(filename: str, text: str) -> dict:
    return {"filename": filename, "text": text}


def test_question_scores_use_distinct_documents_in_rank_order() -> None:
    q = Question("q", ["html/b.html"], "needle")
    results = [_r("a.md", "x"), _r("a.md", "y"), _r("b.html", "the needle is here")]
    s = question_scores(q, results)
    assert s == {"recall@1": 0.0, "recall@5": 1.0, "mrr@5": 0.5, "context_hit": 1.0}


def test_context_hit_respects_the_word_budget() -> None:
    q = Question("q", ["b.html"], "needle  IN haystack")
    long_chunk = _r("a.md", "word " * 999)
    hit_inside = [long_chunk, _r("b.html", "needle in haystack")]
    assert question_scores(q, hit_inside)["context_hit"] == 0.0  # only 1 word of budget left
    assert question_scores(q, hit_inside[1:])["context_hit"] == 1.0


def test_aggregate_means() -> None:
    rows = [
        {"recall@1": 1, "recall@5": 1, "mrr@5": 1, "context_hit": 0},
        {"recall@1": 0, "recall@5": 1, "mrr@5": 0.5, "context_hit": 1},
    ]
    assert aggregate(rows) == {"recall@1": 0.5, "recall@5": 1.0, "mrr@5": 0.75, "context_hit": 0.5}


def test_question_files_are_validated_line_by_line(tmp_path) -> None:
    import pytest

    from docingest.services.evaluation import load_questions

    bad = {
        '{"query": 5, "expected": ["a.md"]}': "'query' must be a non-empty string",
        '{"query": "q", "expected": "md/a.md"}': "'expected' must be a non-empty list",
        "[1, 2]": "expected a JSON object",
        "not json": "not JSON",
    }
    for line, message in bad.items():
        path = tmp_path / "q.jsonl"
        path.write_text('{"query": "ok", "expected": ["a.md"], "phrase": "x"}\n' + line + "\n")
        with pytest.raises(ValueError, match=r"q\.jsonl:2: " + message.replace("(", r"\(")):
            load_questions(path)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no questions"):
        load_questions(tmp_path / "empty.jsonl")


def test_the_search_service_refuses_an_over_long_query_for_the_cli_and_the_api(tmp_path) -> None:
    from docingest.errors import QueryTooLong
    from docingest.runtime import Runtime
    from docingest.settings import Settings

    rt = Runtime(Settings(data_dir=tmp_path, environment="test", embedding_provider="hashing"))
    with pytest.raises(QueryTooLong) as caught:  # never embedded nor sent to the database
        rt.searcher().search("otter " * 2000, user_id="u")
    assert isinstance(caught.value, ValueError)  # the CLI prints it and exits 2
    assert caught.value.error_code == "query_too_long" and caught.value.http_status == 422
    assert "12000 characters; at most 2000" in caught.value.message


@pytest.mark.parametrize("query", ["", "   ", "\x00 \t\u3000"])
def test_the_search_service_refuses_a_blank_query_as_the_api_does(tmp_path: Path, query: str) -> None:
    from docingest.errors import InvalidRequest, RequestError
    from docingest.runtime import Runtime
    from docingest.settings import Settings

    rt = Runtime(Settings(data_dir=tmp_path, environment="test", embedding_provider="hashing"))
    with pytest.raises(InvalidRequest) as caught:  # never embedded nor sent to the database
        rt.searcher().search(query, user_id="u")
    assert isinstance(caught.value, RequestError)  # the CLI prints it and exits 2
    assert (caught.value.error_code, caught.value.http_status) == ("invalid_request", 422)
    assert "empty" in caught.value.message


def test_a_question_file_that_is_not_utf8_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "questions.jsonl"
    path.write_bytes('{"query": "caf\u00e9", "expected": ["a.md"]}\n'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"questions\.jsonl: not UTF-8 text \(byte 14\)"):
        load_questions(path)


def test_unanswerable_lists_questions_whose_expected_files_were_never_ingested() -> None:
    from docingest.services.evaluation import unanswerable

    qs = [
        Question("q1", ["md/a.md"], ""),
        Question("q2", ["pdf/b.pdf", "md/c.md"], ""),
        Question("q3", ["html/d.html"], ""),
    ]
    assert [q.query for q in unanswerable(qs, ["a.md", "c.md"])] == ["q3"]
    assert [q.query for q in unanswerable(qs, [])] == ["q1", "q2", "q3"]
