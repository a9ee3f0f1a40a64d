"""The API's ``/openapi.json`` is the truth: the ``schemathesis`` CLI, run against ``docingest
serve`` and a worker on loopback with a valid bearer token, finds no failure in any phase
(examples, coverage, fuzzing, stateful) under every check, and its stateful phase follows the
document's links (``POST /upload`` -> ``GET /documents/{document_id}`` ... with ids that exist).

It replaces the hypothesis loop over each operation's strategy this module held: the CLI's
``not_a_server_error`` check covers it, for positive and negative inputs alike, with the
response-schema, status-code and the other checks on top.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from docingest.settings import Settings
from tests.e2e.client import token
from tests.e2e.conftest import SECRET, running_api

pytestmark = pytest.mark.e2e
# Each run explores other inputs; the output names its seed, and SCHEMATHESIS_SEED=N replays one.
# Every check schemathesis 4.32 has but ``max_response_time`` (it needs a limit).
RAN = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
    "object_level_authorization",
}

# What the CLI is told beyond ``--checks`` (every check is on; nothing here turns one off for
# the whole API).
CONFIG = """
[checks]
enabled = true

# Inputs per operation in the examples and fuzzing phases; the coverage phase runs every case it
# derives from the schema (most of the run's cases), the stateful phase has its own count below.
[generation]
max-examples = 10

# The stateful phase walks the links from valid requests (negative inputs are the coverage
# and fuzzing phases' part), in scenarios of up to 20 steps (default 6), so every run follows
# them from documents that exist, several times (4-10 GET /documents/{id} 200 per run here).
[phases.stateful]
max-steps = 20

[phases.stateful.generation]
mode = "positive"
max-examples = 25

# A body over UPLOAD_PIPELINE_MAX_FILE_BYTES (the schema's maximum of bytes_len) is refused
# 413 file_too_large, the documented status, which the check's default list lacks.
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5xx"]

# ensure_resource_availability takes the job at /upload/{job_id}/complete for a sub-resource of
# POST /upload (its path is under /upload) and does not know that DELETE /documents/{id}, a
# link it follows, deletes the document's jobs: the 404 that follows is the truth. The check
# stays on for every other operation (GET /documents/{id}, GET /jobs/{id} ...).
[[operations]]
include-name = "POST /api/v2/upload/{job_id}/complete"
checks.ensure_resource_availability.enabled = false
"""


@pytest.fixture(scope="module")
def fuzzed_api(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """An API + worker whose fuzzing user is never refused 429 (so the stateful phase gets ids)
    and whose event streams end after 0.25 s (a waiting document's would run until it expires)."""
    with running_api(
        pg_url,
        tmp_path_factory.mktemp("schemathesis"),
        max_active_jobs_per_user=100_000,
        sse_max_seconds=0.25,
    ) as stack:
        yield stack


def _recorders(report: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(phase, recorder)`` of every scenario in the NDJSON report (its cases, their
    interactions and the checks run on them)."""
    for line in report.read_text(encoding="utf-8").splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if finished:
            yield finished["phase"], finished.get("recorder") or {}


def _scenario_cases(report: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """``(case, interaction)`` of every stateful step in the NDJSON report."""
    for phase, recorder in _recorders(report):
        if phase != "stateful":
            continue
        interactions = recorder.get("interactions") or {}
        for case_id, case in (recorder.get("cases") or {}).items():
            yield case, interactions.get(case_id)


def test_schemathesis_finds_no_failure_and_follows_the_links(
    fuzzed_api: tuple[str, Settings], tmp_path: Path
) -> None:
    base, _ = fuzzed_api
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG, encoding="utf-8")
    bearer = token(SECRET, "fuzzer", ttl_seconds=3600)
    cli = Path(sys.executable).with_name("schemathesis")
    proc = subprocess.run(
        [
            str(cli),
            "--config-file",
            str(config),
            "run",
            f"{base}/openapi.json",
            "--header",
            f"Authorization: Bearer {bearer}",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--request-timeout",
            "20",
            "--generation-database",
            "none",
            *(["--seed", os.environ["SCHEMATHESIS_SEED"]] if os.environ.get("SCHEMATHESIS_SEED") else []),
            "--report",
            "ndjson,junit",
            "--report-dir",
            str(tmp_path),
            "--no-color",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-12000:]
    operations = sum(len(methods) for methods in httpx.get(f"{base}/openapi.json").json()["paths"].values())
    assert f"{operations} selected / {operations} total" in out, out[-4000:]
    [report] = tmp_path.glob("ndjson-*.ndjson")

    statuses: Counter[int] = Counter()
    checks: set[str] = set()
    for _, recorder in _recorders(report):
        for interaction in (recorder.get("interactions") or {}).values():
            statuses[int((interaction.get("response") or {}).get("status_code") or 0)] += 1
        for results in (recorder.get("checks") or {}).values():
            checks |= {result["name"] for result in results}
    # Valid and invalid inputs both reached the API, and the checks that apply to it all ran.
    assert statuses[422] and sum(n for s, n in statuses.items() if 200 <= s < 300), statuses
    assert sum(statuses.values()) >= 10 * operations, statuses
    assert RAN <= checks, checks

    followed: Counter[tuple[str, int]] = Counter()
    for case, interaction in _scenario_cases(report):
        transition = case.get("transition")
        if not transition or transition.get("is_inferred") or interaction is None:
            continue
        response = interaction.get("response") or {}
        source, _, target = transition["id"].partition(" -> ")
        target = target.split(" -> ")[-1]
        followed[(f"{source} -> {target}", int(response.get("status_code") or 0))] += 1
    # The links are followed with ids the API made: a document just uploaded (or a job's) is
    # there (200), so is a job just made; retrying a job that waits for its bytes is a conflict
    # (409), as documented.
    document = "GET /api/v2/documents/{document_id}"
    to_documents = [
        n for (link, status), n in followed.items() if link.endswith(f"-> {document}") and status == 200
    ]
    assert sum(to_documents), followed
    assert any(link.startswith("POST /api/v2/upload -> ") and status == 200 for link, status in followed), (
        followed
    )
    reached = {link for link, status in followed if 200 <= status < 300 or status == 409}
    assert len(reached) >= 3, followed  # several of the links, not one
    print("links followed (link, status): count", dict(sorted(followed.items())))
    print("\n".join(line for line in out.splitlines() if "Scenarios:" in line or "API Links:" in line))
