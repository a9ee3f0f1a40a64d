"""The npm packages the e2e tests run (``tests/e2e/node``: ``@supabase/storage-js`` under node,
``axe-core`` injected into the dashboard's pages), at the versions its lockfile pins."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"


def pinned_version(name: str) -> str:
    """The version ``tests/e2e/node/package.json`` pins for the package ``name``."""
    return str(json.loads((NODE_DIR / "package.json").read_text())["dependencies"][name])


def installed_version(name: str) -> str | None:
    """The version of ``name`` under ``tests/e2e/node/node_modules``, or None."""
    try:
        return str(json.loads((NODE_DIR / "node_modules" / name / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def pinned_package(name: str) -> Path:
    """The directory of the npm package ``name`` at its pinned version, installed with
    ``npm ci`` when it is missing or another version. xdist's workers share the folder: one
    installs under a file lock, the others wait for it.

    Fails the calling test (never skips it) when npm is not on PATH, naming the Debian packages.
    """
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail(
            "these tests need node and npm on PATH: `apt-get install nodejs npm` (Debian), as .ci/run does"
        )
    want = pinned_version(name)
    with (Path(tempfile.gettempdir()) / "docingest-npm-ci.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_version(name) != want:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    assert installed_version(name) == want, f"{name} {installed_version(name)} installed, {want} pinned"
    return NODE_DIR / "node_modules" / name
