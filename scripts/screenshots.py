"""Write the dashboard's screenshots to docs/screenshots/ (or the directory given).

Runs the browser tests that visit every page at 1280x800 and 390x844
(``tests/e2e/browser/test_dashboard_accessibility.py``) with ``DOCINGEST_SCREENSHOT_DIR`` set:
each page as ``<page>-<width>x<height>.png``. Needs what those tests need: Chromium
(``apt-get install chromium``), node and npm (axe-core). Usage, from the checkout::

    python scripts/screenshots.py [DIRECTORY]

Exits with pytest's status.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = "tests/e2e/browser/test_dashboard_accessibility.py"


def main(argv: list[str]) -> int:
    target = Path(argv[0]).resolve() if argv else REPO / "docs" / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DOCINGEST_SCREENSHOT_DIR": str(target)}
    paths = [str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", TESTS, "-n", "0", "-q", "-p", "no:cacheprovider", "-m", "e2e"],
        cwd=REPO,
        env=env,
        check=False,
    )
    shots = sorted(target.glob("*.png"))
    print(f"{len(shots)} screenshots in {target}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
