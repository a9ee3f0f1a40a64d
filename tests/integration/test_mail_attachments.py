"""The files attached to an e-mail become documents of their own (issue 19): linked to the
message (``meta.attached_to``, a source under the message's), queued and ingested like any
file, registered once however often the message's parse runs, and deleted with the message."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from docingest.providers.parsing.mail import EmlParser
from docingest.runtime import Runtime
from docingest.services.ingest import ingest
from docingest.services.sync import sync
from docingest.stages.attachments import prepare_attachments, register_attachments
from tests.fixtures import pipeline
from tests.fixtures.formats.books_mail import eml_message, write_eml
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration

INVENTORY = b"Hive inventory: the heather apiary on Blackmoor Ridge holds twelve colonies.\n"
ROTA = b"# Extraction rota\n\nInes runs the honey extractor on the first Saturday of August.\n"
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"


def _message(path: Path, body: str = "The cooperative meets on the ninth.") -> Path:
    message = eml_message(
        body=body,
        attachments=[
            ("hive-inventory.txt", "text/plain", INVENTORY),
            ("logo.gif", "image/gif", GIF),
            ("rota.md", "text/markdown", ROTA),
        ],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_eml(path, message)


def _attached(rt: Runtime, message_id: UUID) -> list[dict[str, Any]]:
    return rows(
        rt,
        "SELECT document_id, filename, mime, source, origin, meta, raw_path, user_id"
        " FROM upload_pipeline.documents WHERE meta->>'attached_to' = %s ORDER BY source",
        (str(message_id),),
    )


def test_attachments_become_documents_linked_to_the_message_and_are_searchable(
    runtime: Runtime, tmp_path: Path
) -> None:
    registered = runtime.documents.register_file(
        _message(tmp_path / "mail" / "meeting.eml"),
        user_id="bea",
        source="mail/meeting.eml",
        meta={"team": "bees"},
    )
    message_id = registered.document.document_id
    jobs = pipeline.run_until_terminal(runtime, [message_id])
    assert jobs[message_id]["state"] == "done"

    attached = _attached(runtime, message_id)
    assert [(a["filename"], a["mime"], a["source"], a["origin"]) for a in attached] == [
        (
            "hive-inventory.txt",
            "text/plain",
            "mail/meeting.eml/attachments/1/hive-inventory.txt",
            "attachment",
        ),
        ("rota.md", "text/markdown", "mail/meeting.eml/attachments/3/rota.md", "attachment"),
    ]
    assert all(a["user_id"] == "bea" for a in attached)
    assert all(a["meta"] == {"team": "bees", "attached_to": str(message_id)} for a in attached)

    events = pipeline.events(runtime, registered.job.job_id)  # type: ignore[union-attr]
    registered_event = [e for e in events if e["type"] == "attachments_registered"]
    assert len(registered_event) == 1
    assert [a["filename"] for a in registered_event[0]["payload"]["attachments"]] == [
        "hive-inventory.txt",
        "rota.md",
    ]
    warnings = [e["payload"]["message"] for e in events if e["type"] == "warning"]
    assert any("logo.gif" in w and "not ingested" in w for w in warnings)

    ids = [a["document_id"] for a in attached]
    done = pipeline.run_until_terminal(runtime, ids)
    assert {j["state"] for j in done.values()} == {"done"}
    hits = runtime.searcher().search("who runs the honey extractor in August", user_id="bea", k=3)
    assert hits[0].document_id == str(attached[1]["document_id"])
    assert hits[0].heading_path == ["Extraction rota"]


def test_the_same_message_under_a_second_source_gets_its_own_linked_attachments(
    runtime: Runtime, tmp_path: Path
) -> None:
    """Identical bytes usually reuse the first document's chunks; a message is parsed again, so
    its copy's attachments are registered and linked to the copy."""
    path = _message(tmp_path / "mail" / "meeting.eml")
    first = runtime.documents.register_file(path, user_id="bea", source="mail/meeting.eml")
    second = runtime.documents.register_file(path, user_id="bea", source="archive/meeting.eml")
    ids = [first.document.document_id, second.document.document_id]
    jobs = pipeline.run_until_terminal(runtime, ids)
    assert {j["state"] for j in jobs.values()} == {"done"}
    events = pipeline.events(runtime, second.job.job_id)  # type: ignore[union-attr]
    assert not any(e["type"] == "chunks_reused" for e in events)
    assert [a["source"] for a in _attached(runtime, second.document.document_id)] == [
        "archive/meeting.eml/attachments/1/hive-inventory.txt",
        "archive/meeting.eml/attachments/3/rota.md",
    ]
    assert len(_attached(runtime, first.document.document_id)) == 2


def test_a_parse_run_again_registers_each_attachment_once(runtime: Runtime, tmp_path: Path) -> None:
    registered = runtime.documents.register_file(_message(tmp_path / "m.eml"), user_id="bea")
    message = registered.document
    parsed = EmlParser().parse(tmp_path / "m.eml")
    created: list[list[bool]] = []
    for _attempt in range(2):  # a parse retried after its first attempt committed nothing visible
        warnings: list[str] = []
        prepared = prepare_attachments(runtime.storage, message, parsed.attachments, warnings)
        with runtime.pool().connection() as conn, conn.transaction():
            answer, unused = register_attachments(conn, runtime.repo, message, prepared)
        created.append([row["created"] for row in answer])
        assert unused == []
    assert created == [[True, True], [False, False]]
    attached = _attached(runtime, message.document_id)
    assert len(attached) == 2
    jobs = rows(
        runtime,
        "SELECT count(*) AS n FROM upload_pipeline.upload_jobs WHERE document_id = ANY(%s)",
        ([a["document_id"] for a in attached],),
    )
    assert jobs[0]["n"] == 2


def test_deleting_the_message_deletes_its_attachments_and_their_objects(
    runtime: Runtime, tmp_path: Path
) -> None:
    registered = runtime.documents.register_file(_message(tmp_path / "m.eml"), user_id="bea")
    message_id = registered.document.document_id
    pipeline.run_until_terminal(runtime, [message_id])
    attached = _attached(runtime, message_id)
    assert len(attached) == 2
    assert all(runtime.storage.head(a["raw_path"]) is not None for a in attached)

    runtime.documents.delete("bea", message_id)
    assert _attached(runtime, message_id) == []
    assert rows(runtime, "SELECT count(*) AS n FROM upload_pipeline.documents")[0]["n"] == 0
    assert all(runtime.storage.head(a["raw_path"]) is None for a in attached)


def test_a_new_version_of_the_message_keeps_the_unchanged_attachment(
    runtime: Runtime, tmp_path: Path
) -> None:
    path = _message(tmp_path / "m.eml")
    first = runtime.documents.register_file(path, user_id="bea", source="m.eml")
    pipeline.run_until_terminal(runtime, [first.document.document_id])
    before = {a["source"]: a["document_id"] for a in _attached(runtime, first.document.document_id)}

    _message(path, body="The cooperative meets on the tenth instead.")
    second = runtime.documents.register_file(path, user_id="bea", source="m.eml")
    assert second.created
    pipeline.run_until_terminal(runtime, [second.document.document_id])

    after = {a["source"]: a["document_id"] for a in _attached(runtime, second.document.document_id)}
    assert after == before  # the same bytes under the same sources: the same documents
    assert _attached(runtime, first.document.document_id) == []
    remaining = rows(runtime, "SELECT document_id FROM upload_pipeline.documents ORDER BY document_id")
    assert {r["document_id"] for r in remaining} == {second.document.document_id, *before.values()}


def test_ingest_of_a_message_waits_for_its_attachments(runtime: Runtime, tmp_path: Path) -> None:
    _message(tmp_path / "inbox" / "meeting.eml")
    summary = ingest(runtime, [tmp_path / "inbox"], user_id="bea", poll_seconds=0.1)
    assert (summary.documents, summary.new, summary.attachments, summary.complete) == (3, 1, 2, 3)
    assert summary.failed == 0
    sources = rows(
        runtime,
        "SELECT d.source, j.state FROM upload_pipeline.documents d"
        " JOIN upload_pipeline.upload_jobs j USING (document_id) ORDER BY d.source",
    )
    assert sources == [
        {"source": "meeting.eml", "state": "done"},
        {"source": "meeting.eml/attachments/1/hive-inventory.txt", "state": "done"},
        {"source": "meeting.eml/attachments/3/rota.md", "state": "done"},
    ]


def test_sync_keeps_attachments_while_the_message_is_there_and_deletes_them_with_it(
    runtime: Runtime, tmp_path: Path
) -> None:
    path = _message(tmp_path / "inbox" / "meeting.eml")
    sync(runtime, [tmp_path / "inbox"], user_id="bea", poll_seconds=0.1)
    assert rows(runtime, "SELECT count(*) AS n FROM upload_pipeline.documents")[0]["n"] == 3

    again = sync(runtime, [tmp_path / "inbox"], user_id="bea", poll_seconds=0.1)
    assert (again.unchanged, again.deleted) == (1, 0)  # attachments are no files of the folder
    assert rows(runtime, "SELECT count(*) AS n FROM upload_pipeline.documents")[0]["n"] == 3

    path.unlink()
    gone = sync(runtime, [tmp_path / "inbox"], user_id="bea", poll_seconds=0.1)
    assert gone.deleted == 1
    assert rows(runtime, "SELECT count(*) AS n FROM upload_pipeline.documents")[0]["n"] == 0
