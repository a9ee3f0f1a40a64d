"""Chaos: 120 documents through 3 worker processes that are SIGKILLed at random,
while storage and the embedder fail 10% of their calls transiently.

The documents are the good corpus (shared/corpus/docs) but for its files over 1 MB
(three PDFs whose parse alone took minutes, twice, and proved nothing more), the
generated bad inputs, and small generated good documents up to 120. A clean run (in-process, no faults,
no kills) of the same files is the reference. At the end:
- every document is terminal within the time limit, no job is left working;
- every document has the clean run's outcome: state and error_code, and for a
  complete one exactly the clean run's chunks (ordinals, texts, token counts,
  metadata) under the deterministic ids ``uuid5(document_id, chunker:version:ordinal)``;
- every bad input ends as its table says; no complete document has zero chunks;
- the staging buffers are empty; no worker died except by the driver's hand.
Prints documents, kills, injected faults seen by jobs, takeovers and drain time.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import pytest

from docingest.providers.chunking.chunker import chunk_id
from docingest.runtime import Runtime
from docingest.services.ingest import discover, ingest
from tests.conftest import CORPUS, make_settings, new_database, settings_env
from tests.fixtures import pipeline
from tests.fixtures.good_docs import generate_good
from tests.fixtures.make_bad_inputs import INGEST_CASES, MAX_FILE_BYTES, generate

pytestmark = [pytest.mark.e2e, pytest.mark.shared_corpus]

DOCUMENTS = 120
MAX_CORPUS_FILE_BYTES = 1 << 20
WORKERS = 3
KILLS_PER_CLEAN_RUN = 12  # SIGKILLs are spaced so about this many fall within the clean run's time
CHAOS_CLEAN_RUNS = 2.0  # kills stop after this many clean runs' time (at least 10 s); then it drains
DRAIN_LIMIT_SECONDS = 300.0
FAULT_RATE = 0.10


def _inputs(root: Path) -> Path:
    """The 120 input files under ``root/in``: corpus, bad inputs, generated good ones."""
    good = sorted(
        p for p in (CORPUS / "docs").rglob("*") if p.is_file() and p.stat().st_size <= MAX_CORPUS_FILE_BYTES
    )
    src = root / "in"
    for p in good:
        dst = src / "corpus" / p.relative_to(CORPUS / "docs")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(p.read_bytes())
    generate(src / "bad", {c.name for c in INGEST_CASES})
    generate_good(src / "gen", DOCUMENTS - len(good) - len(INGEST_CASES))
    assert len(discover([src])) == DOCUMENTS
    return src


def _outcome(rt: Runtime) -> dict[str, dict[str, Any]]:
    """``{file name: {state, error_code, chunks: [(ordinal, text, tokens, meta)]}}``."""
    out = {}
    with rt.pool().connection() as conn:
        paths = {
            r["document_id"]: r["filename"]
            for r in conn.execute("SELECT document_id, filename FROM upload_pipeline.documents").fetchall()
        }
    for doc_id, job in pipeline.latest_jobs(rt).items():
        rows = pipeline.chunks(rt, doc_id)
        assert all(r["chunk_id"] == chunk_id(doc_id, r["ordinal"]) for r in rows)
        out[paths[doc_id]] = {
            "state": job["state"],
            "error_code": job["error_code"],
            "chunks": [(r["ordinal"], r["text"], r["token_count"], r["meta"]) for r in rows],
        }
    return out


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    return _inputs(tmp_path)


class Workers:
    """``docingest worker`` processes that the driver kills and restarts."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0
        self.unexpected_exits: list[int] = []

    def start(self, slot: int) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{slot}-{self.started}.log").open("wb")
        self.started += 1
        return subprocess.Popen(
            [sys.executable, "-m", "docingest.cli.main", "worker", "-c", "2"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def __enter__(self) -> Self:
        self.procs = [self.start(i) for i in range(WORKERS)]
        return self

    def check_alive(self) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() is not None:  # died without the driver: a bug; restart, and record it
                self.unexpected_exits.append(p.returncode)
                self.procs[i] = self.start(i)

    def kill_one(self, rng: random.Random) -> None:
        i = rng.randrange(len(self.procs))
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()
        self.procs[i] = self.start(i)

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_chaos(pg_url: str, tmp_path: Path, inputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # --- the reference: a clean run of the same files, in-process -------------------------
    clean_settings = make_settings(
        new_database(pg_url, "clean"), tmp_path / "clean", max_file_bytes=MAX_FILE_BYTES
    )
    clean_rt = Runtime(clean_settings, migrate=False)
    try:
        started = time.monotonic()
        ingest(clean_rt, [inputs], user_id="chaos", concurrency=2)
        clean_s = time.monotonic() - started
        clean = _outcome(clean_rt)
    finally:
        clean_rt.close()
    assert len(clean) == DOCUMENTS

    # --- the chaos run ---------------------------------------------------------------------
    db = new_database(pg_url, "chaos")
    common: dict[str, Any] = {"max_file_bytes": MAX_FILE_BYTES, "max_retries": 10, "max_lost_leases": 20}
    settings = make_settings(db, tmp_path / "chaos", **common)
    faulty = make_settings(
        db,
        tmp_path / "chaos",
        fault_storage_error_rate=FAULT_RATE,
        fault_embedding_error_rate=FAULT_RATE,
        **common,
    )
    env = settings_env(faulty)  # PYTHONPATH included: the workers run this tree's code
    rt = Runtime(settings, migrate=False)
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "5")))
    logs = tmp_path / "logs"
    logs.mkdir()
    kills = 0
    try:
        with Workers(env, logs) as workers:
            ids = [
                rt.documents.register_file(p, user_id="chaos").document.document_id
                for p in discover([inputs])
            ]
            # Uniform spacing around clean_s / KILLS_PER_CLEAN_RUN: a faster pipeline gets kills as
            # dense, so at least 5 land while documents are in flight on any machine.
            mean_gap = max(0.3, clean_s / KILLS_PER_CLEAN_RUN)
            kill_every = (0.5 * mean_gap, 1.5 * mean_gap)
            chaos_seconds = max(10.0, CHAOS_CLEAN_RUNS * clean_s)
            started = time.monotonic()
            next_kill = started + rng.uniform(*kill_every)
            while True:
                jobs = pipeline.latest_jobs(rt, ids)
                if all(j["state"] in pipeline.TERMINAL for j in jobs.values()):
                    break
                now = time.monotonic()
                assert now - started < DRAIN_LIMIT_SECONDS, _open_jobs(jobs)
                workers.check_alive()
                if now - started < chaos_seconds and now >= next_kill:
                    workers.kill_one(rng)
                    kills += 1
                    next_kill = now + rng.uniform(*kill_every)
                time.sleep(0.3)
            drain_s = time.monotonic() - started
            unexpected = list(workers.unexpected_exits)
        chaos = _outcome(rt)
        faults, takeovers = _fault_counts(rt)
        with capsys.disabled():  # the figures are shown without -s too
            print(
                f"\nchaos: {len(ids)} documents, {WORKERS} workers, {kills} SIGKILLs, "
                f"{faults} injected faults seen by jobs (storage and embedder at {FAULT_RATE:.0%}), "
                f"{takeovers} lease takeovers, drained in {drain_s:.1f} s "
                f"(clean in-process run: {clean_s:.1f} s)"
            )

        assert unexpected == [], f"workers died on their own: exit codes {unexpected}"
        assert kills >= 5 and faults > 0
        final = pipeline.latest_jobs(rt, ids)
        assert all(j["state"] in pipeline.TERMINAL for j in final.values())
        assert pipeline.buffer_rows(rt) == 0
        assert set(chaos) == set(clean)
        mismatched = [name for name in clean if chaos[name] != clean[name]]
        assert not mismatched, "documents differ from the clean run:\n" + "\n".join(
            _difference(name, clean[name], chaos[name]) for name in mismatched[:5]
        )
        for name, result in chaos.items():
            assert result["state"] != "done" or result["chunks"], f"{name} complete with zero chunks"
        expected = {c.name: (c.expected_state, c.expected_code) for c in INGEST_CASES}
        got = {name: (r["state"], r["error_code"]) for name, r in chaos.items() if name in expected}
        assert got == expected
        assert sum(r["state"] == "done" for r in chaos.values()) == DOCUMENTS - sum(
            c.expected_state == "failed" for c in INGEST_CASES
        )
    finally:
        rt.close()


def _difference(name: str, clean: dict[str, Any], chaos: dict[str, Any]) -> str:
    head = (
        f"{name}: clean {clean['state']}/{clean['error_code']} {len(clean['chunks'])} chunks, "
        f"chaos {chaos['state']}/{chaos['error_code']} {len(chaos['chunks'])} chunks"
    )
    for a, b in zip(clean["chunks"], chaos["chunks"], strict=False):
        if a != b:
            return f"{head}; first difference: {a!r:.300} != {b!r:.300}"
    return head


def _open_jobs(jobs: dict[Any, dict[str, Any]]) -> str:
    open_ = [j for j in jobs.values() if j["state"] not in pipeline.TERMINAL]
    return f"{len(open_)} jobs not terminal: " + ", ".join(
        f"{j['filename']}@{j['stage']}/{j['state']}" for j in open_[:10]
    )


def _fault_counts(rt: Runtime) -> tuple[int, int]:
    with rt.pool().connection() as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE type = 'retry_scheduled'"
            "                        AND payload->>'message' LIKE 'injected fault%%') AS faults,"
            "       count(*) FILTER (WHERE type = 'lease_taken_over') AS takeovers"
            " FROM upload_pipeline.events"
        ).fetchone()
    return int(row["faults"]), int(row["takeovers"])
