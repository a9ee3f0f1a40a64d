"""Shared benchmark plumbing: a throwaway embedded database and result rows."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CORPUS = (REPO.parent / "shared" / "corpus").resolve()


@dataclass
class Figure:
    """One row of the benchmark table."""

    bench: str
    name: str
    value: float
    unit: str = ""
    target: str = ""

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def scratch_dir(prefix: str = "docingest-bench-") -> Path:
    """A new temporary directory, removed when the process exits.

    Registered with ``atexit`` before any embedded PostgreSQL starts in it, so it runs after
    pgserver's own exit handler has stopped that server (handlers run last-in, first-out).
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def scratch_settings(**overrides: Any) -> Any:
    """Settings on a fresh embedded database in a temporary data directory."""
    from docingest.settings import Settings

    data = scratch_dir()
    return Settings(data_dir=data, environment="test", **overrides)


SOURCE2E = CORPUS / "docs" / "pdf" / "source2e.pdf"


class StageCtx:
    """The smallest ``StageContext`` for running one stage handler outside a worker.

    No database: ``fenced`` is not available, which suits the handlers whose writes
    come back in ``StageResult.persist`` (parse, validate, chunk); ``save_progress``
    (the parse stage's pages parsed) only counts its calls.
    """

    def __init__(self, document: Any, progress: dict[str, Any] | None = None) -> None:
        import uuid

        from docingest.domain import Job, Stage, State, read_progress

        control, shown = read_progress(progress)
        self.document = document
        self.job = Job(
            job_id=uuid.uuid4(),
            document_id=document.document_id,
            stage=Stage.PARSE_QUEUED,
            state=State.WORKING,
            attempt_id=uuid.uuid4(),
            claimed_by="bench",
            lease_expires_at=None,
            attempts=1,
            retry_count=0,
            lost_leases=0,
            next_attempt_at=None,
            progress=shown,
            control=control,
        )

    progress_saves = 0

    def check(self) -> None:
        pass

    def save_progress(self, progress: Any, persist: Any = None, *, control: Any = None) -> None:
        self.progress_saves += 1


def stored_document(storage: Any, path: Path, *, user_id: str = "bench", kind: str = "pdf") -> Any:
    """Copy ``path`` into ``storage`` as a new document's original; return the ``Document``."""
    import hashlib
    import uuid

    from docingest.domain import Document
    from docingest.providers.storage import raw_key

    document_id = uuid.uuid4()
    key = raw_key(user_id, document_id, path.suffix.lstrip(".") or "bin")
    storage.copy_from(key, path)
    return Document(
        document_id=document_id,
        user_id=user_id,
        filename=path.name,
        mime="application/pdf" if kind == "pdf" else "text/plain",
        bytes_len=path.stat().st_size,
        file_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        raw_path=key,
    )


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest-rank."""
    import math

    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# --- processes, a database over TCP, bulk-registered documents (scaling, queue, bigpdf) ---------
#: The channel idle worker slots wake on (``worker.loop.NOTIFY_CHANNEL``).
JOBS_CHANNEL = "upload_pipeline_jobs"


def python_env(**extra: str) -> dict[str, str]:
    """This process's environment with the tree's ``src`` and root on ``PYTHONPATH``, no
    ``UPLOAD_PIPELINE_*`` variable of the caller's, and ``extra`` added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_PIPELINE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def start_processes(
    args: list[str], n: int, env: dict[str, str], *, ready_line: bool = False
) -> list[subprocess.Popen[str]]:
    """Start ``n`` copies of ``python args...`` in the repository root.

    ``ready_line``: each child prints ``ready`` on its stdout when started; wait for it.

    Raises:
        RuntimeError: a child exited before saying ``ready``.
    """
    procs = [
        subprocess.Popen(
            [sys.executable, *args],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE if ready_line else subprocess.DEVNULL,
            stderr=None if ready_line else subprocess.DEVNULL,
            text=True,
        )
        for _ in range(n)
    ]
    if ready_line:
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                stop_processes(procs)
                raise RuntimeError(f"child {args} exited before it was ready")
    return procs


def stop_processes(procs: list[subprocess.Popen[str]], timeout: float = 60) -> None:
    """SIGTERM each process (a worker releases its held jobs), wait ``timeout`` s, then SIGKILL."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def db_now(url: str) -> Any:
    """The database's ``clock_timestamp()`` (timestamps are compared on the server's clock)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]


def wait_listening(
    url: str, n: int, since: Any, timeout: float = 120, channel: str | None = JOBS_CHANNEL
) -> None:
    """Until ``n`` sessions started after ``since`` (a database timestamp) have run ``LISTEN``
    on ``channel`` (None: any) last: the worker processes' wake-up, so started and ready to claim.

    A child can say it is ready once its threads are started, before its listener has sent
    ``LISTEN``; jobs queued in that gap wake nobody, and a run would then wait for a polling
    interval (seconds) that it would count as queue time.

    Raises:
        TimeoutError: fewer than ``n`` did within ``timeout`` s.
    """
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while (
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND backend_start >= %s AND query ILIKE %s",
                (since, f"LISTEN {channel}" if channel else "LISTEN %"),
            ).fetchone()[0]  # type: ignore[index]
            < n
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} worker processes did not LISTEN within {timeout} s")
            time.sleep(0.05)


def wait_count(
    conn: Any, sql: str, target: int, timeout: float, params: Any = None, every: float = 0.05
) -> int:
    """Poll ``sql`` (one row, column ``n``) until it reaches ``target``; its last value.

    Raises:
        TimeoutError: it did not within ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    while (n := conn.execute(sql, params).fetchone()["n"]) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sql!r} reached {n}, not {target}, in {timeout} s")
        time.sleep(every)
    return int(n)


def commit_latency_ms(url: str, commits: int = 100) -> float:
    """Median milliseconds of a durable single-row commit (an INSERT, autocommit) on ``url``."""
    import statistics

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.bench_commit_probe (x int)")
        times = []
        for i in range(commits):
            started = time.perf_counter()
            conn.execute("INSERT INTO public.bench_commit_probe VALUES (%s)", (i,))
            times.append(time.perf_counter() - started)
        conn.execute("DROP TABLE public.bench_commit_probe")
    return statistics.median(times) * 1000


def load_avg() -> str:
    """The 1-minute load average, for a figure's note (the machine is shared)."""
    return f"{os.getloadavg()[0]:.1f}"


def tcp_database() -> str:
    """A new PostgreSQL (pgserver's binaries: 16 with pgvector) listening on 127.0.0.1 only,
    stopped at exit; its URL (TCP, as workers on other hosts reach theirs).

    The embedded database of docingest listens on a Unix socket; this one is made with the
    same binaries by ``initdb`` (trust authentication, loopback only) and ``pg_ctl``, run as
    pgserver's system user when this process is root (PostgreSQL refuses to run as root).
    Default settings (``fsync`` and ``synchronous_commit`` on), as a fresh install has.

    Raises:
        subprocess.CalledProcessError: ``initdb`` or ``pg_ctl`` failed (their output is logged).
    """
    import pgserver
    from pgserver.utils import ensure_prefix_permissions, ensure_user_exists, find_suitable_port

    pgdata = scratch_dir("docingest-bench-pg-") / "pg"
    pgdata.mkdir()
    user = None
    if os.geteuid() == 0:
        import pwd

        user = "pgserver"
        ensure_user_exists(user)
        ensure_prefix_permissions(pgdata)
        entry = pwd.getpwnam(user)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    pgserver.initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=pgdata, user=user)
    port = find_suitable_port("127.0.0.1")
    pgserver.pg_ctl(
        ["-w", "-o", f"-h 127.0.0.1 -p {port} -k {pgdata}", "-l", str(pgdata / "log"), "start"],
        pgdata=pgdata,
        user=user,
        timeout=120,
    )

    def stop() -> None:
        with suppress(Exception):  # at exit: nothing left to report to
            pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=120)

    atexit.register(stop)  # after scratch_dir's rmtree was registered: runs before it
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def hashing_settings(url: str, **overrides: Any) -> Any:
    """Settings on ``url`` with a fresh data directory (local storage) and the hashing embedder."""
    from docingest.settings import Settings

    return Settings(
        database_url=url,
        data_dir=scratch_dir(),
        environment="test",
        embedding_provider="hashing",
        **overrides,
    )


def worker_env(settings: Any, **extra: str) -> dict[str, str]:
    """The environment of a ``docingest worker`` child on ``settings``' database, data directory
    (the local storage the parent registered into) and embedder."""
    return python_env(
        UPLOAD_PIPELINE_DATABASE_URL=settings.database_url,
        UPLOAD_PIPELINE_DATA_DIR=str(settings.data_dir),
        UPLOAD_PIPELINE_ENVIRONMENT=settings.environment,
        UPLOAD_PIPELINE_EMBEDDING_PROVIDER=settings.embedding_provider,
        UPLOAD_PIPELINE_EMBEDDING_DIMENSIONS=str(settings.embedding_dimensions),
        **extra,
    )


def worker_command(slots: int) -> list[str]:
    """``python -m docingest worker`` with ``slots`` slots: a real worker process (arguments)."""
    return ["-m", "docingest", "worker", "--concurrency", str(slots)]


def note_markdown(i: int) -> bytes:
    """A small Markdown note (about 1.5 kB: a title, three sections), different for each ``i``."""
    sections = []
    for s in range(3):
        words = " ".join(f"term{(i * 7 + s * 13 + w) % 997}" for w in range(40))
        sections.append(
            f"## Section {s + 1} of note {i}\n\nThis paragraph of note {i} describes item {s} with "
            f"some ordinary words about queues, workers and leases. {words}.\n"
        )
    return (f"# Note {i}\n\n" + "\n".join(sections)).encode()


def register_notes(
    rt: Any,
    n: int,
    *,
    user_id: str = "bench",
    start: int = 0,
    wait_seconds: float = 0.0,
    batch: int = 1000,
    conn: Any = None,
    users: int = 1,
) -> float:
    """Store ``n`` Markdown notes (:func:`note_markdown` ``start .. start+n-1``) in ``rt``'s
    storage and register each as ``docingest ingest`` does: a document (``origin`` file, its
    own source) and its job ``queued`` at ``uploaded`` with its ``job_created`` event, due in
    ``wait_seconds``. ``users`` above 1: note ``i`` belongs to user ``{user_id}-{i % users}``
    (tenants of equal size), else every note is ``user_id``'s. Returns the seconds taken.

    The bulk path of a benchmark: the repository's own ``insert_document`` and ``insert_job``
    statements, ``executemany`` (pipelined) in transactions of ``batch`` documents, or, given
    ``conn``, all on it and left uncommitted (the caller commits). It skips what
    ``DocumentService.register_file`` adds for versions of one source (its lock, the stale
    versions): every note is a new source.
    """
    import hashlib
    import io
    import uuid

    from docingest.db.repository import queries
    from docingest.providers.storage import raw_key

    started = time.perf_counter()
    own = conn is None
    with nullcontext(conn) if conn is not None else rt.pool().connection() as db:
        for first in range(start, start + n, batch):
            docs, jobs = [], []
            for i in range(first, min(start + n, first + batch)):
                body = note_markdown(i)
                owner = f"{user_id}-{i % users:03d}" if users > 1 else user_id
                document_id = uuid.uuid4()
                key = raw_key(owner, document_id, "md")
                rt.storage.put_stream(key, io.BytesIO(body))
                name = f"note-{i:06d}.md"
                docs.append(
                    {
                        "document_id": document_id,
                        "user_id": owner,
                        "filename": name,
                        "mime": "text/markdown",
                        "bytes_len": len(body),
                        "file_sha256": hashlib.sha256(body).hexdigest(),
                        "raw_path": key,
                        "source": name,
                        "meta": "{}",
                        "origin": "file",
                        "source_mtime_ns": None,
                        "max_active": None,
                    }
                )
                jobs.append(
                    {
                        "job_id": uuid.uuid4(),
                        "document_id": document_id,
                        "state": "queued",
                        "via": "ingest",
                        "wait_seconds": wait_seconds,
                        "error_code": None,
                        "error_message": None,
                    }
                )
            with db.cursor() as cur:
                cur.executemany(queries()["insert_document"], docs)
                cur.executemany(queries()["insert_job"], jobs)
            if own:
                db.commit()
    return time.perf_counter() - started


def vm_kb(pid: int, field: str) -> int:
    """``field`` (``VmHWM``: peak resident set, ``VmRSS``) of ``/proc/PID/status``, kB.

    Raises:
        OSError: no such process. KeyError: no such field.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def copy_jobs(conn: Any, n: int, *, state: str = "queued", due: bool = True, user_id: str = "bench") -> None:
    """``n`` documents (no stored object: for the no-op handlers) and their jobs at ``uploaded``
    in ``state``, due now (``due``) or never (until :func:`release_queued`), by ``COPY`` on
    ``conn`` (not committed)."""
    import uuid

    ids = [uuid.uuid4() for _ in range(n)]
    with conn.cursor().copy(
        "COPY upload_pipeline.documents (document_id, user_id, filename, mime, "
        "bytes_len, file_sha256, raw_path) FROM STDIN"
    ) as copy:
        for i, d in enumerate(ids):
            copy.write_row((d, user_id, f"d{i}", "text/plain", 1, f"{i:064x}", f"k/{d}"))
    with conn.cursor().copy(
        "COPY upload_pipeline.upload_jobs (job_id, document_id, stage, state, next_attempt_at) FROM STDIN"
    ) as copy:
        for d in ids:
            copy.write_row((uuid.uuid4(), d, "uploaded", state, "now" if due else "infinity"))


#: ``wait_seconds`` of :func:`register_notes` for jobs that :func:`release_queued` makes due.
NOT_DUE_SECONDS = 10 * 365 * 86400.0


def release_queued(conn: Any) -> int:
    """Make every queued job that is not due yet due now, and wake the workers with one
    notification; on ``conn``, not committed (the commit releases them all at once). The
    number of jobs released.

    A benchmark queues its jobs not due (``copy_jobs(due=False)``, ``register_notes(wait_seconds=
    NOT_DUE_SECONDS)``) before the workers start, so that none is claimed while they start, and
    without one notification per job reaching every worker's listener at once (a cost that
    would grow with the queue depth being compared). ``next_attempt_at`` is not the column the
    jobs' ``NOTIFY`` trigger follows, so this update sends none: the one ``NOTIFY`` here does.
    The old index entries it leaves are at the end of the claimable index, past every due job.
    """
    released: int = conn.execute(
        "UPDATE upload_pipeline.upload_jobs SET next_attempt_at = now()"
        " WHERE state = 'queued' AND next_attempt_at > now()"
    ).rowcount
    conn.execute("SELECT pg_notify(%s, 'bench')", (JOBS_CHANNEL,))
    return released


def server_pid(conn: Any) -> int:
    """The PostgreSQL postmaster's pid (``postmaster.pid`` of the server ``conn`` is on; the
    server must run on this machine)."""
    data = conn.execute("SELECT current_setting('data_directory') AS d").fetchone()
    directory = data["d"] if isinstance(data, dict) else data[0]
    return int((Path(directory) / "postmaster.pid").read_text().split()[0])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` and all their descendants alive now
    (a process that exited no longer counts: sample while the work runs)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for p in procs:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
    return total
