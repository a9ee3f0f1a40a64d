"""Shared benchmark plumbing: a throwaway embedded database and result rows."""

from __future__ import annotations

import atexit
import shutil
import tempfile
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
