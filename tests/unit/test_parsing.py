"""Unit tests for docingest.providers.parsing: sniffing, the PDF, DOCX, HTML, Markdown and text
parsers, the registry (the parsers of the other kinds: tests/unit/test_parse_*.py, test_ocr.py).

Uses the read-only corpus in shared/corpus/docs (PostgreSQL manual pages as HTML
and DOCX, LaTeX manuals as PDF) plus small files made here: PDFs are written by
hand (including RC4-encrypted ones, so no pikepdf is needed), DOCX with python-docx.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import random
import re
import shutil
import struct
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docx
import pypdfium2 as pdfium
import pytest

from docingest.errors import (
    DocumentCorrupt,
    DocumentEncrypted,
    EmptyFile,
    PdfCorrupt,
    PdfEncrypted,
    UnsupportedType,
)
from docingest.providers.parsing import (
    KINDS,
    PARSER_CLASSES,
    DetectedType,
    detect,
    is_declared_compatible,
    parse_file,
    parser_for,
)
from docingest.providers.parsing.base import PAGE_SEPARATOR
from docingest.providers.parsing.decoding import MAX_GARBLED_SHARE, decode_text, garbled_share
from docingest.providers.parsing.docx import DocxParser
from docingest.providers.parsing.pdf import PdfParser
from docingest.providers.parsing.sniff import IMAGE_TYPES, JSONL_TYPE, SNIFF_BYTES, TSV_TYPE, TYPES, XLSM_TYPE
from tests.unit.test_pdf_headings import assert_marked_only

REPO = Path(__file__).resolve().parents[2]
# Same convention as tests/conftest.py: DOCINGEST_CORPUS is the corpus root (holding docs/).
CORPUS = Path(os.environ.get("DOCINGEST_CORPUS", REPO.parent / "shared" / "corpus")).resolve() / "docs"

EXPECTED_KIND = {"pdf": "pdf", "docx": "docx", "html": "html", "md": "markdown", "txt": "text"}
# MPL-2.0.txt is written with setext (=== / ---) headings: by content it IS Markdown.
KIND_OVERRIDES = {"MPL-2.0.txt": "markdown"}


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*/*") if p.is_file())


@pytest.mark.shared_corpus
def test_corpus_is_present() -> None:
    # No silent skips: without the corpus the tests below must fail, not vanish.
    assert {p.parent.name for p in corpus_files()} == set(EXPECTED_KIND), f"corpus missing at {CORPUS}"


def copy_as(src: Path, tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name
    shutil.copyfile(src, dst)
    return dst


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- PDFs made by hand

_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def make_pdf(pages: list[list[str]], *, user_pw: str | None = None, owner_pw: str = "owner") -> bytes:
    """A PDF with one page per item (each a list of text lines; [] = blank page).

    With ``user_pw`` set (``''`` for owner-password-only), it is encrypted with the
    standard security handler, RC4 128-bit (V 2, R 3), per PDF 1.7 algorithms 2, 3, 5.
    """
    file_id = hashlib.md5(b"docingest-test").digest()
    key = b""
    encrypt_dict = b""
    if user_pw is not None:
        n, perms = 16, -4

        def pad(pw: str) -> bytes:
            return (pw.encode("latin-1") + _PAD)[:32]

        okey = hashlib.md5(pad(owner_pw)).digest()
        for _ in range(50):
            okey = hashlib.md5(okey[:n]).digest()
        o = pad(user_pw)
        for i in range(20):
            o = _rc4(bytes(b ^ i for b in okey[:n]), o)
        key = hashlib.md5(pad(user_pw) + o + struct.pack("<i", perms) + file_id).digest()
        for _ in range(50):
            key = hashlib.md5(key[:n]).digest()
        key = key[:n]
        u = hashlib.md5(_PAD + file_id).digest()
        for i in range(20):
            u = _rc4(bytes(b ^ i for b in key), u)
        u += bytes(16)
        encrypt_dict = b"<< /Filter /Standard /V 2 /R 3 /Length 128 /P %d /O <%s> /U <%s> >>" % (
            perms,
            o.hex().encode(),
            u.hex().encode(),
        )

    def stream(num: int, data: bytes) -> bytes:
        if key:
            obj_key = hashlib.md5(key + struct.pack("<I", num)[:3] + b"\x00\x00").digest()[:16]
            data = _rc4(obj_key, data)
        return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"

    n_pages = len(pages)
    font_num = 3 + 2 * n_pages
    page_nums = [3 + 2 * i for i in range(n_pages)]
    objs: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % p for p in page_nums), n_pages),
        font_num: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for page_num, lines in zip(page_nums, pages):
        ops = b"".join(
            b"BT /F1 12 Tf 72 %d Td (%s) Tj ET\n" % (720 - 20 * k, line.encode("latin-1"))
            for k, line in enumerate(lines)
        )
        objs[page_num] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (page_num + 1, font_num)
        )
        objs[page_num + 1] = stream(page_num + 1, ops)
    if encrypt_dict:
        objs[font_num + 1] = encrypt_dict
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for num in sorted(objs):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objs[num] + b"\nendobj\n"
    xref, size = len(out), max(objs) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[num] for num in range(1, size))
    extra = b" /Encrypt %d 0 R" % (font_num + 1) if encrypt_dict else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n" % (
        size,
        extra,
        file_id.hex().encode(),
        file_id.hex().encode(),
        xref,
    )
    return bytes(out)


# --------------------------------------------------------------------------- sniffing


@pytest.mark.shared_corpus
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_detect_corpus_by_content_not_name(path: Path, tmp_path: Path) -> None:
    expected = KIND_OVERRIDES.get(path.name, EXPECTED_KIND[path.parent.name])
    assert detect(path).kind == expected
    # Same bytes under a name that says nothing (no extension, no declared type).
    anonymous = copy_as(path, tmp_path, "upload")
    assert detect(anonymous).kind == expected


@pytest.mark.shared_corpus
@pytest.mark.parametrize(
    ("src", "name", "kind"),
    [
        ("docx/mvcc-intro.docx", "x.txt", "docx"),
        ("html/mvcc-intro.html", "x.pdf", "html"),
        ("pdf/ltnews18.pdf", "x.html", "pdf"),
        ("pdf/cfgguide.pdf", "x.docx", "pdf"),
        ("txt/GPL-3.txt", "x.html", "text"),
        ("md/caching.md", "x.docx", "markdown"),
    ],
)
def test_detect_ignores_misleading_extension(src: str, name: str, kind: str, tmp_path: Path) -> None:
    detected = detect(copy_as(CORPUS / src, tmp_path, name))
    assert detected == TYPES[kind]


@pytest.mark.shared_corpus
def test_detected_type_fields() -> None:
    detected = detect(CORPUS / "docx/mvcc-intro.docx")
    assert detected == DetectedType(
        "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"
    )
    assert detect(CORPUS / "pdf/ltnews18.pdf") == DetectedType("pdf", "application/pdf", "pdf")
    assert detect(CORPUS / "html/wal-intro.html").extension == "html"
    assert detect(CORPUS / "md/caching.md") == DetectedType("markdown", "text/markdown", "md")
    assert detect(CORPUS / "txt/GPL-3.txt") == DetectedType("text", "text/plain", "txt")


def test_markdown_hint_from_filename_or_declared_mime(tmp_path: Path) -> None:
    plain = b"Just some words.\nNo markup at all.\n"
    assert detect(write(tmp_path, "a.txt", plain)).kind == "text"
    assert detect(write(tmp_path, "b.md", plain)).kind == "markdown"
    assert detect(write(tmp_path, "c", plain), filename="notes.markdown").kind == "markdown"
    assert (
        detect(write(tmp_path, "d", plain), declared_mime="text/markdown; charset=utf-8").kind == "markdown"
    )


@pytest.mark.parametrize(
    "content",
    [b"# Title\n\nbody\n", b"intro\n\n```\ncode\n```\n", b"Title\n=====\n\nbody\n", b"text\n\n### Deep\n"],
)
def test_markdown_signals_in_content(content: bytes, tmp_path: Path) -> None:
    assert detect(write(tmp_path, "x.txt", content)).kind == "markdown"


@pytest.mark.parametrize(
    "content",
    [
        b"<!DOCTYPE html><html><body><p>x</p></body></html>",
        b"\xef\xbb\xbf  \n<html lang='en'><p>x</p></html>",
        b'<?xml version="1.0"?>\n<!-- generated -->\n<!doctype HTML>\n<title>t</title>',
        b"\n\n   <HEAD><title>t</title></HEAD>",
        b"<body>\n<p>hi</p>",
        codecs.BOM_UTF16_LE + "<html><body>x</body></html>".encode("utf-16-le"),
    ],
)
def test_html_detection(content: bytes, tmp_path: Path) -> None:
    assert detect(write(tmp_path, "x.txt", content)).kind == "html"


def test_html_fragment_needs_html_hint(tmp_path: Path) -> None:
    fragment = b"<div><p>Hello <b>there</b></p></div>\n"
    assert detect(write(tmp_path, "a", fragment)).kind == "text"
    assert detect(write(tmp_path, "b.html", fragment)).kind == "html"
    assert detect(write(tmp_path, "c", fragment), declared_mime="text/html").kind == "html"


def test_empty_file_raises(tmp_path: Path) -> None:
    with pytest.raises(EmptyFile):
        detect(write(tmp_path, "empty.pdf", b""))


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"GIF89a" + bytes(50), "GIF"),
        (b"MZ\x90\x00" + bytes(200), "Windows executable"),
        (b"\x1f\x8b\x08\x00" + bytes(50), "gzip"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "damaged OLE2"),
        ("Hello world, no BOM here. ".encode("utf-16-le") * 20, "NUL"),
        (bytes((i * 7919 + 13) % 256 for i in range(4096)), "control"),
    ],
)
def test_binary_content_is_unsupported(data: bytes, named: str, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedType, match=named):
        detect(write(tmp_path, "x.txt", data))


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_of_no_document_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedType, match="ZIP archive that holds no document"):
        detect(write(tmp_path, "a.docx", _zip_bytes({"readme.txt": b"hi"})))
    with pytest.raises(UnsupportedType, match="application/x-unknown"):
        detect(write(tmp_path, "b.odt", _zip_bytes({"mimetype": b"application/x-unknown"})))


@pytest.mark.parametrize(
    ("members", "name", "expected"),
    [
        ({"[Content_Types].xml": b"<Types/>", "ppt/presentation.xml": b"<x/>"}, "deck.bin", TYPES["pptx"]),
        ({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<x/>"}, "book", TYPES["xlsx"]),
        (
            {
                "[Content_Types].xml": b'<Types><Override ContentType="application/vnd.ms-excel.'
                b'sheet.macroEnabled.main+xml"/></Types>',
                "xl/workbook.xml": b"<x/>",
            },
            "macros.xlsx",
            XLSM_TYPE,
        ),
        ({"mimetype": b"application/epub+zip", "META-INF/container.xml": b"<x/>"}, "b.zip", TYPES["epub"]),
        ({"mimetype": b"application/vnd.oasis.opendocument.text"}, "t", TYPES["odt"]),
        ({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet"}, "s", TYPES["ods"]),
        ({"mimetype": b"application/vnd.oasis.opendocument.presentation"}, "p", TYPES["odp"]),
    ],
)
def test_zip_packages_are_told_apart_by_their_members(
    members: dict[str, bytes], name: str, expected: DetectedType, tmp_path: Path
) -> None:
    assert detect(write(tmp_path, name, _zip_bytes(members))) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "image/png"),
        (b"\xff\xd8\xff\xe0" + bytes(100), "image/jpeg"),
        (b"II*\x00" + bytes(100), "image/tiff"),
        (b"MM\x00*" + bytes(100), "image/tiff"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(100), "image/webp"),
    ],
)
def test_images_are_sniffed_by_their_magic_number(data: bytes, expected: str, tmp_path: Path) -> None:
    detected = detect(write(tmp_path, "scan.txt", data))
    assert (detected.kind, detected.mime) == ("image", expected)
    assert detected in {t for _, _, t in IMAGE_TYPES}


def test_rtf_and_mail_are_sniffed_by_content(tmp_path: Path) -> None:
    assert detect(write(tmp_path, "a.txt", b"{\\rtf1\\ansi Hello}")) == TYPES["rtf"]
    mail = b"From: Ada <ada@example.org>\r\nTo: bob@example.org\r\nSubject: Tides\r\n\r\nHigh at six.\r\n"
    assert detect(write(tmp_path, "message", mail)) == TYPES["eml"]
    # one header line is not a message, unless the name says e-mail
    assert detect(write(tmp_path, "note", b"Subject: tides\n\nHigh at six.\n")).kind == "text"
    assert detect(write(tmp_path, "note.eml", b"Subject: tides\n\nHigh at six.\n")) == TYPES["eml"]
    # a Markdown file with a "key: value" first line is not mail
    assert detect(write(tmp_path, "n.md", b"Title: x\n\n# Heading\n")).kind == "markdown"


def test_csv_tsv_and_json_by_name_or_type_and_json_by_content(tmp_path: Path) -> None:
    table = b"name,age\nAda,36\n"
    assert detect(write(tmp_path, "people.csv", table)) == TYPES["csv"]
    assert detect(write(tmp_path, "people", table), declared_mime="text/csv") == TYPES["csv"]
    assert detect(write(tmp_path, "people.tsv", b"name\tage\nAda\t36\n")) == TSV_TYPE
    assert detect(write(tmp_path, "people.txt", table)).kind == "text"  # no hint: text
    assert detect(write(tmp_path, "a.json", b'{"a": 1}')) == TYPES["json"]
    assert detect(write(tmp_path, "a", b'  {"a": [1, 2]}\n')) == TYPES["json"]  # whole file parses
    assert detect(write(tmp_path, "a.ndjson", b'{"a": 1}\n{"a": 2}\n')) == JSONL_TYPE
    assert detect(write(tmp_path, "lines", b'{"a": 1}\n{"a": 2}\n')) == JSONL_TYPE
    assert detect(write(tmp_path, "b", b"{not json}")).kind == "text"
    assert detect(write(tmp_path, "c.json", b"plain words")).kind == "text"  # the content disagrees


def test_an_encrypted_office_file_is_refused_as_encrypted(tmp_path: Path) -> None:
    import msoffcrypto.format.ooxml
    import openpyxl

    plain = tmp_path / "plain.xlsx"
    book = openpyxl.Workbook()
    book.active["A1"] = "secret"
    book.save(plain)
    locked = tmp_path / "locked.xlsx"
    with plain.open("rb") as src, locked.open("wb") as dst:
        office = msoffcrypto.format.ooxml.OOXMLFile(src)
        office.encrypt("pa55word", dst)
    with pytest.raises(DocumentEncrypted, match="password"):
        detect(locked)


@pytest.mark.shared_corpus
def test_truncated_docx_is_still_sniffed_as_docx(tmp_path: Path) -> None:
    data = (CORPUS / "docx/mvcc-intro.docx").read_bytes()
    path = write(tmp_path, "cut.docx", data[: len(data) // 2])
    assert detect(path).kind == "docx"
    with pytest.raises(DocumentCorrupt):
        parse_file(path, "docx")


def test_text_with_a_few_nuls_or_latin1_is_still_text(tmp_path: Path) -> None:
    assert detect(write(tmp_path, "a", b"hello\x00world, a stray NUL\n" * 3)).kind == "text"
    assert (
        detect(write(tmp_path, "b", "caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1") * 5)).kind == "text"
    )
    utf16 = codecs.BOM_UTF16_BE + "plain words".encode("utf-16-be")
    assert detect(write(tmp_path, "c", utf16)).kind == "text"


def test_sniff_reads_only_the_head(tmp_path: Path) -> None:
    # Text for the first 64 KiB, binary garbage after: sniffing never sees the garbage.
    data = b"plain text line\n" * (SNIFF_BYTES // 16 + 1) + b"\x00\x01\x02\x03" * 10_000
    assert detect(write(tmp_path, "big", data)).kind == "text"
    # A multi-byte character cut by the 64 KiB boundary does not make it binary.
    data = b"a" * (SNIFF_BYTES - 1) + "é".encode() + b"rest"
    assert detect(write(tmp_path, "cut", data)).kind == "text"


@pytest.mark.parametrize(
    ("kind", "declared", "ok"),
    [
        ("markdown", "text/plain", True),
        ("text", "text/markdown", True),
        ("text", "Text/Plain; charset=UTF-8", True),
        ("pdf", "application/octet-stream", True),
        ("docx", "application/octet-stream", True),
        ("html", "", True),
        ("docx", "application/zip", True),
        ("html", "application/pdf", False),
        ("pdf", "text/plain", False),
        ("docx", "application/pdf", False),
        ("text", "text/html", False),
    ],
)
def test_is_declared_compatible(kind: str, declared: str, ok: bool) -> None:
    assert is_declared_compatible(TYPES[kind], declared) is ok


# --------------------------------------------------------------------------- PDF


def _pdfium_page_texts(path: Path) -> list[str]:
    pdf = pdfium.PdfDocument(path)
    try:
        texts = []
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range().replace("\r\n", "\n"))
            textpage.close()
            page.close()
        return texts
    finally:
        pdf.close()


@pytest.mark.shared_corpus
@pytest.mark.parametrize("name", ["ltnews18.pdf", "cfgguide.pdf"])
def test_pdf_pages_and_offsets(name: str) -> None:
    path = CORPUS / "pdf" / name
    expected = _pdfium_page_texts(path)
    doc = parse_file(path, "pdf")
    assert doc.kind == "pdf"
    assert len(doc.pages) == len(expected) >= 1
    assert [p.number for p in doc.pages] == list(range(1, len(expected) + 1))
    previous_end = 0
    marked = []
    for page, text in zip(doc.pages, expected):
        marked.append(doc.markdown[page.start : page.end])
        assert_marked_only(marked[-1], text)  # PDFium's text, headings marked as Markdown
        assert page.start >= previous_end and page.end >= page.start
        assert page.empty is (not text.strip())
        previous_end = page.end
    assert doc.markdown == PAGE_SEPARATOR.join(t for t in marked if t.strip())
    assert re.search(r"(?m)^# ", doc.markdown), "no heading found"
    assert "\r" not in doc.markdown


@pytest.mark.shared_corpus
def test_pdf_parsing_from_threads_is_safe() -> None:
    # The worker runs stages in threads; PDFium is not thread-safe (PDFIUM_LOCK).
    path = CORPUS / "pdf/cfgguide.pdf"
    expected = parse_file(path, "pdf").markdown
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: parse_file(path, "pdf").markdown, range(8)))
    assert results == [expected] * 8


@pytest.mark.shared_corpus
def test_pdf_metadata() -> None:
    doc = PdfParser().parse(CORPUS / "pdf/cfgguide.pdf")
    assert doc.metadata["Title"] == "Configuration options for LaTeX2ε"
    assert doc.metadata["Producer"].startswith("pdfTeX")
    assert all(isinstance(v, str) and v for v in doc.metadata.values())


def test_pdf_blank_pages_are_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "blank.pdf", make_pdf([["First page", "second line"], [], ["Third page"]]))
    doc = parse_file(path, "pdf")
    assert [p.empty for p in doc.pages] == [False, True, False]
    first, blank, third = doc.pages
    assert doc.markdown[first.start : first.end] == "First page\nsecond line"
    assert blank.start == blank.end
    assert doc.markdown[third.start : third.end] == "Third page"
    assert doc.markdown == "First page\nsecond line\n\nThird page"
    assert any("no text layer" in w and "pages 2" in w for w in doc.warnings)


@pytest.mark.shared_corpus
def test_truncated_pdf_is_corrupt(tmp_path: Path) -> None:
    data = (CORPUS / "pdf/ltnews30.pdf").read_bytes()
    path = write(tmp_path, "cut.pdf", data[: len(data) // 2])
    assert detect(path).kind == "pdf"
    with pytest.raises(PdfCorrupt) as info:
        parse_file(path, "pdf")
    assert isinstance(info.value.__cause__, pdfium.PdfiumError)


def test_garbage_after_pdf_magic_is_corrupt(tmp_path: Path) -> None:
    with pytest.raises(PdfCorrupt):
        parse_file(write(tmp_path, "x.pdf", b"%PDF-1.7\n" + b"not really a pdf\n" * 50), "pdf")


def test_pdf_needing_user_password_is_encrypted(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.pdf", make_pdf([["Top secret"]], user_pw="user", owner_pw="owner"))
    assert detect(path).kind == "pdf"
    with pytest.raises(PdfEncrypted, match="password"):
        parse_file(path, "pdf")
    # The generated file is a real encrypted PDF: the right password opens it.
    with pdfium.PdfDocument(path, password="user") as pdf:
        assert "Top secret" in pdf[0].get_textpage().get_text_range()


def test_pdf_with_owner_password_only_parses(tmp_path: Path) -> None:
    path = write(tmp_path, "owner.pdf", make_pdf([["Readable by anyone"]], user_pw="", owner_pw="owner"))
    assert b"/Encrypt" in path.read_bytes()
    doc = parse_file(path, "pdf")
    assert doc.markdown == "Readable by anyone"
    assert [p.empty for p in doc.pages] == [False]


# --------------------------------------------------------------------------- DOCX


@pytest.mark.shared_corpus
def test_docx_corpus_headings_and_no_navigation() -> None:
    doc = parse_file(CORPUS / "docx/mvcc-intro.docx", "docx")
    lines = doc.markdown.splitlines()
    assert "# 13.1.\xa0Introduction" in lines  # the Title style
    assert "## 13.1.\xa0Introduction" in lines  # Heading 2
    assert "reading never blocks writing" in " ".join(doc.markdown.split())
    assert not any(line.strip().strip("|").strip() in {"Prev", "Next"} for line in lines)
    assert not re.search(r"\|\s*Prev", doc.markdown)
    assert doc.metadata["Title"] == "13.1.\xa0Introduction"


@pytest.mark.shared_corpus
def test_docx_corpus_tables_and_code() -> None:
    doc = parse_file(CORPUS / "docx/sql-copy.docx", "docx")
    assert "| Sequence | Represents |\n| --- | --- |\n| \\b | Backspace (ASCII 8) |" in doc.markdown
    assert "## Synopsis\n\n```\nCOPY table_name" in doc.markdown
    assert "### " in doc.markdown  # Heading 3 sections exist


def test_docx_body_order_lists_and_tables(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_heading("Doc title", level=0)
    document.add_heading("Chapter", level=1)
    document.add_paragraph("Intro paragraph.")
    document.add_paragraph("first item", style="List Bullet")
    document.add_paragraph("second item", style="List Number")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([["a", "b|c"], ["1", "2"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_heading("Section", level=3)
    document.add_paragraph("After the table.")
    document.core_properties.author = "Ada"
    path = tmp_path / "made.docx"
    document.save(str(path))

    doc = DocxParser().parse(path)
    assert doc.markdown == (
        "# Doc title\n\n# Chapter\n\nIntro paragraph.\n\n- first item\n\n- second item\n\n"
        "| a | b\\|c |\n| --- | --- |\n| 1 | 2 |\n\n### Section\n\nAfter the table."
    )
    assert doc.kind == "docx" and doc.pages == []
    assert doc.metadata["Author"] == "Ada"


def test_docx_garbage_is_corrupt(tmp_path: Path) -> None:
    with pytest.raises(DocumentCorrupt):
        parse_file(write(tmp_path, "x.docx", b"PK\x03\x04 this is not a zip" * 10), "docx")
    bad_xml = _zip_bytes(
        {
            "[Content_Types].xml": b"<Types",
            "word/document.xml": b"<w:document",
        }
    )
    with pytest.raises(DocumentCorrupt):
        parse_file(write(tmp_path, "y.docx", bad_xml), "docx")


# --------------------------------------------------------------------------- HTML


@pytest.mark.shared_corpus
def test_html_corpus_text_without_navigation() -> None:
    doc = parse_file(CORPUS / "html/mvcc-intro.html", "html")
    assert doc.kind == "html" and doc.pages == []
    assert "reading never blocks writing" in " ".join(doc.markdown.split())
    lines = [line.strip() for line in doc.markdown.splitlines()]
    for nav in ("Prev", "Next", "Up", "Home"):
        assert not any(re.search(rf"\b{nav}\b", line) and len(line) < 40 for line in lines), nav
    assert "transaction-iso.html" not in doc.markdown
    assert lines[0] == "## 13.1.\xa0Introduction"
    assert doc.metadata["Title"] == "13.1. Introduction"
    assert "\n\n\n" not in doc.markdown


@pytest.mark.shared_corpus
def test_html_corpus_code_blocks_and_headings() -> None:
    doc = parse_file(CORPUS / "html/sql-copy.html", "html")
    assert "## Synopsis\n\n```\nCOPY table_name [ ( column_name [, ...] ) ]" in doc.markdown
    assert "| Sequence | Represents |" in doc.markdown
    assert "Synopsis\n--------" not in doc.markdown  # ATX, not setext


def test_html_meta_charset_and_bom(tmp_path: Path) -> None:
    latin = '<html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head><body><p>cr\xe8me</p></body></html>'
    doc = parse_file(write(tmp_path, "a.html", latin.encode("latin-1")), "html")
    assert doc.markdown == "crème" and doc.metadata["Title"] == "Café"
    utf16 = codecs.BOM_UTF16_LE + "<html><body><h1>Über</h1><p>ok</p></body></html>".encode("utf-16-le")
    doc = parse_file(write(tmp_path, "b.html", utf16), "html")
    assert doc.markdown == "# Über\n\nok"


def test_html_keeps_nul_and_lone_surrogates(tmp_path: Path) -> None:
    data = b"<html><body><p>a\x00b</p><p>c\xed\xa0\x80d</p><script>x()</script></body></html>"
    doc = parse_file(write(tmp_path, "n.html", data), "html")
    assert "a\x00b" in doc.markdown and "c\ud800d" in doc.markdown
    assert "x()" not in doc.markdown


# --------------------------------------------------------------------------- text and Markdown


@pytest.mark.shared_corpus
def test_markdown_and_text_are_returned_as_is() -> None:
    for kind, rel in (("markdown", "md/caching.md"), ("text", "txt/GPL-3.txt")):
        path = CORPUS / rel
        doc = parse_file(path, kind)
        assert doc.kind == kind and doc.pages == [] and doc.warnings == []
        assert doc.markdown == path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("data", "text", "warned"),
    [
        (codecs.BOM_UTF8 + "héllo".encode(), "héllo", False),
        (codecs.BOM_UTF16_LE + "héllo".encode("utf-16-le"), "héllo", False),
        (codecs.BOM_UTF16_BE + "héllo".encode("utf-16-be"), "héllo", False),
        (b"nul\x00kept", "nul\x00kept", True),  # kept for validation to count, and warned of
        (b"lone \xed\xa0\x80 surrogate", "lone \ud800 surrogate", False),
        ("déjà, bad ".encode() + b"\xff byte", "déjà, bad \ufffd byte", True),  # damaged UTF-8
        (
            b"caf\xe9 cr\xe8me \x93br\xfbl\xe9e\x94 for dessert",
            "café crème “brûlée” for dessert",
            True,
        ),  # windows-1252
    ],
)
def test_text_decoding(data: bytes, text: str, warned: bool, tmp_path: Path) -> None:
    for kind in ("text", "markdown"):
        doc = parse_file(write(tmp_path, "t", data), kind)
        assert doc.markdown == text
        assert bool(doc.warnings) is warned
    assert decode_text(data).text == text


def test_undecodable_bytes_are_document_corrupt(tmp_path: Path) -> None:
    # High bytes only: no control byte, so sniffing calls it text; as UTF-8 ~80% is replaced.
    junk = bytes(random.Random(5).randint(0x80, 0xFF) for _ in range(4000))
    assert garbled_share(junk.decode("utf-8", "replace")) > MAX_GARBLED_SHARE
    for kind in ("text", "markdown", "html"):
        path = write(tmp_path, f"junk.{kind}", junk)
        assert detect(path).kind in ("text", "markdown")
        with pytest.raises(DocumentCorrupt, match="save it as UTF-8") as caught:
            parse_file(path, kind)
        assert caught.value.error_code == "document_corrupt" and not caught.value.retryable
    # Japanese in Shift_JIS: a legacy multi-byte encoding, most of it undecodable as UTF-8.
    with pytest.raises(DocumentCorrupt, match="not readable as utf-8"):
        decode_text(("日本語のテキストです。" * 50).encode("shift_jis"))


def test_latin1_text_is_read_as_windows_1252_and_damaged_utf8_keeps_its_letters() -> None:
    # Accent-dense Latin-1 (18% of characters not UTF-8), no UTF-8 in it: every letter kept.
    text = "Café déjà vu, naïve façade. " * 200
    dense = decode_text(text.encode("latin-1"))
    assert dense.text == text and dense.encoding == "cp1252"
    assert "windows-1252" in dense.warnings[0]
    # Damaged UTF-8 (valid multi-byte sequences in it) is not re-read: a few U+FFFD.
    damaged = decode_text("ünïcödé text ".encode() * 100 + b"\xff\xfe" * 20)
    assert damaged.encoding == "utf-8" and damaged.text.count("\ufffd") == 40 and damaged.warnings
    # Cyrillic in windows-1251 (nearly all bytes high): not taken for Western text.
    with pytest.raises(DocumentCorrupt, match="not readable as utf-8"):
        decode_text(("Привет мир, как дела? " * 30).encode("cp1251"))


def test_damaged_utf8_over_the_garbled_limit_fails() -> None:
    # Just over the limit fails, just under passes: the rule is the share, not the count.
    # (Each unit holds a UTF-8 "é", so none of it is taken for windows-1252 text.)
    over = "é".encode() + b"ab" + b"\xff" * 2  # 2 in 5 replaced
    under = "é".encode() + b"abcd" + b"\xff"  # 1 in 6
    with pytest.raises(DocumentCorrupt):
        decode_text(over * 100)
    assert decode_text(under * 100).text.count("\ufffd") == 100
    assert garbled_share("") == 0.0
    assert garbled_share("a\x01\x85\ufffd") == 0.75 and garbled_share("a\t\n\x00") == 0.0


# --------------------------------------------------------------------------- registry


def test_registry_and_unknown_kind(tmp_path: Path) -> None:
    assert set(PARSER_CLASSES) == set(KINDS) == set(TYPES)
    assert all(t.kind == kind for kind, t in TYPES.items())
    assert all(callable(parser_for(kind).parse) for kind in KINDS)
    with pytest.raises(UnsupportedType, match="known kinds"):
        parse_file(write(tmp_path, "x", b"{\\rtf1 hi}"), "wordperfect")


def test_nul_characters_in_a_text_file_are_kept_for_cleaning_with_a_warning_that_counts_them() -> None:
    decoded = decode_text(b"tide\x00 table\x00s and\x00 more")
    assert decoded.text == "tide\x00 table\x00s and\x00 more"  # removed (and counted) by validation
    assert len(decoded.warnings) == 1 and decoded.warnings[0].startswith("3 NUL character(s)")
    assert "encoding" in decoded.warnings[0]  # says what to check
    assert decode_text("utf-16 text".encode("utf-16")).warnings == ()  # decoded right: no NUL left
    assert decode_text(b"clean text").warnings == ()
