"""The documentation shipped in the repository stands on its own and names real settings.

A user who clones docingest has only ``docs/`` and ``src/``: nothing there may send them to
the team's shared folder or its design notes, and every ``UPLOAD_PIPELINE_<FIELD>`` that
``docs/architecture.md`` names must be a field of :class:`docingest.settings.Settings`.
"""

from __future__ import annotations

import re
from pathlib import Path

from docingest.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
#: Pointers to material a clone of the repository does not have.
FORBIDDEN = re.compile(r"\.\./shared|/work/shared|DESIGN\.md|DESIGN §")
# A full variable name: the prefix, then a name ending in a letter or digit (so a bare
# ``UPLOAD_PIPELINE_`` or ``UPLOAD_PIPELINE_*`` is not a field name).
SETTING = re.compile(r"\bUPLOAD_PIPELINE_([A-Z][A-Z0-9_]*[A-Z0-9])\b")


def _text_files(*dirs: str) -> list[Path]:
    files = []
    for name in dirs:
        for path in sorted((ROOT / name).rglob("*")):
            # not what an install generates beside the sources (egg-info holds the README)
            if path.is_file() and not any(p == "__pycache__" or p.endswith(".egg-info") for p in path.parts):
                files.append(path)
    return files


def pointers_outside_repository(paths: list[Path], root: Path = ROOT) -> list[str]:
    """``"file:line: text"`` (file relative to ``root``) of each line of ``paths`` matching
    :data:`FORBIDDEN`."""
    found = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary files (none today) cannot point a reader anywhere
        for number, line in enumerate(text.splitlines(), start=1):
            if FORBIDDEN.search(line):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def unknown_settings(text: str) -> set[str]:
    """The ``UPLOAD_PIPELINE_<FIELD>`` names in ``text`` whose field ``Settings`` lacks."""
    fields = set(Settings.model_fields)
    return {f"UPLOAD_PIPELINE_{name}" for name in SETTING.findall(text) if name.lower() not in fields}


def test_src_and_docs_point_nowhere_outside_the_repository() -> None:
    files = _text_files("src", "docs")
    assert ARCHITECTURE in files
    assert pointers_outside_repository(files) == []


def test_the_check_finds_a_pointer(tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text("intro\nsee ../shared/DESIGN.md section 2\n", encoding="utf-8")
    assert pointers_outside_repository([note], tmp_path) == ["note.md:2: see ../shared/DESIGN.md section 2"]


def test_architecture_names_only_existing_settings() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    named = set(SETTING.findall(text))
    assert {"DATABASE_URL", "DATA_DIR", "LEASE_SECONDS", "MAX_RETRIES"} <= named
    assert unknown_settings(text) == set()


def test_an_unknown_setting_is_reported() -> None:
    text = "set UPLOAD_PIPELINE_LEASE_SECONDS and UPLOAD_PIPELINE_LEASE_MINUTES; UPLOAD_PIPELINE_* all"
    assert unknown_settings(text) == {"UPLOAD_PIPELINE_LEASE_MINUTES"}


#: A module path in backquotes with at least one folder, e.g. ``providers/storage/base.py``.
MODULE_PATH = re.compile(r"`((?:[a-z_]+/)+[a-z_]+\.py)`")


def missing_module_paths(text: str) -> set[str]:
    """Module paths ``text`` names that exist under none of ``src/docingest``, ``src`` and the
    repository root."""
    return {
        p
        for p in MODULE_PATH.findall(text)
        if not any((base / p).is_file() for base in (ROOT / "src" / "docingest", ROOT / "src", ROOT))
    }


def test_the_docs_name_only_existing_modules() -> None:
    assert len(MODULE_PATH.findall(ARCHITECTURE.read_text(encoding="utf-8"))) > 20
    for doc in (ARCHITECTURE, ROOT / "docs" / "api.md", ROOT / "README.md"):
        assert missing_module_paths(doc.read_text(encoding="utf-8")) == set(), doc.name


def test_a_moved_module_is_reported() -> None:
    assert missing_module_paths("see `storage/service.py` and `api/routes/storage.py`") == {
        "storage/service.py"
    }
