"""Unit tests of the EPUB, RTF, e-mail (.eml) and Outlook (.msg) parsers, on files the tests
write (``tests/fixtures/formats/books_mail.py``) and damaged variants of them."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from docingest.errors import ArchiveTooLarge, DocumentCorrupt, DocumentEncrypted
from docingest.providers.chunking.chunker import headings
from docingest.providers.parsing import ParseOptions, detect, parse_file, parser_for
from docingest.providers.parsing.epub import EpubParser
from docingest.providers.parsing.mail import EmlParser, MsgParser
from docingest.providers.parsing.rtf import RtfParser
from docingest.providers.parsing.sandbox import ParseLimits, SandboxedParser
from tests.fixtures.formats import FormatSample, books_mail
from tests.fixtures.formats.books_mail import (
    EML_ATTACHMENT_TEXT,
    EML_SUBJECT,
    EPUB_CHAPTERS,
    MSG_ATTACHMENT_TEXT,
    MSG_SUBJECT,
    RTF_TITLE,
    MsgAttachment,
    MsgContent,
    eml_message,
    write_eml,
    write_epub,
    write_msg,
    write_rtf,
)

SAMPLES = [books_mail.sample_epub, books_mail.sample_rtf, books_mail.sample_eml, books_mail.sample_msg]


def heading_path_at(markdown: str, offset: int) -> list[str]:
    """The ATX headings enclosing ``offset``, outermost first (as the chunker builds them)."""
    path: list[tuple[int, str]] = []
    for start, level, title in headings(markdown):
        if start > offset:
            break
        path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, title)]
    return [title for _level, title in path]


@pytest.mark.parametrize("make", SAMPLES, ids=lambda f: f.__name__)
def test_sample_is_detected_and_holds_its_sentences_under_their_headings(make, tmp_path: Path) -> None:
    sample: FormatSample = make(tmp_path)
    detected = detect(sample.path)
    assert (detected.kind, detected.mime) == (sample.kind, sample.mime)
    parsed = parse_file(sample.path, sample.kind)
    assert parsed.kind == sample.kind
    assert parsed.pages == []
    assert parsed.warnings == []
    assert len(sample.expects) >= 3
    for expect in sample.expects:
        offset = parsed.markdown.find(expect.sentence)
        assert offset >= 0, f"{expect.sentence!r} not in {parsed.markdown!r}"
        if expect.heading is not None:
            assert expect.heading in heading_path_at(parsed.markdown, offset)


@pytest.mark.parametrize("make", [books_mail.sample_eml, books_mail.sample_msg], ids=lambda f: f.__name__)
def test_attachments_come_back_from_the_bounded_child(make, tmp_path: Path) -> None:
    sample: FormatSample = make(tmp_path)
    parser = SandboxedParser(ParseLimits(timeout_seconds=60, memory_mb=512))
    try:
        parsed = parser(sample.path, sample.kind)
    finally:
        parser.close()
    assert parsed.attachments == parse_file(sample.path, sample.kind).attachments
    assert len(parsed.attachments) == 1 and parsed.attachments[0].data


def test_parser_classes_are_registered_under_their_kinds() -> None:
    assert isinstance(parser_for("epub"), EpubParser)
    assert isinstance(parser_for("rtf"), RtfParser)
    assert isinstance(parser_for("eml"), EmlParser)
    assert isinstance(parser_for("msg"), MsgParser)


# ---------------------------------------------------------------------------------------- EPUB


def test_epub_chapters_come_in_spine_order_without_the_table_of_contents(tmp_path: Path) -> None:
    parsed = EpubParser().parse(write_epub(tmp_path / "book.epub"))
    titles = [title for _offset, _level, title in headings(parsed.markdown)]
    assert titles == [heading for _name, heading, _paragraphs in EPUB_CHAPTERS]  # each once: no nav
    assert parsed.metadata["Title"] == books_mail.EPUB_TITLE
    assert parsed.metadata["Author"] == books_mail.EPUB_AUTHOR
    assert parsed.metadata["Language"] == "en"


def test_epub_chapter_without_a_heading_gets_its_title_from_the_table_of_contents(tmp_path: Path) -> None:
    parsed = EpubParser().parse(write_epub(tmp_path / "book.epub", headings=False))
    titles = [title for _offset, _level, title in headings(parsed.markdown)]
    assert titles == [heading for _name, heading, _paragraphs in EPUB_CHAPTERS]
    offset = parsed.markdown.index(EPUB_CHAPTERS[1][2][0])
    assert heading_path_at(parsed.markdown, offset) == ["Knots and Rigging"]


def test_epub_missing_chapter_is_skipped_with_a_warning(tmp_path: Path) -> None:
    parsed = EpubParser().parse(write_epub(tmp_path / "book.epub", drop=["rigging.xhtml"]))
    assert len(parsed.warnings) == 1
    assert "rigging.xhtml" in parsed.warnings[0] and "missing" in parsed.warnings[0]
    assert "chapter 2" in parsed.warnings[0]
    assert "Knots and Rigging" not in parsed.markdown
    for _name, heading, paragraphs in (EPUB_CHAPTERS[0], EPUB_CHAPTERS[2]):
        assert f"# {heading}" in parsed.markdown
        assert all(p in parsed.markdown for p in paragraphs)


def test_epub_with_a_damaged_table_of_contents_keeps_its_chapters_with_a_warning(tmp_path: Path) -> None:
    path = write_epub(tmp_path / "book.epub")
    with zipfile.ZipFile(path) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in members:
            zf.writestr(
                info,
                b"<html><body><p>no nav here</p></body></html>"
                if info.filename.endswith("nav.xhtml")
                else data,
            )
    parsed = EpubParser().parse(path)
    assert len(parsed.warnings) == 1 and "table of contents is damaged" in parsed.warnings[0]
    for _name, heading, paragraphs in EPUB_CHAPTERS:
        assert f"# {heading}" in parsed.markdown
        assert all(p in parsed.markdown for p in paragraphs)


def test_epub_with_an_empty_container_is_document_corrupt(tmp_path: Path) -> None:
    path = write_epub(tmp_path / "book.epub")
    with zipfile.ZipFile(path) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in members:
            zf.writestr(info, b"" if info.filename == "META-INF/container.xml" else data)
    with pytest.raises(DocumentCorrupt, match="EPUB is damaged"):
        EpubParser().parse(path)


def test_truncated_epub_is_document_corrupt(tmp_path: Path) -> None:
    data = write_epub(tmp_path / "book.epub").read_bytes()
    cut = tmp_path / "cut.epub"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DocumentCorrupt, match="truncated"):
        EpubParser().parse(cut)


def test_epub_without_package_document_is_document_corrupt_without_server_path(tmp_path: Path) -> None:
    path = tmp_path / "book.epub"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/epub+zip")
        zf.writestr("META-INF/container.xml", "<container/>")
    with pytest.raises(DocumentCorrupt) as caught:
        EpubParser().parse(path)
    assert str(tmp_path) not in str(caught.value)


def test_epub_over_the_unpacked_limit_is_archive_too_large(tmp_path: Path) -> None:
    path = write_epub(tmp_path / "book.epub")
    with pytest.raises(ArchiveTooLarge):
        EpubParser().parse(path, ParseOptions(max_unpacked_bytes=1000))


def test_epub_with_encrypted_chapters_is_document_encrypted(tmp_path: Path) -> None:
    path = write_epub(tmp_path / "book.epub")
    encryption = (
        '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
        '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
        '<enc:CipherData><enc:CipherReference URI="EPUB/tides.xhtml"/></enc:CipherData>'
        "</enc:EncryptedData></encryption>"
    )
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("META-INF/encryption.xml", encryption)
    with pytest.raises(DocumentEncrypted, match="DRM"):
        EpubParser().parse(path)


def test_epub_with_obfuscated_fonts_only_is_read(tmp_path: Path) -> None:
    path = write_epub(tmp_path / "book.epub")
    encryption = (
        '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
        '<enc:EncryptionMethod Algorithm="http://www.idpf.org/2008/embedding"/>'
        '<enc:CipherData><enc:CipherReference URI="EPUB/font.otf"/></enc:CipherData>'
        "</enc:EncryptedData></encryption>"
    )
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("META-INF/encryption.xml", encryption)
    assert "# Tides and Currents" in EpubParser().parse(path).markdown


# ----------------------------------------------------------------------------------------- RTF


def test_rtf_headings_levels_code_page_and_info_metadata(tmp_path: Path) -> None:
    parsed = RtfParser().parse(write_rtf(tmp_path / "guide.rtf"))
    assert [(level, title) for _o, level, title in headings(parsed.markdown)] == [
        (1, RTF_TITLE),
        (2, "Winter Voicing"),
        (2, "Summer Regulation"),
    ]
    assert "The café concert used the Flemish double manual — tuned a semitone low." in parsed.markdown
    assert "\n\nTrim each quill plectrum" in parsed.markdown  # paragraphs separated by a blank line
    assert "heading 1" not in parsed.markdown and "Times New Roman" not in parsed.markdown
    assert parsed.metadata == {
        "Title": RTF_TITLE,
        "Author": "Aurélie Marchand",
        "CreationDate": "2024-03-14T09:30:00",
        "Encoding": "cp1252",
    }


def test_rtf_heading_marked_by_outline_level_only(tmp_path: Path) -> None:
    path = tmp_path / "outline.rtf"
    path.write_bytes(
        b"{\\rtf1\\ansi{\\fonttbl{\\f0 Arial;}}\\pard\\outlinelevel2\\b Soil Chemistry\\b0\\par"
        b"\\pard Lime raises the pH of acid clay.\\par}"
    )
    parsed = RtfParser().parse(path)
    assert parsed.markdown == "### Soil Chemistry\n\nLime raises the pH of acid clay."


def test_rtf_ansi_code_page_and_surrogate_pairs(tmp_path: Path) -> None:
    path = tmp_path / "cyrillic.rtf"
    # \ansicpg1251: \'cf\'f0\'e8\'e2\'e5\'f2 is "Привет"; \u-10179?\u-8704? is U+1F600.
    path.write_bytes(
        b"{\\rtf1\\ansi\\ansicpg1251{\\fonttbl{\\f0\\fcharset204 Arial;}}\\f0 "
        b"\\'cf\\'f0\\'e8\\'e2\\'e5\\'f2 \\u-10179?\\u-8704?\\par}"
    )
    parsed = RtfParser().parse(path)
    assert parsed.markdown == "Привет \U0001f600"
    assert parsed.metadata["Encoding"] == "cp1251"


def test_truncated_rtf_keeps_its_text_with_a_warning(tmp_path: Path) -> None:
    data = write_rtf(tmp_path / "guide.rtf").read_bytes()
    cut = tmp_path / "cut.rtf"
    cut.write_bytes(data[: data.index(b"Summer Regulation")])
    parsed = RtfParser().parse(cut)
    assert "Trim each quill plectrum with a sharp blade" in parsed.markdown
    assert len(parsed.warnings) == 1 and "not closed" in parsed.warnings[0]


def test_malformed_rtf_of_binary_bytes_is_document_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "binary.rtf"
    path.write_bytes(b"{\\rtf1\\ansi " + os.urandom(4096) + b"}")
    with pytest.raises(DocumentCorrupt, match="control bytes"):
        RtfParser().parse(path)


def test_file_that_is_not_rtf_is_document_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "plain.rtf"
    path.write_bytes(b"just text, no RTF header")
    with pytest.raises(DocumentCorrupt, match="not RTF"):
        RtfParser().parse(path)


# ----------------------------------------------------------------------------------------- EML


def test_eml_headers_body_and_attachment(tmp_path: Path) -> None:
    parsed = EmlParser().parse(write_eml(tmp_path / "m.eml"))
    assert parsed.markdown.startswith(f"# {EML_SUBJECT}\n\nFrom: Bartholomew Ashdown <bart@apiary.example>\n")
    assert parsed.metadata == {
        "Title": EML_SUBJECT,
        "Subject": EML_SUBJECT,
        "From": "Bartholomew Ashdown <bart@apiary.example>",
        "To": "Cooperative <members@apiary.example>, Ines Duarte <ines@apiary.example>",
        "Cc": "treasurer@apiary.example",
        "Date": "2024-05-06T18:30:00+00:00",
        "MessageId": "<meeting-2024-q2@apiary.example>",
    }
    size = len(EML_ATTACHMENT_TEXT.encode())
    assert f"## Attachments\n\n- hive-inventory.txt (text/plain, {size} bytes)" in parsed.markdown
    assert [(a.filename, a.mime, a.data) for a in parsed.attachments] == [
        ("hive-inventory.txt", "text/plain", EML_ATTACHMENT_TEXT.encode())
    ]
    assert "Blackmoor stage" not in parsed.markdown  # the attachment's text is its own document


def test_eml_plain_body_is_preferred_over_html(tmp_path: Path) -> None:
    message = eml_message(html="<p>The HTML version of the invitation.</p>")
    parsed = EmlParser().parse(write_eml(tmp_path / "m.eml", message))
    assert "Cello section rehearsals" in parsed.markdown
    assert "HTML version" not in parsed.markdown


def test_eml_html_only_body_is_converted(tmp_path: Path) -> None:
    message = eml_message(
        body=None, html="<html><body><h2>Agenda</h2><p>Swarm <b>control</b> talk.</p></body></html>"
    )
    parsed = EmlParser().parse(write_eml(tmp_path / "m.eml", message))
    assert "## Agenda\n\nSwarm **control** talk." in parsed.markdown
    assert "<p>" not in parsed.markdown


def test_eml_with_only_an_attachment(tmp_path: Path) -> None:
    message = eml_message(body=None, attachments=[("plan.pdf", "application/pdf", b"%PDF-1.4 plan")])
    parsed = EmlParser().parse(write_eml(tmp_path / "m.eml", message))
    assert parsed.markdown.startswith(f"# {EML_SUBJECT}")
    assert "- plan.pdf (application/pdf, 13 bytes)" in parsed.markdown
    assert [(a.filename, a.mime, a.data) for a in parsed.attachments] == [
        ("plan.pdf", "application/pdf", b"%PDF-1.4 plan")
    ]
    assert parsed.warnings == []


def test_eml_whose_whole_body_is_one_file_returns_it_as_the_attachment(tmp_path: Path) -> None:
    raw = (
        b"From: a@example.org\r\nSubject: Scan\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/pdf; name=scan.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"JVBERi0xLjQgc2Nhbg==\r\n"
    )
    path = tmp_path / "m.eml"
    path.write_bytes(raw)
    parsed = EmlParser().parse(path)
    assert [(a.filename, a.mime, a.data) for a in parsed.attachments] == [
        ("scan.pdf", "application/pdf", b"%PDF-1.4 scan")
    ]
    assert (
        parsed.markdown
        == "# Scan\n\nFrom: a@example.org\n\n## Attachments\n\n- scan.pdf (application/pdf, 13 bytes)"
    )


def test_eml_nested_message_is_rendered_a_level_down_with_its_attachments(tmp_path: Path) -> None:
    inner = eml_message(
        subject="Minutes of the March meeting",
        body="The swarm season starts early this year.",
        attachments=[("minutes.csv", "text/csv", b"item,owner\nframes,Ines\n")],
    )
    message = eml_message(body="Forwarding the minutes.")
    message.add_attachment(inner)
    parsed = EmlParser().parse(write_eml(tmp_path / "m.eml", message))
    offset = parsed.markdown.index("The swarm season starts early this year.")
    assert heading_path_at(parsed.markdown, offset) == [
        EML_SUBJECT,
        "Attached message: Minutes of the March meeting",
    ]
    assert [a.filename for a in parsed.attachments] == ["minutes.csv"]


def test_eml_every_text_part_is_read_in_order_and_one_form_of_each_alternative(tmp_path: Path) -> None:
    raw = (
        b"From: a@example.org\r\nSubject: Two notes\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="OUT"\r\n\r\n'
        b"--OUT\r\nContent-Type: text/plain\r\n\r\nThe first note.\r\n"
        b'--OUT\r\nContent-Type: multipart/alternative; boundary="ALT"\r\n\r\n'
        b"--ALT\r\nContent-Type: text/plain\r\n\r\nThe second note, in plain text.\r\n"
        b"--ALT\r\nContent-Type: text/html\r\n\r\n<p>The second note, in HTML.</p>\r\n"
        b"--ALT--\r\n"
        b"--OUT\r\nContent-Type: text/plain\r\n\r\nThe list footer.\r\n"
        b"--OUT--\r\n"
    )
    path = tmp_path / "m.eml"
    path.write_bytes(raw)
    parsed = EmlParser().parse(path)
    body = parsed.markdown.split("From: a@example.org\n\n", 1)[1]
    assert body == "The first note.\n\nThe second note, in plain text.\n\nThe list footer."
    assert parsed.attachments == []


def test_eml_inline_image_of_html_body_is_not_an_attachment(tmp_path: Path) -> None:
    message = eml_message(body=None, html='<p>Our new logo: <img src="cid:logo" alt="bee logo"></p>')
    message.add_related(b"\x89PNG\r\n\x1a\nfake", maintype="image", subtype="png", cid="<logo>")
    parsed = EmlParser().parse(write_eml(tmp_path / "m.eml", message))
    assert "Our new logo: bee logo" in parsed.markdown
    assert parsed.attachments == []


def test_eml_encoded_headers_and_legacy_charset_body(tmp_path: Path) -> None:
    raw = (
        b"From: =?utf-8?q?Jos=C3=A9_Pe=C3=B1a?= <jose@example.org>\r\n"
        b"Subject: =?iso-8859-1?q?R=E9union_du_comit=E9?=\r\n"
        b"Date: not a date\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        b"La r\xe9union aura lieu mardi.\r\n"
    )
    path = tmp_path / "m.eml"
    path.write_bytes(raw)
    parsed = EmlParser().parse(path)
    assert parsed.metadata["Subject"] == "Réunion du comité"
    assert parsed.metadata["From"] == "José Peña <jose@example.org>"
    assert parsed.metadata["Date"] == "not a date"  # kept as written when it does not parse
    assert "La réunion aura lieu mardi." in parsed.markdown


def test_eml_with_a_damaged_mime_structure_is_read_with_a_warning(tmp_path: Path) -> None:
    raw = (
        b"From: a@example.org\r\nSubject: Cut short\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="XYZ"\r\n\r\n'
        b"--XYZ\r\nContent-Type: text/plain\r\n\r\nThe text before the cut survives.\r\n"
    )
    path = tmp_path / "m.eml"
    path.write_bytes(raw)
    parsed = EmlParser().parse(path)
    assert "The text before the cut survives." in parsed.markdown
    assert len(parsed.warnings) == 1 and "damaged" in parsed.warnings[0]


# ----------------------------------------------------------------------------------------- MSG


def test_msg_headers_body_and_attachment(tmp_path: Path) -> None:
    parsed = MsgParser().parse(write_msg(tmp_path / "m.msg"))
    assert parsed.markdown.startswith(
        f"# {MSG_SUBJECT}\n\nFrom: Helga Lindqvist <helga@observatory.example>\n"
    )
    assert parsed.metadata == {
        "Title": MSG_SUBJECT,
        "Subject": MSG_SUBJECT,
        "From": "Helga Lindqvist <helga@observatory.example>",
        "To": "Chidi Okonkwo <chidi@observatory.example>",
        "Cc": "Night Desk <desk@observatory.example>",
        "Date": "2024-11-12T08:15:00+00:00",
        "MessageId": "<booking-4711@observatory.example>",
    }
    assert "\r" not in parsed.markdown
    assert [(a.filename, a.mime, a.data) for a in parsed.attachments] == [
        ("observing-plan.txt", "text/plain", MSG_ATTACHMENT_TEXT)
    ]
    assert "- observing-plan.txt (text/plain," in parsed.markdown


def test_msg_with_only_an_attachment(tmp_path: Path) -> None:
    content = MsgContent(
        body=None, attachments=[MsgAttachment("chart.pdf", "application/pdf", b"%PDF-1.4 sky")]
    )
    parsed = MsgParser().parse(write_msg(tmp_path / "m.msg", content))
    assert parsed.markdown.startswith(f"# {MSG_SUBJECT}")
    assert [(a.filename, a.mime, a.data) for a in parsed.attachments] == [
        ("chart.pdf", "application/pdf", b"%PDF-1.4 sky")
    ]


def test_msg_html_body_is_converted_when_there_is_no_plain_one(tmp_path: Path) -> None:
    content = MsgContent(
        body=None, html=b"<html><body><h2>Schedule</h2><p>Open <b>dome</b> at dusk.</p></body></html>"
    )
    parsed = MsgParser().parse(write_msg(tmp_path / "m.msg", content))
    assert "## Schedule\n\nOpen **dome** at dusk." in parsed.markdown
    assert "<p>" not in parsed.markdown


def test_msg_embedded_message_is_rendered_a_level_down_with_its_attachments(tmp_path: Path) -> None:
    inner = MsgContent(
        subject="Dome repair quote",
        body="The dome shutter repair costs nine hundred euros.",
        attachments=[MsgAttachment("quote.txt", "text/plain", b"Quote: 900 EUR for the shutter motor.")],
    )
    content = MsgContent(
        body="Forwarding the quote.", attachments=[MsgAttachment("Dome repair quote", "", message=inner)]
    )
    parsed = MsgParser().parse(write_msg(tmp_path / "m.msg", content))
    offset = parsed.markdown.index("The dome shutter repair costs nine hundred euros.")
    assert heading_path_at(parsed.markdown, offset) == [MSG_SUBJECT, "Attached message: Dome repair quote"]
    assert "### Attachments\n\n- quote.txt (text/plain, 37 bytes)" in parsed.markdown
    assert [(a.filename, a.data) for a in parsed.attachments] == [
        ("quote.txt", b"Quote: 900 EUR for the shutter motor.")
    ]


@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_truncated_msg_is_document_corrupt_without_server_path(keep: float, tmp_path: Path) -> None:
    data = write_msg(tmp_path / "m.msg").read_bytes()
    cut = tmp_path / "cut.msg"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DocumentCorrupt, match="Outlook message") as caught:
        MsgParser().parse(cut)
    assert str(tmp_path) not in str(caught.value)


def test_an_attachment_whose_base64_does_not_decode_is_left_out_with_a_warning(tmp_path: Path) -> None:
    """email hands back an undecodable part's raw base64 as its bytes: never ingested as text."""
    message = eml_message(attachments=[("scan.png", "image/png", bytes(range(256)) * 40)])
    data = bytes(message)
    start = data.index(b"Content-Transfer-Encoding: base64")
    end = data.index(b"\n\n", start) + 2
    damaged = (
        data[:end] + b"iVBORw0KGgoAAAANSUhEUgAAA\n--" + data.rsplit(b"--", 2)[-2].split(b"\n")[-1] + b"--\n"
    )
    path = tmp_path / "cut.eml"
    path.write_bytes(damaged)
    parsed = EmlParser().parse(path)
    assert parsed.attachments == []
    assert any("scan.png" in w and "does not decode" in w for w in parsed.warnings)
