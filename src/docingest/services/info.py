"""What an installation is and holds: ``docingest info``, and where a command looked.

:func:`describe` says where settings point (data directory, database without its password,
storage, parser, embedder) without touching the database; :func:`collect` adds the counts of
one user's (or everyone's) documents, jobs by state and chunks. The CLI renders both; the
messages of a search or status that finds nothing use :func:`where`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

from docingest.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from docingest.db.database import Database
    from docingest.providers.storage import Storage
    from docingest.services.documents import DocumentService


def version() -> str:
    """The installed distribution's version (``importlib.metadata``), else the package's own."""
    try:
        return metadata.version("docingest")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        from docingest import __version__

        return __version__


def redact_url(url: str) -> str:
    """A database URL with its password replaced by ``***`` (URL or ``key=value`` form).

    ``postgresql://app:s3cret@db:5432/docs`` -> ``postgresql://app:***@db:5432/docs``;
    ``host=db password=s3cret`` -> ``host=db password=***``. Query parameters named
    ``password`` are redacted too.
    """
    if "://" not in url:
        return re.sub(r"(?i)\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", "password=***", url)
    # userinfo's password: reserved characters in it are percent-encoded (RFC 3986, as libpq reads it)
    url = re.sub(r"^([A-Za-z][\w+.-]*://[^@/?#:]*):[^@/?#]*@", r"\1:***@", url)
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)


def database(settings: Settings) -> str:
    """``embedded PostgreSQL under DATA_DIR/pg``, or the configured URL without its password."""
    if settings.database_url:
        return redact_url(settings.database_url)
    return f"embedded PostgreSQL under {settings.data_dir / 'pg'}"


def where(settings: Settings) -> str:
    """One phrase naming what a command read: the data directory, and the database when it is
    not the embedded one (``data dir /x (database postgresql://app:***@db/docs)``)."""
    if settings.database_url:
        return f"data dir {settings.data_dir} (database {database(settings)})"
    return f"data dir {settings.data_dir}"


@dataclass
class Info:
    """``docingest info``: where an installation's settings point and what it holds.

    Counts are of ``user`` (``None``: every user); ``documents`` counts every document
    whatever its state, ``searchable`` those with chunks; ``jobs_by_state`` maps each state
    (``queued``, ``working``, ``done``, ``failed`` ...) to its job count.
    """

    version: str
    data_dir: str
    database: str
    storage: str
    parser: str
    embedder: str
    embedding_backend: str | None
    embedding_dimensions: int
    models_dir: str | None
    user: str | None
    documents: int = 0
    searchable: int = 0
    chunks: int = 0
    users: int = 0
    jobs_by_state: dict[str, int] = field(default_factory=dict)
    #: each embedding generation's share of the chunks (``services.reembed.Coverage`` as dicts)
    generations: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ocr_words(settings: Settings) -> str:
    """``'auto: Tesseract 5.5.4, eng from /usr/share/...'``, or why OCR is off."""
    from docingest.providers.parsing.options import ocr_status

    if settings.ocr == "off":
        return "off (UPLOAD_PIPELINE_OCR=off)"
    status = ocr_status(settings.ocr_languages, settings.tessdata_prefix)
    if not status.available:
        return f"off ({status.reason})"
    return f"{settings.ocr}: Tesseract {status.version}, {settings.ocr_languages} from {status.tessdata}"


def describe(settings: Settings, *, user: str | None = None) -> Info:
    """The settings part of :class:`Info` (counts zero); reads no database."""
    if settings.storage_backend == "local":
        storage = f"local: {settings.storage_dir}"
    else:
        storage = (
            f"{settings.storage_backend}: {settings.storage_url or 'the provider default'} "
            f"(bucket {settings.storage_bucket})"
        )
    parser = (
        "local (pypdfium2, python-docx, python-pptx, calamine, ebooklib, odfdo, striprtf, email and "
        f"extract-msg, BeautifulSoup, Markdown, CSV, JSON, text); OCR: {_ocr_words(settings)}"
        if settings.parser == "local"
        else f"llamaparse at {settings.llamaparse_url} (tier {settings.llamaparse_tier})"
    )
    backend: str | None = None
    if settings.embedding_provider == "local":
        from docingest.providers.embedding.local import resolve_backend

        embedder = f"local {settings.embedding_model}"
        documents, queries = (
            resolve_backend(settings.embedding_backend, p) for p in ("documents", "queries")
        )
        backend = documents if documents == queries else f"{documents} for documents, {queries} for queries"
        if settings.embedding_backend == "auto":
            backend = f"auto: {backend}"
    elif settings.embedding_provider == "openai":
        embedder = (
            f"openai-compatible {settings.embedding_model} at "
            f"{settings.openai_base_url or 'https://api.openai.com/v1'}"
        )
    else:
        embedder = "hashing (deterministic, not semantic: for tests)"
    return Info(
        version=version(),
        data_dir=str(settings.data_dir),
        database=database(settings),
        storage=storage,
        parser=parser,
        embedder=embedder,
        embedding_backend=backend,
        embedding_dimensions=settings.embedding_dimensions,
        models_dir=str(settings.model_cache_dir) if backend else None,
        user=user,
    )


def collect(settings: Settings, documents: DocumentService, *, user: str | None = None) -> Info:
    """:func:`describe` plus the counts of ``user``'s documents, chunks and jobs by state, and
    each embedding generation's coverage of the chunks.

    Raises:
        psycopg.Error: the database cannot be reached or read.
    """
    info = describe(settings, user=user)
    counts = documents.inventory(user)
    info.documents, info.chunks, info.users = counts["documents"], counts["chunks"], counts["users"]
    info.searchable = counts["searchable"]
    info.jobs_by_state = dict(sorted(counts["jobs_by_state"].items()))
    from docingest.services.reembed import coverage

    info.generations = [asdict(c) | {"line": c.line} for c in coverage(documents.db, documents.repo, user)]
    return info


def readiness(db: Database, storage: Callable[[], Storage]) -> dict[str, str]:
    """``{"database": ..., "storage": ...}``: ``"ok"`` for each that answers, else
    ``"error: <type>"`` (the storage's also with its message, at most 200 characters).

    ``storage`` returns the object storage (called inside the check: one that cannot be
    built is reported, not raised)."""
    checks: dict[str, str] = {}
    try:
        with db.connection(timeout=5) as conn:
            conn.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        storage().ping()
        checks["storage"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["storage"] = f"error: {type(exc).__name__}: {exc}"[:200]
    return checks
