"""Prometheus metrics of one docingest process (API or worker), and how they are served.

Names follow Prometheus conventions: the ``docingest_`` prefix, ``_total`` on
counters, base units in the name (``_seconds``, ``_bytes``). No label carries a
per-document, per-job or per-user value, so the number of series stays bounded
by stages x states x error codes x models.

| metric | type | labels | what |
|---|---|---|---|
| ``docingest_jobs`` | gauge (scrape time, from the database) | ``stage``, ``state`` | jobs per stage and state: queue depth |
| ``docingest_stage_duration_seconds`` | histogram | ``stage`` | a handler's successful run, by the stage it started from |
| ``docingest_stage_transitions_total`` | counter | ``stage`` | milestones reached (stage reached) |
| ``docingest_jobs_finished_total`` | counter | ``outcome`` (done, failed) | jobs that reached a terminal state |
| ``docingest_job_retries_total`` | counter | ``stage``, ``error_code`` | transient failures scheduled for retry |
| ``docingest_job_failures_total`` | counter | ``stage``, ``error_code`` | permanent failures (job failed) |
| ``docingest_lease_takeovers_total`` | counter | | expired leases this process took over |
| ``docingest_leases_lost_total`` | counter | | attempts of this process fenced out |
| ``docingest_embedding_requests_total`` | counter | ``model``, ``outcome`` (ok, error) | embedder calls by the embed stage |
| ``docingest_embedding_request_duration_seconds`` | histogram | ``model`` | one embedder call |
| ``docingest_embedding_chunks_total`` | counter | ``model`` | chunks embedded |
| ``docingest_embedding_tokens_total`` | counter | ``model`` | word pieces of the chunks embedded |
| ``docingest_embedding_cache_hits_total`` / ``_misses_total`` | counter | ``model`` | embedding cache (incremented by the cache) |
| ``docingest_parse_pages_total`` | counter | ``kind`` | pages parsed (PDF pages; 0 for page-less kinds) |
| ``docingest_parsed_documents_total`` | counter | ``kind`` | documents parsed |
| ``docingest_ocr_pages_total`` | counter | ``kind`` (pdf, image) | pages (PDF pages, image frames) read by OCR |
| ``docingest_ocr_seconds`` | histogram | ``kind`` | one page's OCR, rendering included |
| ``docingest_upload_bytes_total`` | counter | | bytes of uploaded originals verified at ``uploaded`` (every upload path passes there once) |

Serving: :func:`start_metrics_server` (``docingest worker --metrics-port N``) and
:func:`metrics_text`, which the API's ``GET /metrics`` route (``api/routes/health.py``) returns.
All metrics live in prometheus-client's default registry (``REGISTRY``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("docingest.observability.metrics")

# Stage handlers run from milliseconds (passthrough) to many minutes (embedding a 1,000-page PDF).
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
# One page's OCR: ~0.2 s (a few lines) to ~2 s (a dense page at 300 dpi), more on a busy machine.
OCR_BUCKETS = (0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 30, 60)
EMBED_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)

STAGE_DURATION = Histogram(
    "docingest_stage_duration_seconds",
    "Time a stage handler ran, by the stage it started from.",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
STAGE_TRANSITIONS = Counter(
    "docingest_stage_transitions_total", "Stage milestones reached, by the stage reached.", ["stage"]
)
JOBS_FINISHED = Counter(
    "docingest_jobs_finished_total", "Jobs that reached a terminal state (done or failed).", ["outcome"]
)
JOB_RETRIES = Counter(
    "docingest_job_retries_total", "Transient failures scheduled for a retry.", ["stage", "error_code"]
)
JOB_FAILURES = Counter(
    "docingest_job_failures_total", "Jobs failed for good, by stage and error code.", ["stage", "error_code"]
)
LEASE_TAKEOVERS = Counter(
    "docingest_lease_takeovers_total", "Jobs claimed from another worker whose lease had expired."
)
LEASES_LOST = Counter(
    "docingest_leases_lost_total", "Attempts of this process fenced out (their lease was taken)."
)
EMBED_REQUESTS = Counter(
    "docingest_embedding_requests_total", "Embedder calls made by the embedding stage.", ["model", "outcome"]
)
EMBED_DURATION = Histogram(
    "docingest_embedding_request_duration_seconds",
    "Duration of one embedder call.",
    ["model"],
    buckets=EMBED_BUCKETS,
)
EMBED_CHUNKS = Counter("docingest_embedding_chunks_total", "Chunks embedded.", ["model"])
EMBED_TOKENS = Counter(
    "docingest_embedding_tokens_total", "Word pieces (model tokens) of the chunks embedded.", ["model"]
)
EMBED_CACHE_HITS = Counter(
    "docingest_embedding_cache_hits_total", "Embeddings served from the embedding cache.", ["model"]
)
EMBED_CACHE_MISSES = Counter(
    "docingest_embedding_cache_misses_total", "Embeddings not found in the embedding cache.", ["model"]
)
PARSE_PAGES = Counter("docingest_parse_pages_total", "Pages parsed.", ["kind"])
PARSED_DOCUMENTS = Counter("docingest_parsed_documents_total", "Documents parsed.", ["kind"])
OCR_PAGES = Counter("docingest_ocr_pages_total", "Pages (PDF pages, image frames) read by OCR.", ["kind"])
OCR_SECONDS = Histogram(
    "docingest_ocr_seconds",
    "Wall time of one page's OCR, rendering included.",
    ["kind"],
    buckets=OCR_BUCKETS,
)
UPLOAD_BYTES = Counter(
    "docingest_upload_bytes_total", "Bytes of uploaded originals verified at the uploaded stage."
)
SCRAPE_ERRORS = Counter(
    "docingest_metrics_scrape_errors_total", "Scrapes whose database-backed metrics failed."
)


# --- helpers the worker and the stages call (one line at each call site) -------------
def stage_finished(from_stage: str, to_stage: str | None, seconds: float, *, terminal: str | None) -> None:
    """Record one handler run: its duration, the milestone reached, and a terminal outcome.

    Args:
        from_stage: the stage whose handler ran.
        to_stage: the stage reached, or None when the job was only rescheduled.
        seconds: the handler's wall time.
        terminal: ``"done"`` when the job finished, else None.
    """
    STAGE_DURATION.labels(stage=from_stage).observe(seconds)
    if to_stage is not None:
        STAGE_TRANSITIONS.labels(stage=to_stage).inc()
    if terminal:
        JOBS_FINISHED.labels(outcome=terminal).inc()


def job_error(stage: str, error_code: str, *, retry: bool) -> None:
    """Record a classified failure: a scheduled retry, or a failed job."""
    if retry:
        JOB_RETRIES.labels(stage=stage, error_code=error_code).inc()
    else:
        JOB_FAILURES.labels(stage=stage, error_code=error_code).inc()
        JOBS_FINISHED.labels(outcome="failed").inc()


def embedding_call(model: str, seconds: float, *, chunks: int, tokens: int, ok: bool = True) -> None:
    """Record one embedder call of ``chunks`` texts totalling ``tokens`` word pieces."""
    EMBED_REQUESTS.labels(model=model, outcome="ok" if ok else "error").inc()
    EMBED_DURATION.labels(model=model).observe(seconds)
    if ok:
        EMBED_CHUNKS.labels(model=model).inc(chunks)
        EMBED_TOKENS.labels(model=model).inc(tokens)


# --- queue depth, read from the database at scrape time ------------------------------
class JobsCollector(Collector):
    """``docingest_jobs{stage,state}`` from one ``GROUP BY`` query per scrape.

    Every (stage, state) pair seen is exported; pairs with no jobs are 0 only
    when they were seen before in this process. A failing database yields no
    sample and counts ``docingest_metrics_scrape_errors_total``.

    Args:
        count_jobs: returns ``[(stage, state, count)]`` (``Repository.job_counts`` on a pool).
    """

    def __init__(self, count_jobs: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        self.count_jobs = count_jobs
        self._seen: set[tuple[str, str]] = set()

    def describe(self) -> Iterable[Any]:
        yield GaugeMetricFamily(
            "docingest_jobs", "Jobs by stage and state (queue depth).", labels=["stage", "state"]
        )

    def collect(self) -> Iterable[Any]:
        family = GaugeMetricFamily(
            "docingest_jobs", "Jobs by stage and state (queue depth).", labels=["stage", "state"]
        )
        try:
            counts = {(stage, state): n for stage, state, n in self.count_jobs()}
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail on a database hiccup
            log.warning("docingest_jobs not collected: %s", exc)
            SCRAPE_ERRORS.inc()
            yield family
            return
        self._seen.update(counts)
        for key in sorted(self._seen):
            family.add_metric(list(key), counts.get(key, 0))
        yield family


_collector: JobsCollector | None = None


def register_jobs_collector(count_jobs: Callable[[], Iterable[tuple[str, str, int]]]) -> JobsCollector:
    """Export ``docingest_jobs`` from ``count_jobs`` (``[(stage, state, jobs)]``, read at each
    scrape; once per process, later calls rebind)."""
    global _collector

    if _collector is None:
        _collector = JobsCollector(count_jobs)
        REGISTRY.register(_collector)
    else:
        _collector.count_jobs = count_jobs
    return _collector


# --- serving --------------------------------------------------------------------------
def start_metrics_server(
    port: int, addr: str = "127.0.0.1", count_jobs: Callable[[], Iterable[tuple[str, str, int]]] | None = None
) -> Any:
    """Serve ``/metrics`` from a daemon thread (``docingest worker --metrics-port``).

    Returns the ``(server, thread)`` pair of prometheus-client; ``server.server_port``
    is the bound port (useful with ``port=0``).

    Raises:
        OSError: when the port is taken.
    """
    from prometheus_client import start_http_server

    if count_jobs is not None:
        register_jobs_collector(count_jobs)
    return start_http_server(port, addr=addr)


def metrics_text() -> tuple[bytes, str]:
    """``(body, content_type)`` of the Prometheus text exposition of this process."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
