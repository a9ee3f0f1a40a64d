"""A large document: a generated 5,000-page PDF ingested by one worker, with the peak memory of
the worker and of its parse child against a 500-page one (memory must not grow with pages).

The PDF is made with fpdf2 (not timed): on every page a running text of 12 lines (about two
chunks), a heading every tenth page. Each size is ingested by a fresh worker process (``python -m docingest
worker --concurrency 1``, hashing embedder: no model, so the figures are docingest's own
parse, chunk, store and index costs) on a PostgreSQL reached over TCP, the PDF registered as
``docingest ingest`` registers a file (``DocumentService.register_file``) once the worker
listens. A thread samples the resident set of the worker and of its descendants (the parse
forkserver and the sandboxed parse child) every 50 ms (psutil); at the end, the peak of each
live process is read from ``VmHWM`` (``/proc/PID/status``), which the sampling can only
approach. Reported per size: wall time (registered -> done), pages/s, the parse stage's
seconds, chunks, the worker's RSS when idle and its peak, the parse child's peak (the largest
descendant); then the ratios 5,000 / 500 pages (bounded: near 1, far below 10).

Each PDF is its own user's, and the 5,000 pages make ~10,000 chunks: under
``SEARCH_EXACT_MAX_CHUNKS`` (20,000), so the finalize stage writes no HNSW entries (a user past
it pays one HNSW insert per chunk at finalize: see ``bench backlog`` and docs/scaling.md).

    python -m bench bigpdf [--quick]
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from bench.common import (
    Figure,
    db_now,
    hashing_settings,
    load_avg,
    scratch_dir,
    start_processes,
    stop_processes,
    tcp_database,
    vm_kb,
    wait_count,
    wait_listening,
    worker_command,
    worker_env,
)

NAME = "bigpdf"
LINES_PER_PAGE = 12


def make_pdf(path: Path, pages: int) -> int:
    """Write a ``pages``-page PDF of running text (a heading every tenth page); its bytes."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(False)
    for page in range(pages):
        pdf.add_page()
        if page % 10 == 0:
            pdf.set_font("Helvetica", "B", 16)
            pdf.cell(
                0, 12, f"Chapter {page // 10 + 1}: queues, leases and workers", new_x="LMARGIN", new_y="NEXT"
            )
        pdf.set_font("Helvetica", size=10)
        for line in range(LINES_PER_PAGE):
            words = " ".join(f"w{(page * 31 + line * 7 + k) % 1009}" for k in range(8))
            pdf.cell(
                0,
                6,
                f"Page {page + 1}, line {line + 1}: a worker claims a job, holds its lease, {words}.",
                new_x="LMARGIN",
                new_y="NEXT",
            )
    pdf.output(str(path))
    return path.stat().st_size


class RssSampler:
    """Samples the resident set of a process and of its descendants every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid = pid
        self.every = every
        self.peak: dict[int, int] = {}  # pid -> highest RSS sampled, bytes
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def _loop(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self._done.wait(self.every):
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            for p in procs:
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                self.peak[p.pid] = max(rss, self.peak.get(p.pid, 0))

    def stop(self) -> dict[int, int]:
        """Stop; each process's peak in bytes: ``VmHWM`` if it still runs, else the highest sample."""
        self._done.set()
        self._thread.join()
        peaks = {}
        for pid, sampled in self.peak.items():
            try:
                peaks[pid] = max(sampled, vm_kb(pid, "VmHWM") * 1024)
            except (OSError, KeyError):
                peaks[pid] = sampled
        return peaks


def ingest_pdf(rt: Any, settings: Any, path: Path) -> dict[str, float]:
    """Ingest ``path`` with a fresh worker process; wall time, pages, chunks, RSS figures (MB).

    Raises:
        RuntimeError: the job did not complete (its error code in the message).
        TimeoutError: the worker did not start, or the job took over an hour.
    """
    import psutil

    since = db_now(rt.url)
    procs = start_processes(worker_command(1), 1, worker_env(settings))
    worker = procs[0]
    try:
        wait_listening(rt.url, 1, since)
        idle_mb = psutil.Process(worker.pid).memory_info().rss / 2**20
        sampler = RssSampler(worker.pid).start()
        registered = rt.documents.register_file(path, user_id=f"bench-{path.stem}")
        assert registered.job is not None
        job_id = registered.job.job_id
        with rt.pool().connection() as conn:
            conn.autocommit = True
            wait_count(
                conn,
                "SELECT count(*) AS n FROM upload_pipeline.upload_jobs"
                " WHERE job_id = %s AND state IN ('done', 'failed')",
                1,
                timeout=3600,
                params=(job_id,),
                every=0.2,
            )
            worker_peak = vm_kb(worker.pid, "VmHWM") * 1024
            peaks = sampler.stop()
            job = conn.execute(
                "SELECT j.state, j.error_code, extract(epoch FROM j.finished_at - j.created_at)::float8 AS s,"
                " d.page_count FROM upload_pipeline.upload_jobs j JOIN upload_pipeline.documents d"
                " USING (document_id) WHERE j.job_id = %s",
                (job_id,),
            ).fetchone()
            if job["state"] != "done":
                raise RuntimeError(f"the PDF's job ended {job['state']} {job['error_code']}")
            parse_s = conn.execute(
                "SELECT (payload->>'seconds')::float8 AS s FROM upload_pipeline.events WHERE job_id = %s"
                " AND type = 'stage_completed' AND payload->>'from' = 'parse_queued'",
                (job_id,),
            ).fetchone()["s"]
            chunks = conn.execute(
                "SELECT count(*) AS n FROM upload_pipeline.document_chunks WHERE document_id = %s",
                (registered.document.document_id,),
            ).fetchone()["n"]
    finally:
        stop_processes(procs)
    children = [b for pid, b in peaks.items() if pid != worker.pid]
    return {
        "seconds": job["s"],
        "pages": job["page_count"],
        "parse_s": parse_s,
        "chunks": chunks,
        "idle_mb": idle_mb,
        "worker_peak_mb": max(worker_peak, peaks.get(worker.pid, 0)) / 2**20,
        "child_peak_mb": max(children, default=0) / 2**20,
    }


def run(quick: bool = False) -> list[Figure]:
    from docingest.runtime import Runtime

    sizes = (20, 200) if quick else (500, 5000)
    url = tcp_database()
    settings = hashing_settings(url)
    rt = Runtime(settings, migrate=True)
    rt.generation()
    work = scratch_dir("docingest-bench-bigpdf-")
    figures = [Figure(NAME, "embedder", 0, "", "hashing (no model); 1 worker process, 1 slot")]
    results = {}
    try:
        for pages in sizes:
            path = work / f"generated-{pages}.pdf"
            size = make_pdf(path, pages)
            load_before = load_avg()
            r = results[pages] = ingest_pdf(rt, settings, path)
            load = f"load {load_before} -> {load_avg()}"
            where = f"{pages} pages ({size / 2**20:.1f} MiB)"
            figures += [
                Figure(NAME, f"{where}: wall (registered -> done)", round(r["seconds"], 1), "s", load),
                Figure(NAME, f"{where}: pages/s", round(r["pages"] / r["seconds"], 1), "page/s"),
                Figure(NAME, f"{where}: parse stage", round(r["parse_s"], 1), "s"),
                Figure(NAME, f"{where}: chunks", r["chunks"], "chunks"),
                Figure(NAME, f"{where}: worker RSS idle", round(r["idle_mb"], 1), "MB"),
                Figure(NAME, f"{where}: worker peak RSS", round(r["worker_peak_mb"], 1), "MB"),
                Figure(NAME, f"{where}: parse child peak RSS", round(r["child_peak_mb"], 1), "MB"),
            ]
    finally:
        rt.close()
    small, large = (results[p] for p in sizes)
    ratio = f"{sizes[1]} / {sizes[0]} pages"
    figures += [
        Figure(
            NAME,
            f"worker peak RSS, {ratio}",
            round(large["worker_peak_mb"] / small["worker_peak_mb"], 2),
            "x",
            "bounded: ~1",
        ),
        Figure(
            NAME,
            f"parse child peak RSS, {ratio}",
            round(large["child_peak_mb"] / small["child_peak_mb"], 2),
            "x",
            "bounded: ~1",
        ),
        Figure(
            NAME,
            f"pages/s, {ratio}",
            round((large["pages"] / large["seconds"]) / (small["pages"] / small["seconds"]), 2),
            "x",
        ),
    ]
    return figures


if __name__ == "__main__":
    for f in run("--quick" in sys.argv):
        print(f"{f.name:55} {f.value:>10} {f.unit:8} {f.target}")
