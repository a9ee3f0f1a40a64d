"""No-op stage transitions per second with 1, 2 and 4 worker processes, and procrastinate.

docingest: ``n`` jobs are inserted as ``waiting`` at ``uploaded``; P child
processes each run a :class:`BaseWorker` (2 slots, LISTEN/NOTIFY) whose nine
handlers do nothing (``Passthrough``), so what is measured is the queue itself:
per job one claim (``claim_job``: one ``UPDATE ... SKIP LOCKED`` that also
returns the document), then per stage one fenced statement (``complete_stage``:
the transition and its ``stage_completed`` event), each its own transaction. When
every child is ready the jobs are queued in one statement; the rate is ``9 n``
transitions over the time from that commit to the last ``finished_at``.

Each transition is a durable commit, so on a small machine the rate follows the
time the disk takes to flush the WAL (fsync) as much as the CPU: the run reports
that latency (median of single-row commits on the same database) before and after
the docingest runs, and, as a reference only, the 2-process rate with the children's
sessions not waiting for the flush (``synchronous_commit=off``, set through
``PGOPTIONS`` for those sessions alone; docingest never uses it: a database crash
could lose the last transitions a worker acted on).

procrastinate (reference, same database, same machine): each of the ``n`` jobs
is a chain of nine no-op tasks, each deferring the next before it returns (a
transition = one task fetched, run, finished, the next one deferred); P child
processes run ``procrastinate`` workers with concurrency 2 (LISTEN/NOTIFY on).
Target: at least 1,000 docingest transitions/s with 2 processes on 2 cores.

    python -m bench transitions [--quick]
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    Figure,
    commit_latency_ms,
    copy_jobs,
    db_now,
    python_env,
    scratch_dir,
    scratch_settings,
    start_processes,
    stop_processes,
    wait_count,
    wait_listening,
)

STAGES_PER_JOB = 9
SLOTS = 2


# --- children ---------------------------------------------------------------------------
def _docingest_child(url: str, data_dir: str) -> None:
    from docingest.db.pool import make_pool
    from docingest.domain import Stage
    from docingest.settings import Settings
    from docingest.stages.passthrough import Passthrough
    from docingest.worker.loop import BaseWorker

    settings = Settings(database_url=url, data_dir=Path(data_dir), environment="test")
    handlers = {s: Passthrough(s) for s in Stage if s is not Stage.COMPLETE}
    worker = BaseWorker(
        settings,
        make_pool(url, max_size=SLOTS + 2),
        handlers,  # type: ignore[misc]
        url=url,
        concurrency=SLOTS,
    )
    signal.signal(signal.SIGTERM, lambda *_: worker.stopping.set())
    worker.start()
    print("ready", flush=True)
    while not worker.stopping.wait(0.2):
        pass
    worker.stop()


def _procrastinate_app(url: str) -> Any:
    import logging

    import procrastinate

    logging.getLogger("procrastinate").setLevel(logging.ERROR)  # "App in the main module" notes

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="noop_stage", queue="bench")
    async def noop_stage(stage: int) -> None:
        if stage < STAGES_PER_JOB:
            await noop_stage.defer_async(stage=stage + 1)

    return app


def _procrastinate_child(url: str) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    app = _procrastinate_app(url)
    print("ready", flush=True)
    app.run_worker(queues=["bench"], concurrency=SLOTS, wait=True, delete_jobs="never")


# --- parent -----------------------------------------------------------------------------
def _start(args: list[str], n: int, pgoptions: str | None = None) -> list[subprocess.Popen[str]]:
    env = python_env(**({"PGOPTIONS": pgoptions} if pgoptions else {}))
    return start_processes(["-m", "bench.transitions", *args], n, env, ready_line=True)


def docingest_rate(rt: Any, processes: int, jobs: int, pgoptions: str | None = None) -> float:
    """Transitions/s of ``jobs`` no-op jobs through ``processes`` worker processes.

    ``pgoptions``: the children's ``PGOPTIONS`` (session settings), None for the defaults.
    """
    data_dir = str(scratch_dir("docingest-bench-tr-"))
    with rt.pool().connection() as conn:
        conn.execute("TRUNCATE upload_pipeline.documents CASCADE")
        copy_jobs(conn, jobs, state="waiting")
        conn.commit()
        since = db_now(rt.url)
        procs = _start(["--child", rt.url, data_dir], processes, pgoptions)
        try:
            wait_listening(rt.url, processes, since)
            go = conn.execute(
                "UPDATE upload_pipeline.upload_jobs SET state = 'queued', "
                "next_attempt_at = now() RETURNING now() AS t"
            ).fetchone()["t"]
            conn.commit()
            wait_count(
                conn,
                "SELECT count(*) n FROM upload_pipeline.upload_jobs WHERE state = 'done'",
                jobs,
                timeout=600,
            )
            seconds = conn.execute(
                "SELECT extract(epoch FROM max(finished_at) - %s)::float AS s "
                "FROM upload_pipeline.upload_jobs",
                (go,),
            ).fetchone()["s"]
            events = conn.execute(
                "SELECT count(*) n FROM upload_pipeline.events WHERE type = 'stage_completed'"
            ).fetchone()["n"]
        finally:
            stop_processes(procs)
    assert events == jobs * STAGES_PER_JOB, events
    return events / seconds


def procrastinate_rate(url: str, processes: int, jobs: int) -> float:
    """Tasks/s of ``jobs`` chains of nine no-op procrastinate tasks through ``processes`` workers."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE procrastinate_jobs CASCADE")
    app = _procrastinate_app(url)
    with app.open():
        since = db_now(url)
        procs = _start(["--procrastinate-child", url], processes)
        try:
            wait_listening(url, processes, since, channel=None)
            started = time.perf_counter()
            app.tasks["noop_stage"].batch_defer(*[{"stage": 1} for _ in range(jobs)])
            with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
                wait_count(
                    conn,
                    "SELECT count(*) n FROM procrastinate_jobs WHERE status = 'succeeded'",
                    jobs * STAGES_PER_JOB,
                    timeout=600,
                )
            seconds = time.perf_counter() - started
        finally:
            stop_processes(procs)
    return jobs * STAGES_PER_JOB / seconds


def _procrastinate_schema(url: str) -> None:
    app = _procrastinate_app(url)
    with app.open():
        app.schema_manager.apply_schema()


def run(quick: bool = False) -> list[Figure]:
    from docingest.runtime import Runtime

    jobs = 60 if quick else 1000
    rt = Runtime(scratch_settings())
    figures = [Figure("transitions", "jobs per run (9 transitions each)", jobs)]
    try:
        figures.append(
            Figure(
                "transitions",
                "durable commit latency, before",
                round(commit_latency_ms(rt.url), 3),
                "ms",
                "WAL flush on this disk",
            )
        )
        for processes in (1, 2, 4):
            rate = docingest_rate(rt, processes, jobs)
            figures.append(
                Figure(
                    "transitions",
                    f"docingest, {processes} process(es) x {SLOTS} slots",
                    round(rate, 1),
                    "transition/s",
                    ">= 1000" if processes == 2 else "",
                )
            )
        figures.append(
            Figure(
                "transitions",
                "durable commit latency, after",
                round(commit_latency_ms(rt.url), 3),
                "ms",
                "WAL flush on this disk",
            )
        )
        rate = docingest_rate(rt, 2, jobs, pgoptions="-c synchronous_commit=off")
        figures.append(
            Figure(
                "transitions",
                f"docingest, 2 process(es) x {SLOTS}, commits not flushed",
                round(rate, 1),
                "transition/s",
                "reference: not a setting docingest uses",
            )
        )
        try:
            import procrastinate  # noqa: F401
        except ImportError:
            figures.append(Figure("transitions", "procrastinate reference", 0, "", "not installed"))
            return figures
        try:
            _procrastinate_schema(rt.url)
            for processes in (2,) if quick else (1, 2, 4):
                rate = procrastinate_rate(rt.url, processes, jobs)
                figures.append(
                    Figure(
                        "transitions",
                        f"procrastinate, {processes} process(es) x {SLOTS}",
                        round(rate, 1),
                        "task/s",
                        "reference",
                    )
                )
        except Exception as exc:  # noqa: BLE001 - the reference is optional; keep our figures
            figures.append(
                Figure(
                    "transitions",
                    "procrastinate reference",
                    0,
                    "",
                    f"failed: {type(exc).__name__}: {exc}"[:120],
                )
            )
    finally:
        rt.close()
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _docingest_child(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["--procrastinate-child"]:
        _procrastinate_child(sys.argv[2])
    else:
        for f in run("--quick" in sys.argv):
            print(f"{f.name:45} {f.value:>10} {f.unit:12} {f.target}")
