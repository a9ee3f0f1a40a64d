"""ingest's progress arithmetic (work weights, rate, ETA, leases held elsewhere) and its bar."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from docingest.services.progress import PARSE_SHARE, IngestProgress, IngestSnapshot, clock, job_work


def job(
    n: int,
    state: str = "queued",
    stage: str = "uploaded",
    bytes_len: int = 20_000,
    *,
    claimed_by: str | None = None,
    lease_left_s: float | None = None,
    lost_leases: int = 0,
    **progress: Any,
) -> dict[str, Any]:
    return {
        "job_id": n,
        "state": state,
        "stage": stage,
        "bytes_len": bytes_len,
        "progress": progress,
        "claimed_by": claimed_by,
        "lease_left_s": lease_left_s,
        "lost_leases": lost_leases,
    }


def test_a_document_not_chunked_yet_counts_by_its_bytes_and_the_ratio_seen_so_far() -> None:
    assert job_work("queued", "uploaded", {}, 20_000, 1 / 2000) == (0.0, 10 * (1 + PARSE_SHARE))
    # 100 chunks from 10,000 bytes: the unchunked 20,000-byte file is expected to give 200
    snap = IngestProgress(worker_id="me", started=0).update(
        [job(1, "done", "complete", 10_000, chunks_total=100, chunks_embedded=100), job(2)], now=0
    )
    assert snap.work_total == pytest.approx(150 + 300) and snap.work_done == pytest.approx(150)
    assert (snap.chunks_embedded, snap.chunks_known) == (100, 100)


def test_pages_parsed_and_chunks_embedded_move_the_work_done() -> None:
    parsing = job_work("working", "parse_queued", {"pages_total": 10, "pages_parsed": 4}, 2000, 1 / 100)
    assert parsing == (pytest.approx(PARSE_SHARE * 20 * 0.4), pytest.approx(20 * (1 + PARSE_SHARE)))
    embedding = job_work(
        "working", "embedding_in_progress", {"chunks_total": 40, "chunks_embedded": 10}, 999_999, 1.0
    )  # chunked: its bytes no longer matter
    assert embedding == (PARSE_SHARE * 40 + 10, 40 * (1 + PARSE_SHARE))
    assert job_work("working", "embeddings_stored", {"chunks_total": 40}, 1, 1.0) == (60, 60)


def test_a_failed_document_expects_no_more_work() -> None:
    done, total = job_work(
        "failed", "embedding_in_progress", {"chunks_total": 40, "chunks_embedded": 10}, 1, 1
    )
    assert done == total == PARSE_SHARE * 40 + 10


def test_rate_and_eta_count_only_this_runs_work() -> None:
    tracker = IngestProgress(worker_id="me", started=100.0)
    # resumed: 50 of 100 chunks were embedded before this run
    first = tracker.update(
        [
            job(
                1,
                "working",
                "embedding_in_progress",
                chunks_total=100,
                chunks_embedded=50,
                claimed_by="me",
                lease_left_s=30,
            )
        ],
        now=101.0,
    )
    assert first.rate_chunks_s is None and first.eta_s is None  # nothing measured yet
    later = tracker.update(
        [
            job(
                1,
                "working",
                "embedding_in_progress",
                chunks_total=100,
                chunks_embedded=70,
                claimed_by="me",
                lease_left_s=30,
            )
        ],
        now=111.0,
    )
    assert later.rate_chunks_s == pytest.approx(2.0)  # 20 chunks in 10 s
    assert later.eta_s == pytest.approx(15.0)  # 30 chunk units left at 2 a second
    assert later.elapsed_s == 11.0 and later.fraction == pytest.approx(120 / 150)
    assert "20/100" not in later.line() and "70/100 chunks embedded" in later.line()
    end = tracker.update([job(1, "done", "complete", chunks_total=100, chunks_embedded=100)], now=120.0)
    assert end.eta_s == 0.0 and end.finished == 1 and end.fraction == 1.0


def test_a_job_leased_by_another_process_is_waited_for_then_taken_over() -> None:
    tracker = IngestProgress(worker_id="me", started=0.0)
    waiting = tracker.update(
        [
            job(1, "working", "parse_queued", claimed_by="dead", lease_left_s=23.6),
            job(2, "working", "parse_queued", claimed_by="me", lease_left_s=29),
        ],
        now=1,
    )
    assert (waiting.waiting_jobs, waiting.waiting_lease_left_s) == (1, 23.6)
    assert "waiting for 1 job leased by another process, lease expires in 24 s" in waiting.line()
    expired = tracker.update(
        [
            job(1, "working", "parse_queued", claimed_by="dead", lease_left_s=-0.5),
            job(2, "working", "parse_queued", claimed_by="me", lease_left_s=29),
        ],
        now=25,
    )
    assert expired.waiting_jobs == 0 and expired.expired_jobs == 1
    assert "lease expired, taking over" in expired.note()
    taken = tracker.update(
        [
            job(1, "working", "parse_queued", claimed_by="me", lease_left_s=30, lost_leases=1),
            job(2, "working", "parse_queued", claimed_by="me", lease_left_s=29),
        ],
        now=26,
    )
    assert (taken.waiting_jobs, taken.expired_jobs, taken.taken_over) == (0, 0, 1)
    assert taken.note() == "took over 1 job whose lease expired"
    done = tracker.update(
        [
            job(1, "done", "complete", lost_leases=1, chunks_total=3),
            job(2, "done", "complete", chunks_total=3),
        ],
        now=27,
    )
    assert done.taken_over == 1 and done.note() == "took over 1 job whose lease expired"


def test_a_job_another_process_takes_over_is_not_ours() -> None:
    tracker = IngestProgress(worker_id="me", started=0.0)
    tracker.update([job(1, "working", "parse_queued", claimed_by="dead", lease_left_s=-1)], now=1)
    other = tracker.update(
        [job(1, "working", "parse_queued", claimed_by="other", lease_left_s=30, lost_leases=1)], now=2
    )
    assert other.taken_over == 0 and other.waiting_jobs == 1


def test_the_plain_line_names_documents_chunks_rate_eta_and_elapsed() -> None:
    snap = IngestSnapshot(
        documents=45,
        complete=11,
        failed=1,
        chunks_embedded=1024,
        chunks_known=3310,
        rate_chunks_s=21.33,
        eta_s=107,
        elapsed_s=72,
    )
    assert snap.line() == (
        "ingest: 12/45 documents, 1,024/3,310 chunks embedded, 21.3 chunks/s, eta 1m47s, elapsed 0:01:12"
    )
    assert clock(3725.9) == "1:02:05"


def test_the_bar_keeps_its_elapsed_time_whole_at_80_columns() -> None:
    from docingest.cli.ingest import _IngestBar, _show_snapshot

    screen = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    bar = _IngestBar(console=screen, auto_refresh=False)
    task = bar.add_task("ingesting", total=None, detail="", elapsed="")
    _show_snapshot(
        bar,
        task,
        IngestSnapshot(
            documents=45,
            complete=39,
            chunks_embedded=1_024,
            chunks_known=33_310,
            work_done=6_000,
            work_total=40_000,
            rate_chunks_s=21.3,
            eta_s=1_800,
            elapsed_s=4_000,
            waiting_jobs=1,
            waiting_lease_left_s=24,
        ),
    )
    screen.print(bar.get_renderable())
    lines = screen.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert "1:06:40" in lines[0] and "39/45 docs, eta 30m00s" in lines[0], lines
    assert lines[0].startswith("ingesting ━━")  # 15% of the work, drawn
    assert all(len(line) <= 80 for line in lines), lines
    assert "waiting for 1 job leased by another process, lease expires in 24 s" in " ".join(lines)


def test_documents_not_chunked_yet_are_named_beside_the_chunk_count() -> None:
    snap = IngestProgress(worker_id="me", started=0).update(
        [
            job(1, "done", "complete", chunks_total=40, chunks_embedded=40),
            job(2, "working", "parse_queued", claimed_by="me", lease_left_s=30),
            job(3),
            job(4, "failed", "uploaded"),
        ],
        now=0,
    )
    assert snap.unchunked == 2  # the failed one will never be chunked
    assert snap.chunks_text() == "40/40 chunks (+2 docs to chunk)"  # 40/40 is not the end
    assert "40/40 chunks (+2 docs to chunk) embedded" in snap.line()


def test_no_eta_while_the_work_has_not_moved_and_the_line_says_what_runs() -> None:
    tracker = IngestProgress(worker_id="me", started=0.0)
    big = {"filename": "big.md"}
    tracker.update(
        [job(1, "working", "parse_queued", claimed_by="me", lease_left_s=30) | big, job(2)], now=0.0
    )
    moved = tracker.update(
        [job(1, "working", "chunking", claimed_by="me", lease_left_s=30) | big, job(2)], now=5.0
    )
    assert moved.eta_s is not None  # the parse share of big.md was done in 5 s
    stuck = tracker.update(
        [job(1, "working", "chunking", claimed_by="me", lease_left_s=30) | big, job(2)], now=16.0
    )
    assert stuck.eta_s is None, "11 s without progress: a rate-based ETA would only grow"
    assert stuck.working_on == ("chunking big.md",)
    assert "chunking big.md" in stuck.note() and "eta" not in stuck.line()
    again = tracker.update(
        [
            job(
                1,
                "working",
                "embedding_in_progress",
                claimed_by="me",
                lease_left_s=30,
                chunks_total=10,
                chunks_embedded=5,
            )
            | big,
            job(2),
        ],
        now=17.0,
    )
    assert again.eta_s is not None and "chunking big.md" not in again.note()
