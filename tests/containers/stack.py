"""A compose project of this repository's ``compose.yaml`` run by podman and podman-compose.

Used by the container tests: podman's settings come from ``containers.conf`` beside this file
(``CONTAINERS_CONF``), every podman-compose call names the project and the test's env file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
#: The image the smoke test builds (DOCINGEST_IMAGE in its env file).
IMAGE = "localhost/docingest:smoke"
#: Debian's packages the tests need, by the command each provides.
TOOLS = {
    "podman": "podman",
    "runc": "runc",
    "debootstrap": "debootstrap",
    "netavark": "netavark",
}


def missing_tools() -> list[str]:
    """Debian packages to install for the container tests (empty when all are there)."""
    missing = [package for command, package in TOOLS.items() if not _found(command)]
    if not Path(sys.executable).with_name("podman-compose").exists() and not shutil.which("podman-compose"):
        missing.append("podman-compose (pip install -e '.[dev]')")
    return missing


def _found(command: str) -> bool:
    return bool(shutil.which(command)) or Path("/usr/lib/podman", command).exists()


def podman_env() -> dict[str, str]:
    """The environment podman runs in: this folder's containers.conf."""
    return dict(os.environ, CONTAINERS_CONF=str(HERE / "containers.conf"))


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS``; its output captured as text."""
    return subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, check=check, timeout=timeout
    )


class Stack:
    """``podman-compose -p PROJECT --env-file ENV_FILE`` on the repository's compose.yaml."""

    def __init__(self, project: str, env_file: Path, env: dict[str, str]) -> None:
        self.project = project
        self.env_file = env_file
        self.env = env
        env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
        found = Path(sys.executable).with_name("podman-compose")
        self._compose = str(found) if found.exists() else "podman-compose"

    def compose(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run ``podman-compose ... ARGS`` in the repository."""
        done = subprocess.run(
            [self._compose, "-p", self.project, "--env-file", str(self.env_file), *args],
            check=False,
            cwd=REPO,
            env=podman_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"podman-compose {' '.join(args)}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def containers(self, service: str | None = None, *, all_states: bool = False) -> list[str]:
        """Names of this project's containers (of ``service``), running ones unless ``all_states``."""
        filters = ["--filter", f"label=io.podman.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        out = podman("ps", *(["-a"] if all_states else []), *filters, "--format", "{{.Names}}").stdout
        return sorted(out.split())

    def hostname(self, container: str) -> str:
        """The container's host name (what a worker's id starts with)."""
        return str(json.loads(podman("inspect", container).stdout)[0]["Config"]["Hostname"])

    def healthy(self, container: str) -> bool:
        """Run the container's compose health check once (podman 4.3 runs none by itself
        without systemd): True when it passes."""
        return podman("healthcheck", "run", container, check=False, timeout=60).returncode == 0

    def psql(self, sql: str) -> list[list[str]]:
        """Rows of ``sql`` run by psql in the db container, as lists of strings."""
        db = self.containers("db")[0]
        out = podman(
            "exec", db, "psql", "-U", self.env["POSTGRES_USER"], "-d", self.env["POSTGRES_DB"],
            "-AtF", "\t", "-c", sql,
        ).stdout  # fmt: skip
        return [line.split("\t") for line in out.splitlines() if line]

    def logs(self) -> str:
        """The last lines of every container's log, for a failure's message."""
        parts = []
        for name in self.containers(all_states=True):
            done = podman("logs", "--tail", "40", name, check=False)
            parts.append(f"--- {name}\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
        return "\n".join(parts)


def wait_for(what: str, condition: Callable[[], bool], *, timeout: float, interval: float = 1.0) -> None:
    """Poll ``condition`` until it is true; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
