"""Mock of the LlamaParse REST API: LlamaCloud's Parse API **v2**, for tests and development.

It serves what the official ``llama-cloud`` SDK (2.x: ``LlamaCloud().parsing.create/get/parse``)
calls to parse an uploaded file; the v1 routes (``/api/v1/parsing/...``) of the older
``llama-parse`` and ``llama-cloud-services`` clients are answered 404 with a message saying so.
The SDK's other parse calls are not served either, and every path or method the mock does
not serve is answered 404 ``{"detail": "<what> is not implemented by docingest's LlamaParse
mock ..."}`` (404, not 501: the SDKs retry a 5xx, and a 404 is what the v1 routes answer):
``parsing.create`` without a file (``POST /api/v2/parse``, a ``file_id`` or ``source_url``),
``parsing.list`` (``GET /api/v2/parse``), ``parsing.get`` of ``/api/v2/parse/versions``
(``parsing.list_versions``), ``parsing.delete`` (``DELETE /api/v2/parse/{job_id}``),
``parsing.cancel`` (``POST /api/v2/parse/{job_id}/cancel``).
Endpoints (LlamaCloud docs, "REST API Guide", "Retrieving Results", "Troubleshooting & Error
Codes"):

- ``POST /api/v2/parse/upload`` (multipart: ``file``, ``configuration`` JSON string with
  ``tier`` and ``version``) -> the job ``{"id", "project_id", "status": "PENDING", "tier", ...}``;
  400 ``{"detail"}`` for a missing, empty or unnamed file or a configuration that is not JSON;
  422 (``{"detail": [{"type", "loc", "msg", "input"}]}``) for a missing or unknown tier.
- ``GET /api/v2/parse/{job_id}?expand=...`` -> ``{"job": {"id", "project_id", "status",
  "error_message", "tier", "created_at", "updated_at"}, ...}``; statuses ``PENDING``,
  ``RUNNING``, ``COMPLETED``, ``FAILED``, ``CANCELLED``; 404 ``Parse job not found``.

Once a job is ``COMPLETED``, every ``expand`` value the v2 API documents is answered with
content of its documented shape, made from the uploaded file's real text (docingest's local
parsers; a PDF's plain text from its text layer, page by page):

- ``text`` ``{"pages": [{"page_number", "text"}]}``, ``text_full`` (one string);
- ``markdown`` ``{"pages": [{"page_number", "markdown", "success": true, "header", "footer"}]}``,
  ``markdown_full`` (one string);
- ``items`` ``{"pages": [{"page_number", "page_width", "page_height", "success": true,
  "items": [...]}]}``, each item typed ``heading`` (``level``, ``value``, ``md``), ``text``,
  ``list`` (``ordered``, ``items``), ``table`` (``rows``, ``csv``, ``html``, ``md``) or ``code``;
- ``metadata`` ``{"pages": [{"page_number", "confidence", ...}], "document": {...}}``;
  ``forms`` (a page each, no forms found); ``job_metadata`` (a dict); ``usage``
  (``job.usage.credits``: pages x the tier's credits per page: 1, 3, 10, 45);
- ``*_content_metadata`` (``text``, ``text_full``, ``markdown``, ``markdown_full``, ``items``,
  ``metadata``, ``forms``, ``raw_words``, ``xlsx``, ``output_pdf``) ->
  ``result_content_metadata[name] = {"size_bytes", "exists", "presigned_url"}``, the URL a
  download from this mock (no auth, as a presigned URL); ``xlsx`` does not exist (the mock
  writes no spreadsheet), nor ``output_pdf`` for an input that is not a PDF;
  ``images_content_metadata`` -> ``{"images": [], "total_count": 0}`` (no images extracted).

Tiers follow the documented outputs: ``fast`` produces text only, so ``markdown``,
``markdown_full``, ``items`` and their ``*_content_metadata`` are refused on a fast job with
400 ``Markdown expansion is not available for FAST tier jobs.``; an unknown or empty ``expand``
value (``expand=``, ``expand=text,,markdown``) is refused 422 as FastAPI refuses a query value
outside its enum (``{"detail": [{"type": "enum", "loc": ["query", "expand"], "msg", "input"}]}``).
Before ``COMPLETED`` only ``job`` is answered.

A job succeeds ``job_seconds`` after upload; ``never_finish_rate`` of jobs stay
``RUNNING``, ``fail_rate`` end ``FAILED``, ``cancel_rate`` end ``CANCELLED``; a file the local
parsers cannot read ends ``FAILED`` (``UNSUPPORTED_FILE_TYPE: ...``). The fault knobs answer
429 (``Retry-After``) and 500 with LlamaParse's ``{"detail": ...}`` body.
When the configuration has ``webhook_configurations``, the mock POSTs
``{"event_type": "parse.success"|..., "data": {"job_id", "status"}}`` to each
``webhook_url`` with its ``webhook_headers`` when the job ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import html
import io
import json
import logging
import random
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from docingest.testing.mocks.common import Knobs, Ledger, add_fault_middleware

log = logging.getLogger("docingest.testing.mocks.llamaparse")

TIERS = {"fast": 1, "cost_effective": 3, "agentic": 10, "agentic_plus": 45}  # credits per page
CONTENT_METADATA = (
    "text",
    "text_full",
    "markdown",
    "markdown_full",
    "items",
    "metadata",
    "forms",
    "raw_words",
    "xlsx",
    "output_pdf",
)
EXPAND_VALUES = frozenset(
    {"text", "text_full", "markdown", "markdown_full", "items", "metadata", "forms", "job_metadata", "usage"}
    | {f"{name}_content_metadata" for name in CONTENT_METADATA}
    | {"images_content_metadata"}
)
NOT_ON_FAST = frozenset(
    {
        "markdown",
        "markdown_full",
        "items",
        "markdown_content_metadata",
        "markdown_full_content_metadata",
        "items_content_metadata",
    }
)
LETTER = (612.0, 792.0)  # page size in points of a format without pages


@dataclass
class LlamaParseMockConfig:
    """The LlamaParse mock's settings.

    Attributes:
        knobs: fault injection (:class:`~docingest.testing.mocks.common.Knobs`).
        job_seconds: time from upload until a job ends.
        never_finish_rate: fraction of jobs that stay ``RUNNING``.
        fail_rate: fraction of jobs that end ``FAILED``.
        cancel_rate: fraction of jobs that end ``CANCELLED``.
    """

    knobs: Knobs = field(default_factory=Knobs)
    job_seconds: float = 1.0
    never_finish_rate: float = 0.0
    fail_rate: float = 0.0
    cancel_rate: float = 0.0


@dataclass
class _Job:
    id: str
    path: Path
    filename: str
    created: float
    fate: str  # COMPLETED | FAILED | CANCELLED | NEVER
    tier: str
    version: str
    webhooks: list[dict[str, Any]]
    error: str | None = None  # why the parse failed (a file the parsers cannot read)
    pages: list[dict[str, Any]] | None = None  # page_number, markdown, text, width, height
    is_pdf: bool = False


_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+(.*)$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def markdown_to_text(md: str) -> str:
    """Plain text of a Markdown string: headings', lists' and quotes' markers, emphasis, code
    marks, table rules and pipes, and link and image syntax removed (their text kept)."""
    out = []
    for line in md.splitlines():
        if _FENCE.match(line) or _TABLE_RULE.match(line):
            continue
        line = re.sub(r"^\s{0,3}#{1,6}\s+", "", line)
        line = re.sub(r"^\s*>\s?", "", line)
        line = re.sub(r"^(\s*)(?:[-*+])\s+", r"\1", line)
        line = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", line)
        line = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line)
        line = re.sub(r"(\*\*|__)(.+?)\1", r"\2", line)
        line = re.sub(r"(?<![\w*])([*_])(?!\s)(.+?)(?<!\s)\1(?![\w*])", r"\2", line)
        line = line.replace("`", "")
        if line.lstrip().startswith("|"):
            line = "  ".join(c.strip() for c in line.strip().strip("|").split("|"))
        out.append(line.rstrip())
    return "\n".join(out).strip("\n")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table_item(lines: list[str]) -> dict[str, Any]:
    rows: list[list[str | float | None]] = [list(_cells(x)) for x in lines if not _TABLE_RULE.match(x)]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    body = "".join(
        "<tr>"
        + "".join(
            f"<{'th' if i == 0 else 'td'}>{html.escape(str(c))}</{'th' if i == 0 else 'td'}>" for c in r
        )
        + "</tr>"
        for i, r in enumerate(rows)
    )
    return {
        "type": "table",
        "rows": rows,
        "csv": buf.getvalue(),
        "html": f"<table>{body}</table>",
        "md": "\n".join(lines),
    }


def markdown_items(md: str) -> list[dict[str, Any]]:
    """LlamaParse's ``items`` of one page's Markdown: ``heading``, ``table``, ``list``, ``code``
    and ``text`` items (each with its ``md``), in reading order."""
    items: list[dict[str, Any]] = []
    lines = md.splitlines()
    i = 0
    para: list[str] = []

    def flush() -> None:
        if para:
            text = "\n".join(para)
            items.append({"type": "text", "value": markdown_to_text(text), "md": text})
            para.clear()

    while i < len(lines):
        line = lines[i]
        if fence := _FENCE.match(line):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(fence.group(1)):
                j += 1
            block = lines[i : j + 1]
            items.append(
                {
                    "type": "code",
                    "value": "\n".join(lines[i + 1 : j]),
                    "md": "\n".join(block),
                    "language": fence.group(2) or None,
                }
            )
            i = j + 1
            continue
        if heading := _HEADING.match(line):
            flush()
            items.append(
                {
                    "type": "heading",
                    "level": len(heading.group(1)),
                    "value": markdown_to_text(heading.group(2)),
                    "md": line,
                }
            )
        elif line.lstrip().startswith("|"):
            flush()
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            items.append(_table_item(lines[i:j]))
            i = j
            continue
        elif first := _LIST.match(line):
            flush()
            j = i
            entries = []
            while j < len(lines) and (m := _LIST.match(lines[j])):
                entries.append({"type": "text", "value": markdown_to_text(m.group(3)), "md": lines[j]})
                j += 1
            items.append(
                {
                    "type": "list",
                    "ordered": first.group(2)[0].isdigit(),
                    "items": entries,
                    "md": "\n".join(lines[i:j]),
                }
            )
            i = j
            continue
        elif not line.strip():
            flush()
        else:
            para.append(line)
        i += 1
    flush()
    return items


def _pdf_pages(path: Path) -> list[tuple[str, float, float]]:
    """Each page of a PDF: its text layer's text (pypdfium2) and its size in points."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        out = []
        for page in pdf:
            width, height = page.get_size()
            textpage = page.get_textpage()
            out.append((textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n"), width, height))
            textpage.close()
            page.close()
        return out
    finally:
        pdf.close()


def parse_pages(path: Path, filename: str) -> tuple[list[dict[str, Any]], bool]:
    """The pages of an uploaded file, ``({page_number, markdown, text, width, height}, is_pdf)``,
    read by docingest's local parsers.

    Raises:
        docingest.errors.DocIngestError (or any parser error): a file they cannot read.
    """
    from docingest.providers.parsing import detect, parse_file

    kind = detect(path, filename=filename).kind
    parsed = parse_file(path, kind)
    if not parsed.pages:
        md = parsed.markdown
        return [
            {
                "page_number": 1,
                "markdown": md,
                "text": markdown_to_text(md),
                "width": LETTER[0],
                "height": LETTER[1],
            }
        ], False
    pages: list[dict[str, Any]] = [
        {"page_number": p.number, "markdown": parsed.markdown[p.start : p.end]} for p in parsed.pages
    ]
    layer = _pdf_pages(path) if kind == "pdf" else []
    for k, page in enumerate(pages):
        if len(layer) == len(pages):
            page["text"], page["width"], page["height"] = layer[k]
        else:
            page["text"] = markdown_to_text(str(page["markdown"]))
            page["width"], page["height"] = LETTER
    return pages, kind == "pdf"


def _detail(status: int, message: str) -> Any:
    return JSONResponse({"detail": message}, status_code=status)


#: The LlamaCloud SDK's parse calls the mock does not serve: (method, path pattern, what it is).
NOT_SERVED = (
    (
        "POST",
        re.compile(r"/api/v2/parse/?"),
        "parsing.create without a file (POST /api/v2/parse, file_id or source_url)",
    ),
    ("GET", re.compile(r"/api/v2/parse/?"), "parsing.list (GET /api/v2/parse)"),
    ("GET", re.compile(r"/api/v2/parse/versions/?"), "parsing.list_versions (GET /api/v2/parse/versions)"),
    ("DELETE", re.compile(r"/api/v2/parse/[^/]+/?"), "parsing.delete (DELETE /api/v2/parse/{job_id})"),
    (
        "POST",
        re.compile(r"/api/v2/parse/[^/]+/cancel/?"),
        "parsing.cancel (POST /api/v2/parse/{job_id}/cancel)",
    ),
)
SERVED = "it serves POST /api/v2/parse/upload and GET /api/v2/parse/{job_id} of LlamaParse's Parse API v2"


def not_implemented(method: str, path: str) -> Any:
    """The 404 ``{"detail"}`` of a request the mock does not serve, naming the SDK call it is
    (from :data:`NOT_SERVED`), else the method and path."""
    what = next(
        (name for m, pattern, name in NOT_SERVED if m == method and pattern.fullmatch(path)),
        f"{method} {path}",
    )
    return _detail(404, f"{what} is not implemented by docingest's LlamaParse mock: {SERVED}.")


def expand_values(raw: list[str]) -> set[str] | Any:
    """The ``expand`` values of a request (each query value split on commas), or the 422 of
    an unknown or empty one, in FastAPI's validation-error shape."""
    values = [e.strip() for v in raw for e in v.split(",")]
    bad = [(i, e) for i, e in enumerate(values) if e not in EXPAND_VALUES]
    if not bad:
        return set(values)
    expected = ", ".join(f"'{e}'" for e in sorted(EXPAND_VALUES))
    return JSONResponse(
        {
            "detail": [
                {
                    "type": "enum",
                    "loc": ["query", "expand", i],
                    "msg": f"Input should be {expected}",
                    "input": e,
                    "ctx": {"expected": expected},
                }
                for i, e in bad
            ]
        },
        status_code=422,
    )


def _fault_body(status: int, retry_after: str) -> dict[str, Any]:
    if status == 429:
        return {"detail": f"Rate limit exceeded. Please try again in {retry_after} seconds."}
    return {"detail": "Internal Server Error"}


def create_app(config: LlamaParseMockConfig) -> Any:
    """The mock's ASGI app (routes in the module's docstring, plus ``GET /health``,
    ``GET /_mock/stats`` and ``GET /_mock/results/{job_id}/{name}``, the presigned downloads)."""
    workdir = Path(tempfile.mkdtemp(prefix="mock-llamaparse-"))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:  # the uploaded files go with the server
            shutil.rmtree(workdir, ignore_errors=True)

    app = FastAPI(title="docingest mock LlamaParse", lifespan=lifespan)
    ledger = Ledger()
    jobs: dict[str, _Job] = {}
    rng = random.Random(config.knobs.seed)
    add_fault_middleware(
        app, config.knobs, ledger, malformed_body=b'{"job": {"id": "pjb-', fault_body=_fault_body
    )
    tasks: set[asyncio.Task[None]] = set()

    def status_of(job: _Job) -> str:
        elapsed = time.time() - job.created
        if job.fate == "NEVER" or elapsed < config.job_seconds:
            return "PENDING" if elapsed < min(0.2, config.job_seconds / 2) else "RUNNING"
        return job.fate

    async def settle(job: _Job) -> str:
        """The job's status, its file parsed once it is due to complete (a file the parsers
        cannot read makes it ``FAILED``)."""
        status = status_of(job)
        if status == "COMPLETED" and job.pages is None:
            try:
                job.pages, job.is_pdf = await asyncio.to_thread(parse_pages, job.path, job.filename)
            except Exception as exc:  # noqa: BLE001 - any parser failure is the job's failure
                job.fate, job.error = "FAILED", f"UNSUPPORTED_FILE_TYPE: {type(exc).__name__}: {exc}"
                status = "FAILED"
        return status

    def stamp(t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    def job_object(job: _Job, status: str) -> dict[str, Any]:
        return {
            "id": job.id,
            "project_id": "mock-project",
            "status": status,
            "tier": job.tier,
            "name": job.filename,
            "error_message": {
                "FAILED": job.error or "mock: the document could not be parsed",
                "CANCELLED": "mock: the job was cancelled",
            }.get(status),
            "created_at": stamp(job.created),
            "updated_at": stamp(time.time()),
        }

    def unauthorized(request: Request) -> Any:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return _detail(401, "Invalid authentication credentials")
        return None

    async def deliver_webhooks(job: _Job) -> None:
        import httpx

        await asyncio.sleep(config.job_seconds)
        status = await settle(job)
        if status not in ("COMPLETED", "FAILED", "CANCELLED"):
            return
        event = {"COMPLETED": "parse.success", "FAILED": "parse.error", "CANCELLED": "parse.cancelled"}[
            status
        ]
        async with httpx.AsyncClient(timeout=10) as client:
            for hook in job.webhooks:
                if hook.get("webhook_events") and event not in hook["webhook_events"]:
                    continue
                try:
                    await client.post(
                        hook["webhook_url"],
                        headers=hook.get("webhook_headers") or {},
                        json={"event_type": event, "data": {"job_id": job.id, "status": status}},
                    )
                except httpx.HTTPError as exc:
                    log.warning("webhook %s failed: %s", hook["webhook_url"], exc)

    def result_files(job: _Job) -> dict[str, tuple[bytes, str] | None]:
        """The result files of a completed job: name -> (bytes, content type), None when the
        mock does not produce it."""
        pages = job.pages or []
        md_full = "\n\n".join(p["markdown"] for p in pages)
        text_full = "\n\n".join(p["text"] for p in pages)
        dumps = lambda v: json.dumps(v).encode()
        files: dict[str, tuple[bytes, str] | None] = {
            "text": (text_full.encode(), "text/plain"),
            "text_full": (text_full.encode(), "text/plain"),
            "markdown": (md_full.encode(), "text/markdown"),
            "markdown_full": (md_full.encode(), "text/markdown"),
            "items": (dumps(items_of(job)), "application/json"),
            "metadata": (dumps(metadata_of(job)), "application/json"),
            "forms": (dumps(forms_of(job)), "application/json"),
            "raw_words": (
                dumps([{"page_number": p["page_number"], "words": p["text"].split()} for p in pages]),
                "application/json",
            ),
            "xlsx": None,
            "output_pdf": (job.path.read_bytes(), "application/pdf") if job.is_pdf else None,
        }
        return files

    def items_of(job: _Job) -> dict[str, Any]:
        return {
            "pages": [
                {
                    "page_number": p["page_number"],
                    "page_width": p["width"],
                    "page_height": p["height"],
                    "success": True,
                    "items": markdown_items(p["markdown"]),
                }
                for p in job.pages or []
            ]
        }

    def metadata_of(job: _Job) -> dict[str, Any]:
        pages = job.pages or []
        return {
            "pages": [
                {
                    "page_number": p["page_number"],
                    "confidence": 1.0,
                    "cost_optimized": False,
                    "original_orientation_angle": 0,
                    "printed_page_number": str(p["page_number"]),
                    "triggered_auto_mode": False,
                }
                for p in pages
            ],
            "document": {
                "confidence": 1.0,
                "confidence_breakdown": {
                    "min_page_score": 1.0,
                    "scored_pages": len(pages),
                    "total_pages": len(pages),
                },
            },
        }

    def forms_of(job: _Job) -> dict[str, Any]:
        return {
            "pages": [
                {"page_number": p["page_number"], "success": True, "forms": [], "detected_form_types": None}
                for p in job.pages or []
            ]
        }

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_mock/stats")
    async def stats() -> dict[str, Any]:
        return {
            **ledger.stats(),
            "jobs": {
                j.id: {"fate": j.fate, "status": status_of(j), "filename": j.filename, "tier": j.tier}
                for j in jobs.values()
            },
        }

    @app.get("/_mock/results/{job_id}/{name}")
    async def download(job_id: str, name: str) -> Any:
        job = jobs.get(job_id)
        if job is None or job.pages is None:
            return _detail(404, "Result not found. Check job status to see if it has completed.")
        found = result_files(job).get(name)
        if found is None:
            return _detail(404, "Result not found. Check job status to see if it has completed.")
        return Response(found[0], media_type=found[1])

    async def unserved(request: Request, exc: Exception) -> Any:
        """A path or method the mock does not serve (Starlette's 404 and 405)."""
        return not_implemented(request.method, request.url.path)

    app.add_exception_handler(StarletteHTTPException, unserved)

    @app.get("/api/v2/parse/versions")  # before /api/v2/parse/{job_id}, which would take it
    async def versions() -> Any:
        return not_implemented("GET", "/api/v2/parse/versions")

    @app.api_route("/api/v1/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def v1(rest: str) -> Any:
        return _detail(
            404,
            "This mock speaks LlamaParse's Parse API v2 only (/api/v2/parse/upload, /api/v2/parse/{job_id}); "
            "the v1 routes of llama-parse and llama-cloud-services are not served: use the llama-cloud SDK.",
        )

    @app.post("/api/v2/parse/upload")
    async def upload(request: Request) -> Any:
        if (denied := unauthorized(request)) is not None:
            return denied
        form = await request.form()
        upload_file = form.get("file")
        if upload_file is None or isinstance(upload_file, str):
            return _detail(400, "file field is required for multipart requests.")
        if not upload_file.filename:
            return _detail(400, "File must have a filename.")
        try:
            configuration = json.loads(str(form.get("configuration") or "{}"))
        except ValueError as exc:
            return _detail(400, f"Invalid JSON in configuration: {exc}")
        if not isinstance(configuration, dict):
            return _detail(400, "Invalid JSON in configuration: not an object")
        tier = configuration.get("tier")
        if tier not in TIERS:
            msg = (
                "Field required"
                if tier is None
                else f"Unsupported tier: {tier}. Must be one of: {', '.join(TIERS)}"
            )
            kind = "missing" if tier is None else "value_error"
            return JSONResponse(
                {"detail": [{"type": kind, "loc": ["tier"], "msg": msg, "input": configuration}]},
                status_code=422,
            )
        data = await upload_file.read()
        if not data:
            return _detail(400, "Uploaded file is empty.")
        job_id = f"pjb-{uuid.uuid4().hex}"
        path = workdir / job_id
        path.write_bytes(data)
        draw = rng.random()
        fate = "COMPLETED"
        for name, rate in (
            ("NEVER", config.never_finish_rate),
            ("FAILED", config.fail_rate),
            ("CANCELLED", config.cancel_rate),
        ):
            if draw < rate:
                fate = name
                break
            draw -= rate
        job = _Job(
            job_id,
            path,
            upload_file.filename,
            time.time(),
            fate,
            tier,
            str(configuration.get("version") or "latest"),
            list(configuration.get("webhook_configurations") or []),
        )
        jobs[job_id] = job
        if job.webhooks:
            task = asyncio.create_task(deliver_webhooks(job))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return job_object(job, "PENDING")

    @app.get("/api/v2/parse/{job_id}")
    async def get_job(job_id: str, request: Request) -> Any:
        if (denied := unauthorized(request)) is not None:
            return denied
        job = jobs.get(job_id)
        if job is None:
            return _detail(404, "Parse job not found")
        expand = expand_values(request.query_params.getlist("expand"))
        if not isinstance(expand, set):
            return expand
        if job.tier == "fast" and expand & NOT_ON_FAST:
            return _detail(400, "Markdown expansion is not available for FAST tier jobs.")
        status = await settle(job)
        out: dict[str, Any] = {"job": job_object(job, status)}
        if status != "COMPLETED" or not expand:
            return out
        pages = job.pages or []
        if "usage" in expand:
            out["job"]["usage"] = {"credits": float(TIERS[job.tier] * len(pages))}
        if "text" in expand:
            out["text"] = {"pages": [{"page_number": p["page_number"], "text": p["text"]} for p in pages]}
        if "text_full" in expand:
            out["text_full"] = "\n\n".join(p["text"] for p in pages)
        if "markdown" in expand:
            out["markdown"] = {
                "pages": [
                    {
                        "page_number": p["page_number"],
                        "markdown": p["markdown"],
                        "success": True,
                        "header": "",
                        "footer": "",
                    }
                    for p in pages
                ]
            }
        if "markdown_full" in expand:
            out["markdown_full"] = "\n\n".join(p["markdown"] for p in pages)
        if "items" in expand:
            out["items"] = items_of(job)
        if "metadata" in expand:
            out["metadata"] = metadata_of(job)
        if "forms" in expand:
            out["forms"] = forms_of(job)
        if "job_metadata" in expand:
            out["job_metadata"] = {
                "job_pages": len(pages),
                "job_auto_mode_triggered_pages": 0,
                "job_is_cache_hit": False,
                "tier": job.tier,
                "version": job.version,
                "credits_used": float(TIERS[job.tier] * len(pages)),
                "duration_seconds": config.job_seconds,
            }
        if "images_content_metadata" in expand:
            out["images_content_metadata"] = {"images": [], "total_count": 0}
        wanted = [n for n in CONTENT_METADATA if f"{n}_content_metadata" in expand]
        if wanted:
            files = result_files(job)
            base = str(request.base_url).rstrip("/")
            meta: dict[str, Any] = {}
            for name in wanted:
                found = files[name]
                meta[name] = (
                    {
                        "size_bytes": len(found[0]),
                        "exists": True,
                        "presigned_url": f"{base}/_mock/results/{job.id}/{name}",
                    }
                    if found is not None
                    else {"size_bytes": 0, "exists": False, "presigned_url": None}
                )
            out["result_content_metadata"] = meta
        return out

    return app
