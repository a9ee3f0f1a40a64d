"""The coordination ceiling of one PostgreSQL: documents/s and stage transitions/s with 1, 2, 4
and 8 worker processes, and as the queue grows from 2,000 to 100,000 jobs.

The database is one PostgreSQL 16 with pgvector (pgserver's binaries), started for the run and
reached over TCP on 127.0.0.1, as workers on other hosts reach theirs; each worker process
has its own pool. Two pipelines:

- no-op: the queue alone. A child (``python -m bench.transitions --child``) runs a
  :class:`~docingest.worker.loop.BaseWorker` with 2 slots whose nine handlers do nothing
  (``Passthrough``): per job one claim and nine fenced transitions. Its documents have no
  stored object.
- hashing: the real pipeline. A child is ``python -m docingest worker --concurrency 2``
  (the command a worker host runs) with ``UPLOAD_PIPELINE_EMBEDDING_PROVIDER=hashing``:
  verify, parse (in the sandboxed parse child), validate, chunk, embed (hashing: no model,
  so what remains is docingest's own cost) and store, of ~1.5 kB Markdown notes in local
  storage, registered as ``docingest ingest`` registers them (:func:`bench.common.register_notes`).
  A run stores at most ~6,000 chunks, under ``SEARCH_EXACT_MAX_CHUNKS``: no HNSW inserts
  (``bench backlog`` says what they cost).

A run: queue the jobs, not yet due; start the worker processes and wait until each is
listening; then make every job due in one transaction with one wake-up notification
(:func:`bench.common.release_queued`), whose commit starts the clock. The rate is measured over the first ``drained`` jobs
completed (their ``complete`` events; the job count of every run is fixed so runs compare):
documents/s = drained / (time of the drained-th completion - commit), transitions/s = the
``stage_completed`` events in that window / its length. Queue depth: the same with 2,000,
10,000 and 100,000 jobs queued and the first 1,000 drained (2 processes); the ratio
rate(100k) / rate(2k) is the figure (flat: about 1). Beside each depth, the claim statement's
own time (``EXPLAIN ANALYZE`` of ``claim_job`` on the full queue, rolled back, median of 5).

Beside the rates, the CPU time per document of the PostgreSQL server (all its processes) and
of the workers (with their parse children): what one document costs the primary, whatever
the machine's load, and so how many documents/s a primary of a given size can coordinate.

Every figure's note has the 1-minute load average before and after its run: the machine is
shared, and 8 processes on 2 cores measure the database's ceiling only as far as the
workers' own CPU leaves room for it.

    python -m bench scaling [--quick]
    python -m bench.scaling --depth-waits   # the real pipeline at 2,000 and 100,000: what it waits on
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bench.common import (
    NOT_DUE_SECONDS,
    Figure,
    commit_latency_ms,
    copy_jobs,
    cpu_seconds,
    db_now,
    hashing_settings,
    load_avg,
    python_env,
    register_notes,
    release_queued,
    server_pid,
    start_processes,
    stop_processes,
    tcp_database,
    wait_count,
    wait_listening,
    worker_command,
    worker_env,
)

SLOTS = 2
NAME = "scaling"


def _noop_workers(settings: Any) -> Callable[[int], list[Any]]:
    def start(n: int) -> list[Any]:
        args = ["-m", "bench.transitions", "--child", settings.database_url, str(settings.data_dir)]
        return start_processes(args, n, python_env(), ready_line=True)

    return start


def _real_workers(settings: Any) -> Callable[[int], list[Any]]:
    def start(n: int) -> list[Any]:
        return start_processes(worker_command(SLOTS), n, worker_env(settings))

    return start


def _queue_noop(rt: Any, n: int) -> None:
    with rt.pool().connection() as conn:
        copy_jobs(conn, n, due=False)


def _queue_notes(rt: Any, n: int) -> None:
    register_notes(rt, n, wait_seconds=NOT_DUE_SECONDS, batch=2000)


def claim_ms(conn: Any, repeats: int = 5) -> float:
    """Median execution time (ms) of the ``claim_job`` statement on the current queue, each run
    by ``EXPLAIN ANALYZE`` in a transaction rolled back (nothing is claimed)."""
    from docingest.db.repository import queries

    times = []
    for _ in range(repeats):
        with conn.transaction(force_rollback=True):
            plan = conn.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + queries()["claim_job"],
                {"worker_id": "bench-explain", "lease_seconds": 30},
            ).fetchone()
            times.append(float(next(iter(plan.values()))[0]["Execution Time"]))
    return statistics.median(times)


def _sample_waits(url: str, waits: Any, done: threading.Event) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        while not done.wait(0.01):
            for (event,) in conn.execute(
                "SELECT coalesce(wait_event_type, '-') || ':' || coalesce(wait_event, '-')"
                " FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend'"
                " AND pid <> pg_backend_pid()"
            ):
                waits[event] += 1


def depth_waits(depths: tuple[int, ...] = (2000, 100000), drained: int = 1000) -> None:
    """Print, for the real pipeline at each queue depth (2 processes, one after the other),
    the rate, CPU per document and what the workers' sessions waited on: what makes the rate
    move when the claim's cost does not (``python -m bench.scaling --depth-waits``)."""
    import collections

    from docingest.runtime import Runtime

    url = tcp_database()
    settings = hashing_settings(url)
    rt = Runtime(settings, migrate=True)
    rt.generation()
    try:
        for depth in depths:
            waits: collections.Counter[str] = collections.Counter()
            r = drain(
                rt,
                _real_workers(settings),
                _queue_notes,
                processes=2,
                queued=depth,
                drained=drained,
                waits=waits,
            )
            total = sum(waits.values()) or 1
            shares = ", ".join(f"{e} {n / total:.0%}" for e, n in waits.most_common(4))
            print(
                f"depth {depth}: {r['docs_per_s']:.1f} doc/s, database CPU {r['db_cpu_ms']:.2f} ms/doc,"
                f" worker CPU {r['worker_cpu_ms']:.2f} ms/doc, {_load(r)}; active sessions: {shares}"
            )
    finally:
        rt.close()


def drain(
    rt: Any,
    start_workers: Callable[[int], list[Any]],
    queue: Callable[[Any, int], None],
    *,
    processes: int,
    queued: int,
    drained: int,
    explain: bool = False,
    waits: Any = None,
) -> dict[str, float]:
    """One run: ``queued`` jobs queued (not due), ``processes`` workers started, then every job
    made due at once; the rate over the first ``drained`` completed.

    Returns ``docs_per_s``, ``transitions_per_s``, ``failed`` (jobs failed in the window),
    ``claim_ms`` (with ``explain``: of the full queue, just before the release is committed;
    else 0), ``db_cpu_ms`` and ``worker_cpu_ms`` (CPU milliseconds per document completed of
    the PostgreSQL server's processes, and of the worker processes with their parse
    children, from the release to the last poll), ``load_before``, ``load_after``.
    ``waits``: a ``collections.Counter`` that gets, every 10 ms of the drain, one count per
    active worker session's ``wait_event_type:wait_event`` (``-:-``: on CPU).

    Raises:
        TimeoutError: the workers did not start, or did not drain ``drained`` jobs in 30 min.
    """
    url = rt.url
    with rt.pool().connection() as conn:
        conn.autocommit = True
        conn.execute("TRUNCATE upload_pipeline.documents CASCADE")
        queue(rt, queued)
        conn.execute("VACUUM ANALYZE upload_pipeline.documents")
        conn.execute("VACUUM ANALYZE upload_pipeline.upload_jobs")
        first_event = conn.execute(
            "SELECT coalesce(max(event_id), 0) AS e FROM upload_pipeline.events"
        ).fetchone()["e"]
        postmaster = server_pid(conn)
        load_before = load_avg()
        since = db_now(url)
        procs = start_workers(processes)
        try:
            wait_listening(url, processes, since)
            conn.autocommit = False
            release_queued(conn)
            plan_ms = claim_ms(conn) if explain else 0.0
            pids = [p.pid for p in procs]
            cpu = (cpu_seconds([postmaster]), cpu_seconds(pids))
            conn.commit()
            go = conn.execute("SELECT clock_timestamp() AS t").fetchone()["t"]
            conn.commit()
            conn.autocommit = True
            sampling = threading.Event()
            if waits is not None:
                threading.Thread(target=_sample_waits, args=(url, waits, sampling), daemon=True).start()
            done = wait_count(
                conn,
                "SELECT count(*) AS n FROM upload_pipeline.events WHERE event_id > %s"
                " AND type = 'stage_completed' AND stage = 'complete'",
                drained,
                timeout=1800,
                params=(first_event,),
                every=0.5,
            )
            cpu = (cpu_seconds([postmaster]) - cpu[0], cpu_seconds(pids) - cpu[1])
            sampling.set()
        finally:
            stop_processes(procs)
        end = conn.execute(
            "SELECT created_at AS t FROM upload_pipeline.events WHERE event_id > %s"
            " AND type = 'stage_completed' AND stage = 'complete' ORDER BY created_at OFFSET %s LIMIT 1",
            (first_event, drained - 1),
        ).fetchone()["t"]
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE type = 'stage_completed') AS transitions,"
            " count(*) FILTER (WHERE type = 'failed') AS failed"
            " FROM upload_pipeline.events WHERE event_id > %s AND created_at <= %s",
            (first_event, end),
        ).fetchone()
    seconds = (end - go).total_seconds()
    return {
        "docs_per_s": drained / seconds,
        "transitions_per_s": row["transitions"] / seconds,
        "failed": row["failed"],
        "claim_ms": plan_ms,
        "db_cpu_ms": cpu[0] * 1000 / done,
        "worker_cpu_ms": cpu[1] * 1000 / done,
        "load_before": float(load_before),
        "load_after": float(load_avg()),
    }


def _load(r: dict[str, float]) -> str:
    return f"load {r['load_before']:.1f} -> {r['load_after']:.1f}"


def run(quick: bool = False) -> list[Figure]:
    from docingest.runtime import Runtime

    url = tcp_database()
    settings = hashing_settings(url)
    rt = Runtime(settings, migrate=True)
    rt.generation()  # recorded with its index once, not raced by the workers starting together
    pipelines = {
        "no-op": (_noop_workers(settings), _queue_noop),
        "hashing": (_real_workers(settings), _queue_notes),
    }
    # (queued, drained) per pipeline for the process counts; depths and drained for the depth runs
    sizes = (
        {"no-op": (200, 100), "hashing": (40, 20)}
        if quick
        else {"no-op": (4000, 2000), "hashing": (2000, 1000)}
    )
    counts = (2,) if quick else (1, 2, 4, 8)
    depths, depth_drained = ((300, 1500), 100) if quick else ((2000, 10000, 100000), 1000)
    figures = [Figure(NAME, "database", 0, "", "PostgreSQL 16 + pgvector over TCP (127.0.0.1)")]
    try:
        figures.append(
            Figure(
                NAME,
                "durable commit latency",
                round(commit_latency_ms(url), 3),
                "ms",
                "WAL flush on this disk",
            )
        )
        for pipeline, (workers, queue) in pipelines.items():
            queued, drained = sizes[pipeline]
            for processes in counts:
                r = drain(rt, workers, queue, processes=processes, queued=queued, drained=drained)
                where = f"{pipeline}, {processes} process(es) x {SLOTS} slots, first {drained} of {queued}"
                figures.append(
                    Figure(NAME, f"{where}: documents", round(r["docs_per_s"], 1), "doc/s", _load(r))
                )
                figures.append(
                    Figure(NAME, f"{where}: transitions", round(r["transitions_per_s"], 1), "transition/s")
                )
                figures.append(Figure(NAME, f"{where}: database CPU", round(r["db_cpu_ms"], 2), "ms/doc"))
                figures.append(Figure(NAME, f"{where}: worker CPU", round(r["worker_cpu_ms"], 2), "ms/doc"))
                if r["failed"]:
                    figures.append(Figure(NAME, f"{where}: FAILED jobs", r["failed"], "jobs"))
        for pipeline, (workers, queue) in pipelines.items():
            rates, db_cpu = [], []
            for depth in depths:
                r = drain(rt, workers, queue, processes=2, queued=depth, drained=depth_drained, explain=True)
                rates.append(r["docs_per_s"])
                db_cpu.append(r["db_cpu_ms"])
                where = f"{pipeline}, depth {depth}, 2 x {SLOTS}, first {depth_drained}"
                figures.append(
                    Figure(NAME, f"{where}: documents", round(r["docs_per_s"], 1), "doc/s", _load(r))
                )
                figures.append(
                    Figure(
                        NAME, f"{where}: claim statement", round(r["claim_ms"], 3), "ms", "EXPLAIN ANALYZE"
                    )
                )
                figures.append(Figure(NAME, f"{where}: database CPU", round(r["db_cpu_ms"], 2), "ms/doc"))
                if r["failed"]:
                    figures.append(Figure(NAME, f"{where}: FAILED jobs", r["failed"], "jobs"))
            figures.append(
                Figure(
                    NAME,
                    f"{pipeline}: rate(depth {depths[-1]}) / rate(depth {depths[0]})",
                    round(rates[-1] / rates[0], 3),
                    "x",
                    "flat: ~1",
                )
            )
            figures.append(
                Figure(
                    NAME,
                    f"{pipeline}: database CPU per doc, depth {depths[-1]} / depth {depths[0]}",
                    round(db_cpu[-1] / db_cpu[0], 3),
                    "x",
                    "flat: ~1 (whatever the load)",
                )
            )
    finally:
        rt.close()
    return figures


if __name__ == "__main__" and "--depth-waits" in sys.argv:
    depth_waits()
elif __name__ == "__main__":
    started = time.perf_counter()
    for f in run("--quick" in sys.argv):
        print(f"{f.name:70} {f.value:>10} {f.unit:12} {f.target}")
    print(f"wall {time.perf_counter() - started:.1f} s")
