"""Job error messages never reveal server paths (they are answered to API users)."""

from __future__ import annotations

import io
import os
import re
import types
from pathlib import Path
from uuid import uuid4

import pytest

from docingest.domain import JobControl
from docingest.errors import DocumentCorrupt, InternalError, classify, register_private_root, scrub_paths
from docingest.providers.parsing import parse_file
from docingest.providers.storage.local import LocalStorage
from docingest.stages.parse import ParseDocument

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("DOCINGEST_CORPUS", REPO.parent / "shared" / "corpus")).resolve() / "docs"
_PATH = re.compile(r"(^|[\s'\"(])/\w")


class _Ctx:
    def __init__(self, document: object) -> None:
        self.job = types.SimpleNamespace(control=JobControl(detected_kind="docx"))
        self.document = document

    def check(self) -> None:
        pass

    def save_progress(self, progress: object, persist: object = None, *, control: object = None) -> None:
        pass


@pytest.mark.shared_corpus
def test_a_truncated_docx_through_the_parse_stage_names_no_server_path(tmp_path: Path) -> None:
    data = (CORPUS / "docx/mvcc-intro.docx").read_bytes()
    storage = LocalStorage(tmp_path / ".docingest" / "storage" / "documents")
    key = f"apiuser/raw/{uuid4()}.docx"
    storage.put_stream(key, io.BytesIO(data[: len(data) // 3]))
    doc = types.SimpleNamespace(raw_path=key, filename="report.docx", document_id=uuid4())
    with pytest.raises(Exception) as caught:
        ParseDocument(storage, parse_file).run(_Ctx(doc))  # type: ignore[arg-type]
    error = classify(caught.value)  # what the worker stores on the job
    assert isinstance(error, DocumentCorrupt), error
    assert error.error_code == "document_corrupt"
    assert not _PATH.search(error.message), error.message
    assert str(tmp_path) not in error.message and "apiuser/raw" not in error.message
    assert "re-save it" in error.message


def test_scrub_paths_replaces_server_paths_and_keeps_urls_and_mime_types(tmp_path: Path) -> None:
    register_private_root("/srv/docingest-data")
    text = scrub_paths("Package not found at '/srv/docingest-data/storage/u/raw/x.docx'")
    assert text == "Package not found at '<file>'"
    assert scrub_paths("open /var/lib/x/y.pdf: no") == "open <file>: no"
    kept = "declared application/pdf; see http://127.0.0.1:8000/storage/v1/object/x; GET /api/parsing/job"
    assert scrub_paths(kept) == kept
    assert "/tmp/" not in InternalError(f"OSError: [Errno 2] {tmp_path}/a/b.pdf").message


def test_a_relative_data_dir_is_scrubbed_too() -> None:
    register_private_root(Path("./.docingest-test-rel"))
    assert scrub_paths("at './.docingest-test-rel/storage/k.docx'") == "at '<file>'"
    assert scrub_paths("the data was lost") == "the data was lost"


def test_classify_scrubs_a_message_set_after_construction() -> None:
    err = DocumentCorrupt("x")
    err.message = "cannot read /home/someone/.docingest/providers/storage/k.docx"
    assert classify(err).message == "cannot read <file>"
