"""LlamaParse + OpenAI-compatible embeddings against the mock servers run as real processes.

Checks of issue 4: the whole pipeline over the shared corpus; 429/500 storms with no chunk
embedded twice and every Retry-After honoured; the embedding cache; dimension mismatches at
start-up and mid-run; LlamaParse failure, cancellation, timeout and never-finishing jobs; and
polling that never holds a worker slot.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from docingest.db.repository import _as_array
from docingest.domain import embedding_input
from docingest.runtime import Runtime
from docingest.services.ingest import ingest
from docingest.testing.mocks.openai import mock_vector
from tests.conftest import CORPUS, make_settings, settings_env
from tests.mockservers import (
    MockServer,
    child_env,
    docingest_cmd,
    llamaparse_settings,
    openai_settings,
)

pytestmark = [pytest.mark.e2e, pytest.mark.shared_corpus]
MD = CORPUS / "docs" / "md"
PDF = CORPUS / "docs" / "pdf" / "usrguide.pdf"


def _runtime(db_url: str, tmp_path: Path, **overrides: Any) -> Runtime:
    return Runtime(make_settings(db_url, tmp_path / "data", **overrides), migrate=False)


def _jobs(rt: Runtime) -> list[dict[str, Any]]:
    with rt.pool().connection() as conn:
        return rt.repo.list_jobs(conn)


def _sql(rt: Runtime, query: str, *params: Any) -> list[dict[str, Any]]:
    with rt.pool().connection() as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[no-any-return]


@pytest.fixture
def openai_mock(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    flags = getattr(request, "param", ())
    with MockServer("openai", *flags, log_dir=tmp_path) as mock:
        yield mock


def test_whole_pipeline_llamaparse_and_openai(db_url: str, tmp_path: Path) -> None:
    with (
        MockServer("openai", log_dir=tmp_path) as oa,
        MockServer("llamaparse", "--job-seconds", "0.5", log_dir=tmp_path) as lp,
    ):
        rt = _runtime(db_url, tmp_path, **openai_settings(oa), **llamaparse_settings(lp))
        try:
            rt.check_embedder_dimensions()
            summary = ingest(rt, [MD, PDF], concurrency=4, poll_seconds=0.2)
            rows = _sql(rt, "SELECT text, embedding, embed_model, meta FROM upload_pipeline.document_chunks")
            jobs = _jobs(rt)
        finally:
            rt.close()
        lp_stats = lp.stats()
    n_files = len(list(MD.iterdir())) + 1
    assert summary.complete == summary.documents == n_files, summary.failures
    assert summary.failed == 0 and summary.chunks == len(rows) > 0
    assert all(j["progress"].get("llamaparse_status") == "COMPLETED" for j in jobs)
    assert len(lp_stats["jobs"]) == n_files
    for r in rows:  # the stored vectors are the mock's, for the stored text after its context
        assert r["embed_model"] == "text-embedding-3-small"
        expected = mock_vector(embedding_input(r["text"], r["meta"]), 384)
        assert np.allclose(_as_array(r["embedding"]), expected, atol=1e-6)
    assert max((r["meta"] or {}).get("page") or 0 for r in rows) > 1  # PDF pages survive


@pytest.mark.parametrize(
    "openai_mock",
    [
        (
            "--rate-limit-rate",
            "0.3",
            "--retry-after",
            "1",
            "--error-rate",
            "0.1",
            "--malformed-rate",
            "0.03",
            "--seed",
            "7",
        )
    ],
    indirect=True,
)
def test_429_and_500_storm(db_url: str, tmp_path: Path, openai_mock: MockServer) -> None:
    rt = _runtime(
        db_url,
        tmp_path,
        **openai_settings(openai_mock, embedding_max_batch_inputs=8, embedding_cache=False),
        max_retries=20,
    )
    try:
        summary = ingest(rt, [MD], concurrency=4, poll_seconds=0.2)
    finally:
        rt.close()
    stats = openai_mock.stats()
    assert summary.complete == summary.documents and summary.failed == 0, summary.failures
    assert stats["by_status"].get("429", 0) > 3 and stats["by_status"].get("500", 0) > 0
    assert set(stats["embedded"].values()) == {1}  # no chunk text embedded twice
    assert stats["violations"] == []  # nobody came back before its Retry-After
    assert stats["global_violations"] == []  # and the backoff was shared


def test_embedding_cache_across_documents_and_users(
    db_url: str, tmp_path: Path, openai_mock: MockServer
) -> None:
    rt = _runtime(db_url, tmp_path, **openai_settings(openai_mock))
    src = MD / "caching.md"
    grown = tmp_path / "v2" / "caching.md"  # a chunk's vector depends on its title: the file name here
    grown.parent.mkdir()
    grown.write_text(src.read_text() + "\n\n## A new section\n\nNothing like this was sent before.\n")
    try:
        first = ingest(rt, [src], user_id="alice")
        sent_after_first = len(openai_mock.stats()["requests"])
        second = ingest(rt, [src], user_id="bob")  # same text, another user: all from the cache
        sent_after_second = len(openai_mock.stats()["requests"])
        third = ingest(rt, [grown], user_id="alice")
    finally:
        rt.close()
    stats = openai_mock.stats()
    assert first.complete == second.complete == third.complete == 1
    assert first.embedding_cache_hits == 0
    assert second.embedding_cache_hits == second.chunks > 0
    assert sent_after_second == sent_after_first  # not one request for the second document
    assert third.embedding_cache_hits > 0
    assert set(stats["embedded"].values()) == {1}


@pytest.mark.parametrize(
    "openai_mock",
    [
        (
            "--dimensions",
            "1536",
        )
    ],
    indirect=True,
)
def test_dimension_mismatch_refuses_start_and_fails_mid_run(
    db_url: str, tmp_path: Path, openai_mock: MockServer
) -> None:
    settings = make_settings(db_url, tmp_path / "data", **openai_settings(openai_mock))
    proc = subprocess.run(
        docingest_cmd("worker", "-c", "1"),
        env=child_env(settings_env(settings)),
        capture_output=True,
        timeout=120,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "embedding_dimension_mismatch" in proc.stdout + proc.stderr
    rt = Runtime(settings, migrate=False)
    try:  # no probe here: the mismatch is met mid-run, on the first reply
        summary = ingest(rt, [MD / "caching.md"], concurrency=2, poll_seconds=0.2)
        vectors = _sql(
            rt,
            "SELECT (SELECT count(*) FROM upload_pipeline.document_vector_buffer) AS b,"
            " (SELECT count(*) FROM upload_pipeline.document_chunks) AS c,"
            " (SELECT count(*) FROM upload_pipeline.embedding_cache) AS e",
        )[0]
    finally:
        rt.close()
    assert summary.failed_by_code == {"embedding_dimension_mismatch": 1}
    assert vectors == {"b": 0, "c": 0, "e": 0}


@pytest.mark.parametrize(
    ("flags", "code"),
    [
        (("--fail-rate", "1"), "remote_parse_failed"),
        (("--cancel-rate", "1"), "remote_parse_cancelled"),
        (("--job-seconds", "30"), "parse_timeout"),
        (("--never-finish-rate", "1", "--job-seconds", "0.1"), "parse_timeout"),
    ],
)
def test_llamaparse_failures_end_in_their_code(
    db_url: str, tmp_path: Path, flags: tuple[str, ...], code: str
) -> None:
    with MockServer("llamaparse", *flags, log_dir=tmp_path) as lp:
        rt = _runtime(
            db_url,
            tmp_path,
            **llamaparse_settings(
                lp, llamaparse_timeout_base_seconds=1.0, llamaparse_timeout_per_page_seconds=0.0
            ),
            max_retries=0,
        )
        try:
            summary = ingest(rt, [MD / "caching.md"], concurrency=1, poll_seconds=0.2)
        finally:
            rt.close()
    assert summary.failed_by_code == {code: 1}


def test_polling_never_holds_a_slot(db_url: str, tmp_path: Path) -> None:
    files = [MD / "caching.md", MD / "installation.md", MD / "authentication.md"]
    with MockServer("llamaparse", "--job-seconds", "2", log_dir=tmp_path) as lp:
        rt = _runtime(db_url, tmp_path, **llamaparse_settings(lp))
        try:
            summary = ingest(rt, files, concurrency=1, poll_seconds=0.2)
            events = _sql(
                rt,
                "SELECT type, stage, created_at FROM upload_pipeline.events"
                " WHERE type IN ('llamaparse_submitted', 'llamaparse_completed')"
                " ORDER BY event_id",
            )
        finally:
            rt.close()
    assert summary.complete == 3
    submitted = [e["created_at"] for e in events if e["type"] == "llamaparse_submitted"]
    completed = [e["created_at"] for e in events if e["type"] == "llamaparse_completed"]
    # One slot: every document was submitted while the first parse was still pending.
    assert len(submitted) == 3 and max(submitted) < min(completed)
    assert summary.wall_s < 3 * 2.0 + 4


def test_webhook_finishes_a_parse_early(db_url: str, tmp_path: Path) -> None:
    import threading

    import httpx
    import uvicorn
    from fastapi import FastAPI

    from docingest.api.routes import webhooks
    from docingest.providers.parsing.llamaparse import llamaparse_signature
    from tests.mockservers import free_port

    port = free_port()
    with MockServer("llamaparse", "--job-seconds", "1", log_dir=tmp_path) as lp:
        rt = _runtime(
            db_url,
            tmp_path,
            **llamaparse_settings(lp, llamaparse_poll_seconds=60.0, llamaparse_poll_max_seconds=60.0),
            webhook_base_url=f"http://127.0.0.1:{port}",
            webhook_secret="s3cret-for-tests",
        )
        app = FastAPI()
        app.state.runtime = rt  # what the route's dependencies read (api/deps.py)
        app.include_router(webhooks.router)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            summary = ingest(rt, [MD / "caching.md"], concurrency=1, poll_seconds=0.2)
            job_id = _jobs(rt)[0]["job_id"]
            bad = httpx.post(
                f"http://127.0.0.1:{port}/api/v2/webhooks/llamaparse/{job_id}",
                headers={"X-Docingest-Signature": "0" * 64},
                json={"data": {}},
            )
            good_sig = llamaparse_signature("s3cret-for-tests", job_id)
            stale = httpx.post(
                f"http://127.0.0.1:{port}/api/v2/webhooks/llamaparse/{job_id}",
                headers={"X-Docingest-Signature": good_sig},
                json={"data": {"job_id": "pjb-other"}},
            )
        finally:
            server.should_exit = True
            thread.join(10)
            rt.close()
    assert summary.complete == 1 and summary.wall_s < 30  # the 60 s poll delay was cut short
    assert bad.status_code == 401 and stale.status_code == 404


def test_mock_openai_contract(openai_mock: MockServer) -> None:
    import httpx

    r = httpx.post(
        f"{openai_mock.url}/v1/embeddings",
        headers={"Authorization": "Bearer k"},
        json={"input": ["b", "a"], "model": "text-embedding-3-small", "dimensions": 8},
    )
    body = r.json()
    assert [d["index"] for d in body["data"]] == [0, 1] and body["usage"]["prompt_tokens"] == 2
    again = httpx.post(
        f"{openai_mock.url}/v1/embeddings",
        headers={"Authorization": "Bearer k"},
        json={"input": ["a"], "model": "text-embedding-3-small", "dimensions": 8},
    ).json()
    assert body["data"][1]["embedding"] == again["data"][0]["embedding"]  # any batch position
    assert (
        httpx.post(f"{openai_mock.url}/v1/embeddings", json={"input": ["a"], "model": "m"}).status_code == 401
    )
    assert hashlib.sha256(b"a").hexdigest() in openai_mock.stats()["embedded"]


@pytest.mark.parametrize(
    "openai_mock",
    [
        (
            "--latency-ms",
            "40",
        )
    ],
    indirect=True,
)
def test_spare_lanes_never_put_more_than_concurrency_requests_in_flight(openai_mock: MockServer) -> None:
    """Twice the lanes of the concurrency wait on the HTTP pool: the provider sees at most
    ``concurrency`` requests at once (and does see that many), and every vector comes back."""
    from docingest.providers.embedding import make_embedder
    from docingest.settings import Settings

    embedder: Any = make_embedder(
        Settings(
            environment="test",
            embedding_concurrency=3,
            embedding_max_batch_inputs=2,
            **openai_settings(openai_mock),
        )
    )
    texts = [f"text number {i}" for i in range(48)]
    try:
        assert embedder.lanes == 6 and embedder.concurrency == 3
        vectors = embedder.embed(texts)
    finally:
        embedder.close()
    assert np.allclose(vectors, np.stack([mock_vector(t, 384) for t in texts]), atol=1e-6)
    spans = [(r["t"], r["answered"]) for r in openai_mock.stats()["requests"]]
    assert len(spans) == 24
    edges = sorted([(t, 1) for t, _ in spans] + [(a, -1) for _, a in spans])  # an end sorts first
    in_flight, most = 0, 0
    for _, step in edges:
        in_flight += step
        most = max(most, in_flight)
    assert most == 3, most


@pytest.mark.parametrize(
    "openai_mock",
    [
        (
            "--latency-ms",
            "40",
        )
    ],
    indirect=True,
)
def test_with_faults_on_the_openai_embedder_still_sends_planned_batches_concurrently(
    db_url: str, tmp_path: Path, openai_mock: MockServer
) -> None:
    """Fault injection wraps the runtime's embedder without hiding its batching: the
    embedding stage's call (``embed_batches``) still sends the provider batches of
    ``EMBEDDING_MAX_BATCH_INPUTS`` texts, ``EMBEDDING_CONCURRENCY`` of them at once."""
    from docingest.domain import Stage
    from docingest.testing.faults import FaultyEmbedder

    rt = _runtime(
        db_url,
        tmp_path,
        **openai_settings(openai_mock),
        embedding_concurrency=3,
        embedding_max_batch_inputs=2,
        fault_embedding_delay_seconds=0.001,
    )
    texts = [f"text number {i}" for i in range(48)]
    try:
        embedder = rt.embedder()
        assert isinstance(embedder, FaultyEmbedder)
        stage = rt.handlers()[Stage.EMBEDDING_IN_PROGRESS]
        assert stage.embedder is embedder  # type: ignore[attr-defined]
        batches = sorted((start, end) for start, end, _ in embedder.embed_batches(iter(texts)))
    finally:
        rt.close()
    assert batches == [(i, i + 2) for i in range(0, 48, 2)]
    spans = [(r["t"], r["answered"]) for r in openai_mock.stats()["requests"]]
    assert len(spans) == 24
    edges = sorted([(t, 1) for t, _ in spans] + [(a, -1) for _, a in spans])
    in_flight, most = 0, 0
    for _, step in edges:
        in_flight += step
        most = max(most, in_flight)
    assert most == 3, most


@pytest.mark.parametrize(
    "openai_mock",
    [
        (
            "--max-input-tokens",
            "5",
        )
    ],
    indirect=True,
)
def test_context_length_400_is_permanent_and_not_retried(openai_mock: MockServer) -> None:
    from docingest.errors import EmbeddingInputTooLong
    from docingest.providers.embedding import make_embedder
    from docingest.settings import Settings

    embedder: Any = make_embedder(Settings(environment="test", **openai_settings(openai_mock)))
    try:
        with pytest.raises(EmbeddingInputTooLong):
            embedder.embed(["one two three four five six seven eight nine ten"])
    finally:
        embedder.close()
    assert openai_mock.stats()["by_status"] == {"400": 1}


def test_llamaparse_transient_errors_retry(db_url: str, tmp_path: Path) -> None:
    flags = (
        "--error-rate",
        "0.15",
        "--rate-limit-rate",
        "0.15",
        "--retry-after",
        "0.2",
        "--malformed-rate",
        "0.05",
        "--job-seconds",
        "0.3",
        "--seed",
        "3",
    )
    with MockServer("llamaparse", *flags, log_dir=tmp_path) as lp:
        rt = _runtime(db_url, tmp_path, **llamaparse_settings(lp), max_retries=40)
        try:
            summary = ingest(rt, [MD / "caching.md", MD / "installation.md"], concurrency=2, poll_seconds=0.2)
        finally:
            rt.close()
        stats = lp.stats()
    assert summary.complete == 2, summary.failures
    assert stats["by_status"].get("500", 0) + stats["by_status"].get("429", 0) > 0


def test_embedding_starts_before_the_texts_are_read_and_sends_each_text_once(
    db_url: str, tmp_path: Path, openai_mock: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """700 chunks, one text at ordinals far apart (in different text blocks): the stage reads its
    texts a block at a time while requests are in flight, and sends the repeated text once."""
    from docingest.db.repository import Repository
    from docingest.stages.embed import EmbedChunks

    rng = random.Random(3)
    words = ["river", "stone", "cloud", "paper", "lamp", "orbit", "garden", "silver", "copper", "delta"]

    def section(title: str) -> str:  # about 160 word pieces: one chunk per section
        return f"# {title}\n\n" + " ".join(rng.choice(words) for _ in range(150)) + f" {title}.\n\n"

    repeated = section("Repeated")
    sections = [section(f"Section {i}") for i in range(700)]
    for at in (5, 300, 650):
        sections[at] = repeated
    doc = tmp_path / "long.md"
    doc.write_text("".join(sections))
    reads: list[float] = []
    original = Repository.chunk_texts

    def recorded(self: Repository, conn: Any, document_id: Any, chunk_ids: Any) -> list[str]:
        reads.append(time.time())
        return original(self, conn, document_id, chunk_ids)

    monkeypatch.setattr(Repository, "chunk_texts", recorded)
    rt = _runtime(
        db_url,
        tmp_path,
        **openai_settings(
            openai_mock, embedding_max_batch_inputs=8, embedding_concurrency=2, embedding_cache=False
        ),
    )
    try:
        summary = ingest(rt, [doc])
        stored = _sql(rt, "SELECT text, meta, embedding FROM upload_pipeline.document_chunks")
    finally:
        rt.close()
    stats = openai_mock.stats()
    assert summary.complete == 1 and summary.chunks == len(stored) == 700
    assert sum(r["text"] == repeated.strip() for r in stored) == 3
    for r in stored:  # every chunk, the repeated ones included, has the mock's vector of what it sent
        expected = mock_vector(embedding_input(r["text"], r["meta"]), 384)
        assert np.allclose(_as_array(r["embedding"]), expected, atol=1e-6)
    assert set(stats["embedded"].values()) == {1} and len(stats["embedded"]) == 698
    first, block = EmbedChunks.TEXT_BLOCKS
    assert len(reads) == 1 + -(-(698 - first) // block)  # 698 distinct texts, read in blocks
    first_request = min(r["t"] for r in stats["requests"] if r["path"].endswith("/embeddings"))
    assert first_request < reads[-1]  # sending began before the last block was read
