"""A high-volume queue: 100,000 small documents queued at once, drained by several worker
processes on the hashing embedder; throughput, time in queue, no job lost or done twice, and
the database's size afterwards.

The database is a PostgreSQL 16 with pgvector started for the run, reached over TCP
(``bench.common.tcp_database``). The documents are ~1.5 kB Markdown notes stored in local
storage and registered as ``docingest ingest`` registers them (the repository's own
statements, in bulk: :func:`bench.common.register_notes`), all before the workers start: a
backlog of 100,000 (``--quick``: 300), spread over 100 users (3) of 1,000 notes each.

Why 100 users: one user's 300,000 chunks would cross ``SEARCH_EXACT_MAX_CHUNKS`` (20,000)
after ~6,700 notes, and from then on every note's finalize inserts its chunks into the HNSW
index (m 32, ef_construction 200), which on this 2-core machine took the finalize stage from
a few milliseconds to ~90 ms a note and the drain from ~56 to ~38 notes/s (a measured first
attempt, stopped at 10,000 notes): a benchmark of index building, not of the queue. Tenants
below that size are searched exactly and never pay it. Then ``processes`` real worker processes (``python -m
docingest worker --concurrency 2``, ``UPLOAD_PIPELINE_EMBEDDING_PROVIDER=hashing``) drain it.

Reported:
- registration rate (documents/s, storing the objects included);
- drain throughput: documents/s from the first claim to the last completion, and over the
  first 2,000 completed after every worker listens (with the whole backlog behind them:
  compare with ``bench scaling``'s rate at a 2,000-job queue);
- time in queue, p50 and p99: queued -> first claim (the first stage's ``stage_completed``
  event time less the stage's own seconds), queued -> complete (``finished_at``). Every job
  was queued before the first worker started, so these are mostly the backlog ahead of it;
- correctness: every job ``done``; per job exactly one ``stage_completed`` event for each of
  the nine stages, one claim (``attempts``), no lease takeover and no retry; no chunk stored
  twice (``(document_id, ordinal)`` unique over the chunks);
- ``pg_database_size`` and the total size (with indexes and TOAST) of the biggest tables.

    python -m bench backlog [--quick]
"""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.common import (
    Figure,
    db_now,
    hashing_settings,
    load_avg,
    register_notes,
    start_processes,
    stop_processes,
    tcp_database,
    wait_count,
    wait_listening,
    worker_command,
    worker_env,
)

NAME = "backlog"
SLOTS = 2
STAGES_PER_JOB = 9
FIRST = 2000  # the early-rate window, in jobs completed
#: Tenants the notes are spread over: 1,000 notes (~3,000 chunks) each, under
#: ``SEARCH_EXACT_MAX_CHUNKS``, so no note's chunks go into the HNSW index (see the docstring).
USERS = 100


def check_jobs(conn: Any, n: int) -> dict[str, int]:
    """Count what would show a job lost or done twice, over the ``n`` jobs of the run.

    Returns ``jobs``, ``done``, ``failed``, ``claims`` (sum of ``attempts``), ``takeovers``
    (``lease_taken_over`` events), ``retries`` (``retry_scheduled`` events),
    ``stage_events`` (``stage_completed``), ``stage_pairs_not_once`` ((job, stage) pairs
    completed other than exactly once, counting each of the nine stages a job must pass),
    ``chunks``, ``chunks_duplicated`` (rows beyond one per ``(document_id, ordinal)``).
    """
    jobs = conn.execute(
        "SELECT count(*) AS jobs, count(*) FILTER (WHERE state = 'done') AS done,"
        " count(*) FILTER (WHERE state = 'failed') AS failed, coalesce(sum(attempts), 0) AS claims"
        " FROM upload_pipeline.upload_jobs"
    ).fetchone()
    events = conn.execute(
        "SELECT count(*) FILTER (WHERE type = 'stage_completed') AS stage_events,"
        " count(*) FILTER (WHERE type = 'lease_taken_over') AS takeovers,"
        " count(*) FILTER (WHERE type = 'retry_scheduled') AS retries"
        " FROM upload_pipeline.events"
    ).fetchone()
    # every job x each stage it must leave, against what the events record
    not_once = conn.execute(
        "WITH expected AS ("
        "  SELECT j.job_id, s.stage FROM upload_pipeline.upload_jobs j CROSS JOIN unnest(ARRAY["
        "  'uploaded', 'parse_queued', 'parsed', 'parse_validated', 'chunking', 'chunks_stored',"
        "  'embedding_queued', 'embedding_in_progress', 'embeddings_stored']) AS s(stage)"
        "), seen AS ("
        "  SELECT job_id, payload->>'from' AS stage, count(*) AS c FROM upload_pipeline.events"
        "  WHERE type = 'stage_completed' GROUP BY 1, 2"
        ") SELECT count(*) AS n FROM expected e FULL JOIN seen s USING (job_id, stage)"
        " WHERE s.c IS DISTINCT FROM 1 OR e.job_id IS NULL"
    ).fetchone()["n"]
    chunks = conn.execute(
        "SELECT count(*) AS chunks, count(*) - count(DISTINCT (document_id, ordinal)) AS duplicated"
        " FROM upload_pipeline.document_chunks"
    ).fetchone()
    return {
        "jobs": jobs["jobs"],
        "done": jobs["done"],
        "failed": jobs["failed"],
        "claims": int(jobs["claims"]),
        "takeovers": events["takeovers"],
        "retries": events["retries"],
        "stage_events": events["stage_events"],
        "stage_pairs_not_once": not_once,
        "chunks": chunks["chunks"],
        "chunks_duplicated": chunks["duplicated"],
    }


def queue_times(conn: Any) -> dict[str, float]:
    """p50 and p99 seconds (nearest rank) of queued -> first claim and queued -> complete."""
    row = conn.execute(
        "WITH t AS ("
        "  SELECT extract(epoch FROM e.created_at"
        "         - make_interval(secs => (e.payload->>'seconds')::float8) - j.created_at) AS claim_s,"
        "         extract(epoch FROM j.finished_at - j.created_at) AS total_s"
        "  FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.events e"
        "    ON e.job_id = j.job_id AND e.type = 'stage_completed' AND e.payload->>'from' = 'uploaded'"
        ") SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY claim_s) AS claim_p50,"
        " percentile_disc(0.99) WITHIN GROUP (ORDER BY claim_s) AS claim_p99,"
        " percentile_disc(0.5) WITHIN GROUP (ORDER BY total_s) AS total_p50,"
        " percentile_disc(0.99) WITHIN GROUP (ORDER BY total_s) AS total_p99 FROM t"
    ).fetchone()
    return {k: float(v) for k, v in row.items()}


def table_sizes(conn: Any, top: int = 6) -> list[tuple[str, int, int]]:
    """The ``top`` biggest tables of ``upload_pipeline`` by total size: ``(name, bytes, live
    rows)``, biggest first; bytes count indexes, TOAST and space not yet vacuumed (the staging
    buffers' rows are deleted when a document is finalized), live rows are the statistics'."""
    conn.execute("ANALYZE")
    rows = conn.execute(
        "SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes,"
        " coalesce(s.n_live_tup, 0) AS live FROM pg_class c"
        " LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid"
        " WHERE c.relnamespace = 'upload_pipeline'::regnamespace AND c.relkind IN ('r', 'p')"
        " ORDER BY 2 DESC LIMIT %s",
        (top,),
    ).fetchall()
    return [(r["name"], int(r["bytes"]), int(r["live"])) for r in rows]


def run(quick: bool = False) -> list[Figure]:
    from docingest.runtime import Runtime

    n = 300 if quick else 100_000
    users = 3 if quick else USERS
    processes = 2 if quick else 4
    first = 100 if quick else FIRST
    url = tcp_database()
    settings = hashing_settings(url)
    rt = Runtime(settings, migrate=True)
    rt.generation()
    figures = [Figure(NAME, "documents queued (Markdown notes, ~1.5 kB)", n)]
    try:
        register_s = register_notes(rt, n, batch=2000, users=users)
        figures.append(
            Figure(NAME, "registration (objects stored + rows)", round(n / register_s, 1), "doc/s")
        )
        load_before = load_avg()
        since = db_now(url)
        started = time.perf_counter()
        procs = start_processes(worker_command(SLOTS), processes, worker_env(settings))
        with rt.pool().connection() as conn:
            conn.autocommit = True
            try:
                wait_listening(url, processes, since)
                ready = db_now(url)
                wait_count(
                    conn,
                    "SELECT count(*) AS n FROM upload_pipeline.upload_jobs WHERE state IN ('done', 'failed')",
                    n,
                    timeout=7200,
                    every=0.5 if quick else 5,
                )
            finally:
                stop_processes(procs)
            wall = time.perf_counter() - started
            load_after = load_avg()
            span = conn.execute(
                "SELECT extract(epoch FROM max(j.finished_at) - min(e.created_at"
                " - make_interval(secs => (e.payload->>'seconds')::float8)))::float8 AS s"
                " FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.events e ON e.job_id = j.job_id"
                " AND e.type = 'stage_completed' AND e.payload->>'from' = 'uploaded'"
            ).fetchone()["s"]
            early = conn.execute(
                "SELECT extract(epoch FROM finished_at - %s)::float8 AS s FROM upload_pipeline.upload_jobs"
                " WHERE finished_at > %s ORDER BY finished_at OFFSET %s LIMIT 1",
                (ready, ready, first - 1),
            ).fetchone()
            checks = check_jobs(conn, n)
            times = queue_times(conn)
            conn.execute("CHECKPOINT")
            db_bytes = conn.execute("SELECT pg_database_size(current_database()) AS b").fetchone()["b"]
            sizes = table_sizes(conn)
    finally:
        rt.close()
    load = f"load {load_before} -> {load_after}"
    figures += [
        Figure(NAME, "worker processes", processes, "", f"{SLOTS} slots each, hashing embedder"),
        Figure(NAME, "drain wall (workers started -> last job done)", round(wall, 1), "s", load),
        Figure(NAME, "throughput (first claim -> last completion)", round(n / span, 1), "doc/s", load),
    ]
    if early is not None:
        figures.append(
            Figure(
                NAME,
                f"throughput over the first {first} after all workers listen",
                round(first / early["s"], 1),
                "doc/s",
            )
        )
    figures += [
        Figure(NAME, "queued -> first claim, p50", round(times["claim_p50"], 2), "s", "backlog ahead of it"),
        Figure(NAME, "queued -> first claim, p99", round(times["claim_p99"], 2), "s"),
        Figure(NAME, "queued -> complete, p50", round(times["total_p50"], 2), "s"),
        Figure(NAME, "queued -> complete, p99", round(times["total_p99"], 2), "s"),
        Figure(NAME, "jobs done", checks["done"], "jobs", f"= {n}"),
        Figure(NAME, "jobs failed", checks["failed"], "jobs", "= 0"),
        Figure(NAME, "claims (sum of attempts)", checks["claims"], "claims", f"= {n}: one each"),
        Figure(NAME, "stage_completed events", checks["stage_events"], "events", f"= {n * STAGES_PER_JOB}"),
        Figure(
            NAME, "(job, stage) pairs not completed exactly once", checks["stage_pairs_not_once"], "", "= 0"
        ),
        Figure(NAME, "lease takeovers / retries", checks["takeovers"] + checks["retries"], "", "= 0"),
        Figure(NAME, "chunks stored", checks["chunks"], "chunks"),
        Figure(NAME, "chunks stored twice", checks["chunks_duplicated"], "", "= 0"),
        Figure(NAME, "database size (pg_database_size)", round(db_bytes / 2**20, 1), "MiB"),
    ]
    figures += [
        Figure(NAME, f"table {name} (with indexes)", round(b / 2**20, 1), "MiB", f"{live} live rows")
        for name, b, live in sizes
    ]
    lost = checks["done"] != n or checks["stage_pairs_not_once"] or checks["chunks_duplicated"]
    if lost or checks["claims"] != n:
        raise AssertionError(f"jobs lost, failed or done twice: {checks}")
    return figures


if __name__ == "__main__":
    for f in run("--quick" in sys.argv):
        print(f"{f.name:60} {f.value:>10} {f.unit:8} {f.target}")
