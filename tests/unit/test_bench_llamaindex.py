"""The LlamaIndex benchmark's counting and mapping (bench/llamaindex.py), on small inputs.

The tokens-embedded figure (a chunk counts up to the model's 256 tokens, special tokens and
a metadata header included) and the mapping of LlamaIndex's nodes to the question file's
relative paths, scored with docingest's own ``question_scores``.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.llamaindex import embedded_tokens, questions_for, ranked_results, relative_path, token_counts

from docingest.services.evaluation import Question, question_scores


def test_a_chunk_counts_up_to_the_model_input_without_its_special_tokens() -> None:
    assert embedded_tokens([10, 254, 255, 1000]) == 10 + 254 + 254 + 254
    assert embedded_tokens([]) == 0
    assert embedded_tokens([300], max_tokens=128) == 126


def test_a_header_before_the_text_takes_part_of_the_input() -> None:
    assert embedded_tokens([10, 250, 300, 300], prefixes=[0, 10, 260, 54]) == 10 + 244 + 0 + 200


def test_token_counts_use_the_model_tokenizer_untruncated_without_special_tokens() -> None:
    # the packaged tokenizer.json truncates at 128: a 300-word text must still count 300
    assert token_counts(["word " * 300, "hello", ""]) == [300, 1, 0]


def test_nodes_map_to_paths_relative_to_the_folder(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    rows = ranked_results(
        [(str(docs / "md" / "b.md"), "about b"), (str(docs / "pdf" / "a.pdf"), "the phrase is here")], docs
    )
    assert rows == [
        {"path": "md/b.md", "filename": "b.md", "text": "about b"},
        {"path": "pdf/a.pdf", "filename": "a.pdf", "text": "the phrase is here"},
    ]
    assert relative_path("/elsewhere/c.txt", docs) == "/elsewhere/c.txt"


def test_mapped_nodes_are_scored_as_docingest_hits(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    question = Question("q", ["pdf/a.pdf"], "Phrase  is")
    second = ranked_results(
        [(str(docs / "md" / "b.md"), "about b"), (str(docs / "pdf" / "a.pdf"), "the phrase is here")], docs
    )
    assert question_scores(question, second) == {
        "recall@1": 0.0,
        "recall@5": 1.0,
        "mrr@5": 0.5,
        "context_hit": 1.0,
    }
    missed = ranked_results([(str(docs / "md" / "b.md"), "the phrase is here")], docs)
    assert question_scores(question, missed) == {
        "recall@1": 0.0,
        "recall@5": 0.0,
        "mrr@5": 0.0,
        "context_hit": 0.0,
    }


def test_quick_questions_keep_those_about_the_files_present(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "md").mkdir(parents=True)
    (docs / "md" / "a.md").write_text("# a\n")
    lines = [
        {"query": "about a", "expected": ["md/a.md", "html/a.html"], "phrase": "a"},
        {"query": "about b", "expected": ["pdf/b.pdf"], "phrase": "b"},
    ]
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in lines))
    kept = questions_for(questions, docs, tmp_path)
    assert [json.loads(line)["query"] for line in kept.read_text().splitlines()] == ["about a"]
