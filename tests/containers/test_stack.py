"""The compose stack, really built and started: ``Dockerfile`` and ``compose.yaml`` under podman.

No container registry is reachable on CI's machines, so ``standins.sh`` first builds local
stand-ins for the two base images (Debian bookworm with Python 3.11 for the Dockerfile's
``FROM``; trixie's PostgreSQL 17 with pgvector for ``pgvector/pgvector:pg17``); then the image
is built (without the local model: the hashing embedder keeps the test to minutes) and the
stack started with two workers. Documents go in through the API's two-step upload with a bearer
token (the PUT to the storage service's published port), complete on both workers, are
searched; a worker container is killed while it holds a job, which the other one finishes once
the lease expires; ``down -v`` removes it all.

podman 4.3 (Debian bookworm's) ignores ``depends_on: condition: service_healthy`` and runs no
health check by itself without systemd, so the fixture starts the services in compose.yaml's
dependency order with ``--no-deps`` and runs each service's own health check
(``podman healthcheck run``) where compose would wait for it.

CI runs this module as its own step (``pytest -m containers``); ``DOCINGEST_SKIP_CONTAINERS=1``
is the only way to skip it (the step then says so), never a missing tool: that fails, naming
the Debian package to install.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from docingest.api.auth import mint_token
from tests.containers.stack import HERE, IMAGE, REPO, Stack, missing_tools, podman, wait_for

pytestmark = pytest.mark.containers

USER = "smoke"
#: Lease and heartbeat of the stack's workers: short, so a killed worker's job is taken over soon.
LEASE_SECONDS = 6
#: One sentence per document, each found first by its own words.
SENTENCES = [
    "The lighthouse keeper trims the wick of the lamp every evening.",
    "Beekeepers smoke the hive gently before lifting the frames.",
    "A glacier advances when winter snowfall exceeds summer melting.",
    "The cartographer inked coastlines with a crow quill pen.",
    "Sourdough starter needs flour and water fed twice a day.",
    "Violin varnish is brushed on in many thin layers.",
    "Tidal pools hold anemones, limpets and small crabs at low tide.",
    "The clockmaker oiled each pivot of the escapement wheel.",
    "Falconers fly their birds to a lure swung on a long cord.",
    "Terraced rice fields follow the contour lines of the hills.",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack up: stand-ins, the image, db and storage healthy, migrations applied, the API
    healthy and two workers started; taken down (with its volumes) at the end."""
    missing = missing_tools()
    assert not missing, (
        f"the container tests need {', '.join(missing)}: apt-get install podman runc netavark "
        "aardvark-dns debootstrap (as .ci/run does), or DOCINGEST_SKIP_CONTAINERS=1 to skip them"
    )
    subprocess.run(["bash", str(HERE / "standins.sh")], check=True, timeout=1200)
    podman(
        "build", "--network", "host", "--format", "docker", "--build-arg", "LOCAL_MODEL=false",
        "--build-arg", "TORCH_INDEX_URL=", "--tag", IMAGE, str(REPO), timeout=1800,
    )  # fmt: skip
    api_port, storage_port = _free_port(), _free_port()
    stack = Stack(
        f"docingest-smoke-{uuid.uuid4().hex[:6]}",
        tmp_path_factory.mktemp("stack") / "smoke.env",
        {
            "POSTGRES_USER": "docingest",
            "POSTGRES_DB": "docingest",
            "POSTGRES_PASSWORD": secrets.token_hex(16),
            "UPLOAD_PIPELINE_JWT_SECRET": secrets.token_hex(32),
            "DOCINGEST_IMAGE": IMAGE,
            "API_PORT": str(api_port),
            "STORAGE_PORT": str(storage_port),
            "STORAGE_PUBLIC_URL": f"http://127.0.0.1:{storage_port}/storage/v1",
            "UPLOAD_PIPELINE_EMBEDDING_PROVIDER": "hashing",
            "UPLOAD_PIPELINE_LEASE_SECONDS": str(LEASE_SECONDS),
            "UPLOAD_PIPELINE_HEARTBEAT_SECONDS": "2",
        },
    )
    stack.api = f"http://127.0.0.1:{api_port}/api/v2"  # type: ignore[attr-defined]
    try:
        stack.compose("up", "-d", "--no-deps", "db", "storage")
        for service in ("db", "storage"):
            (container,) = stack.containers(service)
            wait_for(f"{service} healthy", lambda c=container: stack.healthy(c), timeout=120)
        stack.compose("up", "--no-deps", "migrate")
        (migrate,) = stack.containers("migrate", all_states=True)
        assert podman("inspect", "--format", "{{.State.ExitCode}}", migrate).stdout.strip() == "0"
        stack.compose("up", "-d", "--no-deps", "--scale", "worker=2", "api", "worker")
        (api,) = stack.containers("api")
        wait_for("api healthy", lambda: stack.healthy(api), timeout=120)
        for worker in stack.containers("worker"):
            wait_for(f"{worker} healthy", lambda w=worker: stack.healthy(w), timeout=120)
    except BaseException:
        print(stack.logs())
        stack.compose("down", "-v", "--remove-orphans", check=False)
        raise
    yield stack
    if stack.containers(all_states=True):  # test_down_removes_the_stack did not run or failed
        stack.compose("down", "-v", "--remove-orphans", check=False)


def _client(stack: Stack) -> httpx.Client:
    token = mint_token(stack.env["UPLOAD_PIPELINE_JWT_SECRET"], user_id=USER)
    return httpx.Client(base_url=stack.api, headers={"authorization": f"Bearer {token}"}, timeout=60)  # type: ignore[attr-defined]


def _upload(api: httpx.Client, source: str, body: bytes) -> str:
    """The API's two-step upload of ``body`` as Markdown: the job's id."""
    reply = api.post(
        "/upload",
        json={
            "filename": Path(source).name,
            "bytes_len": len(body),
            "mime": "text/markdown",
            "sha256": hashlib.sha256(body).hexdigest(),
            "source": source,
        },
    )
    assert reply.status_code == 201, reply.text
    ticket = reply.json()
    put = httpx.put(ticket["signed_url"], content=body, headers=ticket["upload_headers"], timeout=120)
    assert put.status_code == 200, put.text
    done = api.post(f"/upload/{ticket['job_id']}/complete")
    assert done.status_code == 200, done.text
    return str(ticket["job_id"])


def _wait_done(api: httpx.Client, job_ids: list[str], timeout: float) -> None:
    def all_done() -> bool:
        states = [api.get(f"/jobs/{job_id}").json() for job_id in job_ids]
        failed = [s for s in states if s["state"] == "failed"]
        assert not failed, failed
        return all(s["state"] == "done" for s in states)

    wait_for(f"{len(job_ids)} jobs done", all_done, timeout=timeout)


def _workers_of(stack: Stack, job_ids: list[str]) -> set[str]:
    """The workers (ids ``host:pid:tag``) whose stage_completed events these jobs have."""
    ids = ",".join(f"'{job_id}'" for job_id in job_ids)
    rows = stack.psql(
        "SELECT DISTINCT payload->>'worker' FROM upload_pipeline.events "
        f"WHERE type = 'stage_completed' AND job_id IN ({ids})"
    )
    return {row[0] for row in rows}


def test_uploads_through_the_api_complete_on_both_workers_and_are_searchable(stack: Stack) -> None:
    workers = {stack.hostname(name) for name in stack.containers("worker")}
    assert len(workers) == 2
    with _client(stack) as api:
        jobs = [
            _upload(api, f"smoke/{n:02d}.md", f"# Note {n}\n\n{sentence}\n".encode())
            for n, sentence in enumerate(SENTENCES * 2)  # 20 documents, two of each text
        ]
        _wait_done(api, jobs, timeout=180)
        hosts = {worker.split(":")[0] for worker in _workers_of(stack, jobs)}
        assert hosts == workers, f"jobs ran on {hosts}, the workers are {workers}"
        for sentence in SENTENCES:
            hits = api.get("/search", params={"q": sentence, "k": 2}).json()["results"]
            assert [hit["text"].splitlines()[-1] for hit in hits] == [sentence, sentence]


def test_the_dashboards_page_may_put_to_the_signed_urls(stack: Stack) -> None:
    """The dashboard (on the API's origin) PUTs to the storage service's signed URLs, another
    origin: its preflight must be allowed by the stack's default CORS origins."""
    origin = stack.api.removesuffix("/api/v2")  # type: ignore[attr-defined]
    body = b"# Preflight\n\nA page on the API's origin uploads to the storage service.\n"
    with _client(stack) as api:
        reply = api.post(
            "/upload",
            json={
                "filename": "preflight.md",
                "bytes_len": len(body),
                "mime": "text/markdown",
                "sha256": hashlib.sha256(body).hexdigest(),
            },
        )
        assert reply.status_code == 201, reply.text
        preflight = httpx.options(
            reply.json()["signed_url"],
            headers={
                "origin": origin,
                "access-control-request-method": "PUT",
                "access-control-request-headers": "content-type,x-upsert",
            },
        )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == origin


def test_a_killed_workers_job_is_finished_by_the_other(stack: Stack) -> None:
    # A document long enough to be held for seconds (chunked, embedded, stored in batches).
    body = "".join(
        f"## Section {n}\n\n"
        + " ".join(f"paragraph {n} word{k} of the long smoke document." for k in range(60))
        + "\n\n"
        for n in range(3000)
    ).encode()
    with _client(stack) as api:
        job_id = _upload(api, "smoke/long.md", body)
        holder: list[str] = []

        def claimed() -> bool:
            rows = stack.psql(
                f"SELECT claimed_by FROM upload_pipeline.upload_jobs WHERE job_id = '{job_id}' "
                "AND state = 'working' AND stage <> 'uploaded'"
            )
            holder[:] = [row[0] for row in rows if row[0]]
            return bool(holder)

        wait_for("the long document's job claimed", claimed, timeout=60, interval=0.2)
        host = holder[0].split(":")[0]
        (victim,) = [name for name in stack.containers("worker") if stack.hostname(name) == host]
        (survivor,) = [name for name in stack.containers("worker") if name != victim]
        podman("kill", "--signal", "KILL", victim)
        podman("stop", "--time", "0", victim, check=False)  # keep its restart policy from reviving it
        started = time.monotonic()
        _wait_done(api, [job_id], timeout=300)
        took_over = stack.psql(
            "SELECT count(*) FROM upload_pipeline.events "
            f"WHERE job_id = '{job_id}' AND type = 'lease_taken_over'"
        )
        assert int(took_over[0][0]) >= 1
        last = stack.psql(
            "SELECT payload->>'worker' FROM upload_pipeline.events "
            f"WHERE job_id = '{job_id}' AND type = 'stage_completed' ORDER BY event_id DESC LIMIT 1"
        )
        assert last[0][0].split(":")[0] == stack.hostname(survivor)
        assert (
            time.monotonic() - started >= LEASE_SECONDS / 2
        )  # finished after a takeover, not before the kill
        hits = api.get("/search", params={"q": "paragraph 2999 word59 of the long smoke document"}).json()
        assert hits["results"] and hits["results"][0]["source"] == "smoke/long.md"


def test_down_removes_the_stack(stack: Stack) -> None:
    # A worker stops on SIGTERM, releasing what it holds, well within its grace period: exit 0,
    # not podman's SIGKILL after the timeout (137).
    (worker, *_) = stack.containers("worker")
    podman("stop", "--time", "30", worker)
    assert podman("inspect", "--format", "{{.State.ExitCode}}", worker).stdout.strip() == "0"
    # --remove-orphans: podman-compose's down knows one container a service (worker_1) unless
    # told the scale again; the project's label finds the others (docker compose needs neither).
    stack.compose("down", "-v", "--remove-orphans")
    assert stack.containers(all_states=True) == []
    volumes = podman("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert not [v for v in volumes if v.startswith(stack.project)], volumes
