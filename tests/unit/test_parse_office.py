"""Presentations (PPTX, ODP) and OpenDocument text (ODT): the samples of
``tests/fixtures/formats/office.py`` parsed to slides, headings, lists, tables and notes; and
the bad inputs (a truncated package, a slide whose XML is broken, an empty deck, a zip bomb,
a password-protected OpenDocument) ending in a clear error or a warning."""

from __future__ import annotations

import copy
import io
import random
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import docx
import odfdo
import pptx
import pytest
from pptx.enum.shapes import PP_PLACEHOLDER
from pptx.util import Cm

from docingest.errors import (
    ArchiveTooLarge,
    DocingestError,
    DocumentCorrupt,
    DocumentEncrypted,
    UnsupportedType,
)
from docingest.providers.chunking.chunker import headings
from docingest.providers.parsing import KindParser, ParsedDocument, ParseOptions, detect, parse_file
from docingest.providers.parsing.docx import DocxParser
from docingest.providers.parsing.opendocument import OdtParser
from docingest.providers.parsing.presentation import SLIDE_SEPARATOR, OdpParser, PptxParser
from docingest.providers.parsing.sandbox import ParseLimits, SandboxedParser
from tests.fixtures.formats import FormatSample, SampleFactory
from tests.fixtures.formats.office import (
    PPTX_HORN,
    PPTX_LENS,
    PPTX_LOGBOOK,
    PPTX_NOTES,
    PPTX_SHUTTERS,
    sample_odp,
    sample_odt,
    sample_pptx,
)


def page_text(doc: ParsedDocument, number: int) -> str:
    page = doc.pages[number - 1]
    assert page.number == number
    return doc.markdown[page.start : page.end]


def heading_path_at(markdown: str, offset: int) -> list[str]:
    """The headings in effect at ``offset``, as the chunker computes a chunk's heading path."""
    path: list[tuple[int, str]] = []
    for at, level, title in headings(markdown):
        if at > offset:
            break
        path = [p for p in path if p[0] < level] + [(level, title)]
    return [title for _, title in path]


def check_expects(sample: FormatSample, doc: ParsedDocument) -> None:
    """Every expected sentence is on its page, under its heading, exactly once."""
    for expect in sample.expects:
        assert doc.markdown.count(expect.sentence) == 1, expect.sentence
        at = doc.markdown.index(expect.sentence)
        if expect.page is not None:
            page = next(p for p in doc.pages if p.start <= at < p.end)
            assert page.number == expect.page, expect.sentence
        if expect.heading is not None:
            assert expect.heading in heading_path_at(doc.markdown, at), expect.sentence


def rewrite_member(path: Path, member: str, data: bytes) -> None:
    """Replace one member of the ZIP package at ``path``."""
    with zipfile.ZipFile(path) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, content in members:
            zf.writestr(info, data if info.filename == member else content)


# ------------------------------------------------------------------------------------ PPTX


def test_the_pptx_sample_gives_one_page_per_slide_with_titles_tables_and_notes(tmp_path: Path) -> None:
    sample = sample_pptx(tmp_path)
    assert detect(sample.path).kind == sample.kind == "pptx"
    assert detect(sample.path).mime == sample.mime
    seen: list[tuple[int, int]] = []
    doc = parse_file(sample.path, "pptx", on_progress=lambda done, total: seen.append((done, total)))
    assert doc.kind == "pptx"
    assert [p.number for p in doc.pages] == [1, 2, 3, 4, 5] and not any(p.empty for p in doc.pages)
    assert seen == [(n, 5) for n in range(1, 6)]
    check_expects(sample, doc)
    assert page_text(doc, 1).startswith("# Coastal Lighthouse Maintenance\n\nAnnual briefing")
    assert page_text(doc, 2) == (
        f"# Lens Cleaning Schedule\n\n- {PPTX_LENS}\n  - Spare mantles are counted on the first day "
        f"of the month.\n\n## Notes\n\n{PPTX_NOTES}"
    )
    assert page_text(doc, 3) == (
        "# Fog Signal Inventory\n\n| Station | Signal |\n| --- | --- |\n"
        f"| Pelican Point | {PPTX_HORN} |\n| Gull Rock | bell buoy |"
    )
    # Left box before the right one (in a group), the title first.
    assert page_text(doc, 4) == (
        f"# Storm Preparation\n\n{PPTX_SHUTTERS}\n\nOil lamps are refilled after the shutters are secured."
    )
    assert page_text(doc, 5) == f"# Slide 5\n\n{PPTX_LOGBOOK}"
    assert SLIDE_SEPARATOR.join(page_text(doc, n) for n in range(1, 6)) == doc.markdown
    assert doc.metadata["Title"] == "Coastal Lighthouse Maintenance"
    assert doc.metadata["Author"] == "Grace Darling"
    assert doc.warnings == []


def _deck_with(tmp_path: Path, build: Callable[[Any], None]) -> Path:
    deck = pptx.Presentation()
    build(deck)
    path = tmp_path / "deck.pptx"
    deck.save(str(path))
    return path


def test_pptx_shapes_are_read_top_to_bottom_then_left_to_right(tmp_path: Path) -> None:
    def build(deck: Any) -> None:
        slide = deck.slides.add_slide(deck.slide_layouts[6])
        for text, x, y in [("bottom", 1, 10), ("top right", 12, 2), ("top left", 1, 2)]:
            slide.shapes.add_textbox(Cm(x), Cm(y), Cm(8), Cm(2)).text_frame.text = text

    doc = PptxParser().parse(_deck_with(tmp_path, build))
    assert doc.markdown == "# Slide 1\n\ntop left\n\ntop right\n\nbottom"


def test_a_hidden_pptx_slide_is_skipped_with_a_warning_and_keeps_its_number(tmp_path: Path) -> None:
    def build(deck: Any) -> None:
        for title in ("Visible one", "Hidden backup", "Visible two"):
            deck.slides.add_slide(deck.slide_layouts[5]).shapes.title.text = title
        deck.slides[1]._element.set("show", "0")

    doc = PptxParser().parse(_deck_with(tmp_path, build))
    assert "Hidden backup" not in doc.markdown
    assert [(p.number, p.empty) for p in doc.pages] == [(1, False), (2, True), (3, False)]
    assert page_text(doc, 3) == "# Visible two"
    assert doc.warnings == ["skipped 1 hidden slide(s): slide 2"]


def test_pptx_text_that_looks_like_markdown_is_escaped_and_table_pipes_too(tmp_path: Path) -> None:
    def build(deck: Any) -> None:
        slide = deck.slides.add_slide(deck.slide_layouts[5])
        slide.shapes.title.text = "Line one\vline two"  # a line break inside the title
        slide.shapes.add_textbox(Cm(1), Cm(4), Cm(8), Cm(2)).text_frame.text = "# not a heading"
        table = slide.shapes.add_table(2, 2, Cm(1), Cm(8), Cm(10), Cm(3)).table
        table.cell(0, 0).merge(table.cell(0, 1))
        table.cell(0, 0).text = "a|b"
        table.cell(1, 0).text = "x"
        table.cell(1, 1).text = "two\vlines"

    doc = PptxParser().parse(_deck_with(tmp_path, build))
    assert doc.markdown == (
        "# Line one line two\n\n\\# not a heading\n\n| a\\|b |  |\n| --- | --- |\n| x | two lines |"
    )
    assert heading_path_at(doc.markdown, len(doc.markdown) - 1) == ["Line one line two"]


def test_an_empty_presentation_has_no_text_and_says_so(tmp_path: Path) -> None:
    doc = PptxParser().parse(_deck_with(tmp_path, lambda deck: None))
    assert (doc.markdown, doc.pages) == ("", [])
    assert doc.warnings == ["the presentation has no slides"]


def test_a_slide_with_no_text_is_an_empty_page(tmp_path: Path) -> None:
    def build(deck: Any) -> None:
        deck.slides.add_slide(deck.slide_layouts[6])
        deck.slides.add_slide(deck.slide_layouts[5]).shapes.title.text = "Only a title"

    doc = PptxParser().parse(_deck_with(tmp_path, build))
    assert [(p.number, p.empty) for p in doc.pages] == [(1, True), (2, False)]
    assert doc.markdown == "# Only a title"


def test_a_pptx_slide_with_broken_xml_is_skipped_with_a_warning(tmp_path: Path) -> None:
    sample = sample_pptx(tmp_path)
    rewrite_member(sample.path, "ppt/slides/slide3.xml", b"<p:sld xmlns:p='urn:x'><p:cSld><unclosed")
    doc = PptxParser().parse(sample.path)
    assert [(p.number, p.empty) for p in doc.pages] == [
        (1, False),
        (2, False),
        (3, True),
        (4, False),
        (5, False),
    ]
    assert PPTX_HORN not in doc.markdown
    assert PPTX_LENS in page_text(doc, 2) and PPTX_SHUTTERS in page_text(doc, 4)
    assert doc.warnings == [
        "1 of 5 slide(s) could not be read (damaged or missing) and were skipped: slide 3"
    ]


@pytest.mark.parametrize(
    "damage", [b"<foo/>", b"", bytes(range(256)), None], ids=["wrong-root", "empty", "binary", "missing"]
)
def test_a_pptx_slide_otherwise_damaged_or_missing_is_skipped_with_a_warning(
    tmp_path: Path, damage: bytes | None
) -> None:
    sample = sample_pptx(tmp_path)
    if damage is None:
        with zipfile.ZipFile(sample.path) as zf:
            members = [(info, zf.read(info)) for info in zf.infolist()]
        with zipfile.ZipFile(sample.path, "w", zipfile.ZIP_DEFLATED) as zf:
            for info, content in members:
                if info.filename != "ppt/slides/slide2.xml":
                    zf.writestr(info, content)
    else:
        rewrite_member(sample.path, "ppt/slides/slide2.xml", damage)
    doc = PptxParser().parse(sample.path)
    assert [p.empty for p in doc.pages] == [False, True, False, False, False]
    assert PPTX_LENS not in doc.markdown and PPTX_HORN in page_text(doc, 3)
    assert doc.warnings == [
        "1 of 5 slide(s) could not be read (damaged or missing) and were skipped: slide 2"
    ]


def test_broken_speaker_notes_lose_only_the_notes(tmp_path: Path) -> None:
    sample = sample_pptx(tmp_path)
    with zipfile.ZipFile(sample.path) as zf:
        notes = [n for n in zf.namelist() if n.startswith("ppt/notesSlides/") and n.endswith(".xml")]
    assert len(notes) == 1
    rewrite_member(sample.path, notes[0], b"<not xml")
    doc = PptxParser().parse(sample.path)
    assert PPTX_NOTES not in doc.markdown
    assert page_text(doc, 2).startswith("# Lens Cleaning Schedule\n\n- " + PPTX_LENS)
    assert not any(p.empty for p in doc.pages)


def test_a_broken_presentation_part_is_document_corrupt(tmp_path: Path) -> None:
    sample = sample_pptx(tmp_path)
    rewrite_member(sample.path, "ppt/presentation.xml", b"<p:presentation><broken")
    with pytest.raises(DocumentCorrupt, match="the PPTX is damaged") as info:
        PptxParser().parse(sample.path)
    assert str(tmp_path) not in str(info.value)


def test_a_truncated_pptx_is_document_corrupt_in_the_sandbox(tmp_path: Path) -> None:
    sample = sample_pptx(tmp_path)
    data = sample.path.read_bytes()
    truncated = tmp_path / "truncated.pptx"
    truncated.write_bytes(data[: len(data) // 2])
    assert detect(truncated).kind == "pptx"
    with pytest.raises(DocumentCorrupt) as direct:
        PptxParser().parse(truncated)
    assert str(tmp_path) not in str(direct.value)
    parser = SandboxedParser(ParseLimits(timeout_seconds=60))
    try:
        with pytest.raises(DocumentCorrupt) as sandboxed:
            parser(truncated, "pptx")
        assert sandboxed.value.error_code == "document_corrupt"
        assert len(parser(sample.path, "pptx").pages) == 5  # the child lives on
    finally:
        parser.close()


@pytest.mark.parametrize(
    ("sample", "parser"),
    [(sample_pptx, PptxParser()), (sample_odp, OdpParser()), (sample_odt, OdtParser())],
    ids=["pptx", "odp", "odt"],
)
def test_a_package_over_the_unpacked_limit_is_archive_too_large(
    tmp_path: Path, sample: SampleFactory, parser: KindParser
) -> None:
    path = sample(tmp_path).path
    with pytest.raises(ArchiveTooLarge):
        parser.parse(path, ParseOptions(max_unpacked_bytes=4096))


def test_a_docx_over_the_unpacked_limit_is_archive_too_large(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("Tide tables are printed every spring.")
    path = tmp_path / "tides.docx"
    document.save(str(path))
    assert "Tide tables" in DocxParser().parse(path).markdown
    with pytest.raises(ArchiveTooLarge, match="unpacks to"):
        DocxParser().parse(path, ParseOptions(max_unpacked_bytes=4096))


# ------------------------------------------------------------------------------------- ODP


def test_the_odp_sample_gives_one_page_per_slide_in_reading_order_with_notes(tmp_path: Path) -> None:
    sample = sample_odp(tmp_path)
    assert (detect(sample.path).kind, detect(sample.path).mime) == (sample.kind, sample.mime)
    seen: list[tuple[int, int]] = []
    doc = parse_file(sample.path, "odp", on_progress=lambda done, total: seen.append((done, total)))
    assert doc.kind == "odp" and [p.number for p in doc.pages] == [1, 2, 3]
    assert seen == [(1, 3), (2, 3), (3, 3)]
    check_expects(sample, doc)
    first = page_text(doc, 1)
    # The left frame (written second) comes first; the notes last, under their heading.
    assert first.index("cool smoker") < first.index("Varroa") < first.index("## Notes") < first.index("swarm")
    assert page_text(doc, 2).startswith("# Harvest Records\n\n| Apiary | Honey |\n| --- | --- |\n")
    assert page_text(doc, 3).startswith("# Slide 3\n\n")
    assert doc.metadata["Title"] == "Keeping Bees Through the Seasons"
    assert doc.metadata["Author"] == "Lorenzo Langstroth"
    assert doc.warnings == []


def test_a_hidden_odp_slide_is_skipped_with_a_warning(tmp_path: Path) -> None:
    sample = sample_odp(tmp_path)
    deck = odfdo.Document(sample.path)
    pages = deck.body.get_draw_pages()
    style = odfdo.Element.from_tag(
        '<style:style style:name="dpHidden" style:family="drawing-page">'
        '<style:drawing-page-properties presentation:visibility="hidden"/></style:style>'
    )
    styles = deck.content.get_element("//office:automatic-styles")
    assert styles is not None
    styles.append(style)
    pages[1].set_attribute("draw:style-name", "dpHidden")
    deck.save(sample.path)
    doc = OdpParser().parse(sample.path)
    assert [(p.number, p.empty) for p in doc.pages] == [(1, False), (2, True), (3, False)]
    assert "Harvest Records" not in doc.markdown
    assert doc.warnings == ["skipped 1 hidden slide(s): slide 2"]


def test_an_odp_given_as_odt_is_unsupported(tmp_path: Path) -> None:
    sample = sample_odp(tmp_path)
    with pytest.raises(UnsupportedType, match="presentation"):
        OdtParser().parse(sample.path)


# ------------------------------------------------------------------------------------- ODT


def test_the_odt_sample_gives_headings_lists_and_tables(tmp_path: Path) -> None:
    sample = sample_odt(tmp_path)
    assert (detect(sample.path).kind, detect(sample.path).mime) == (sample.kind, sample.mime)
    doc = parse_file(sample.path, "odt")
    assert doc.kind == "odt" and doc.pages == []
    check_expects(sample, doc)
    assert [(level, title) for _, level, title in headings(doc.markdown)] == [
        (1, "Sourdough Bread at Home"),
        (2, "Keeping a Starter"),
        (2, "Mixing the Dough"),
        (3, "Shaping and Scoring"),
        (2, "Baking"),
    ]
    assert "- Weigh the flour and the water into the bowl.\n- An autolyse" in doc.markdown
    assert (
        "salt is added.\n  - Use fine sea salt, two percent of the flour's weight.\n  - Fold" in doc.markdown
    )
    assert "| Step | How |\n| --- | --- |\n| Proofing | cover the basket" in doc.markdown
    assert "\n| Scoring | score the loaf with a curved razor at a shallow angle |\n" in doc.markdown
    assert heading_path_at(doc.markdown, doc.markdown.index("score the loaf")) == [
        "Sourdough Bread at Home",
        "Mixing the Dough",
        "Shaping and Scoring",
    ]
    assert doc.metadata["Title"] == "Sourdough Bread at Home"
    assert doc.metadata["Author"] == "Elizabeth David"


def test_odt_inline_text_spaces_breaks_notes_sections_and_skipped_indexes(tmp_path: Path) -> None:
    document = odfdo.Document("text")
    body = document.body
    body.clear()
    body.append(
        odfdo.Element.from_tag(
            "<text:table-of-content><text:index-body><text:p>Contents entry 1</text:p>"
            "</text:index-body></text:table-of-content>"
        )
    )
    body.append(
        odfdo.Element.from_tag(
            "<text:section text:name='S'><text:p>Two<text:s text:c='2'/>spaces,\n  collapsed   runs"
            "<text:line-break/>next line<text:note text:note-class='footnote'><text:note-citation>1"
            "</text:note-citation><text:note-body><text:p>a footnote</text:p></text:note-body>"
            "</text:note><office:annotation><text:p>a comment</text:p></office:annotation></text:p>"
            "<text:p># hash at the start</text:p></text:section>"
        )
    )
    path = tmp_path / "inline.odt"
    document.save(path)
    doc = OdtParser().parse(path)
    assert doc.markdown == ("Two  spaces, collapsed runs\nnext line (a footnote)\n\n\\# hash at the start")


def test_a_truncated_odt_is_document_corrupt(tmp_path: Path) -> None:
    sample = sample_odt(tmp_path)
    data = sample.path.read_bytes()
    sample.path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DocumentCorrupt) as info:
        OdtParser().parse(sample.path)
    assert str(tmp_path) not in str(info.value)


@pytest.mark.parametrize("sample", [sample_odt, sample_odp], ids=["odt", "odp"])
def test_broken_opendocument_content_is_document_corrupt(tmp_path: Path, sample: SampleFactory) -> None:
    made = sample(tmp_path)
    rewrite_member(made.path, "content.xml", b"<office:document-content><broken")
    with pytest.raises(DocumentCorrupt, match="damaged") as info:
        parse_file(made.path, made.kind)
    assert str(tmp_path) not in str(info.value)


@pytest.mark.parametrize("sample", [sample_odt, sample_odp], ids=["odt", "odp"])
def test_a_password_protected_opendocument_is_document_encrypted(
    tmp_path: Path, sample: SampleFactory
) -> None:
    made = sample(tmp_path)
    manifest = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<manifest:manifest '
        b'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3">'
        b'<manifest:file-entry manifest:full-path="/" manifest:media-type="' + made.mime.encode() + b'"/>'
        b'<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">'
        b'<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="AAAA">'
        b'<manifest:algorithm manifest:algorithm-name="Blowfish CFB" manifest:initialisation-vector="AAAA"/>'
        b"</manifest:encryption-data></manifest:file-entry></manifest:manifest>"
    )
    rewrite_member(made.path, "META-INF/manifest.xml", manifest)
    rewrite_member(made.path, "content.xml", bytes(range(256)) * 8)  # ciphertext
    with pytest.raises(DocumentEncrypted) as info:
        parse_file(made.path, made.kind)
    assert info.value.error_code == "document_encrypted"


def test_an_opendocument_that_is_not_a_zip_is_document_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "plain.odt"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text")
    path.write_bytes(buffer.getvalue()[:40])
    with pytest.raises(DocumentCorrupt):
        OdtParser().parse(path)


def test_pptx_footer_date_and_slide_number_placeholders_are_left_out(tmp_path: Path) -> None:
    def build(deck: Any) -> None:
        layout = deck.slide_layouts[1]
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = "Quarterly Figures"
        slide.placeholders[1].text = "Revenue grew in every region."
        for placeholder in layout.placeholders:
            if placeholder.placeholder_format.type in (PP_PLACEHOLDER.FOOTER, PP_PLACEHOLDER.SLIDE_NUMBER):
                slide.shapes._spTree.append(copy.deepcopy(placeholder._element))
        for shape in slide.placeholders:
            if shape.placeholder_format.type == PP_PLACEHOLDER.FOOTER:
                shape.text = "Confidential footer"

    path = _deck_with(tmp_path, build)
    assert "Confidential footer" in zipfile.ZipFile(path).read("ppt/slides/slide1.xml").decode()
    doc = PptxParser().parse(path)
    assert doc.markdown == "# Quarterly Figures\n\n- Revenue grew in every region."


def test_odp_footer_frames_are_left_out(tmp_path: Path) -> None:
    sample = sample_odp(tmp_path)
    deck = odfdo.Document(sample.path)
    page = deck.body.get_draw_pages()[2]
    page.append(
        odfdo.Frame.text_frame(
            "Apiary society footer",
            size=("10cm", "1cm"),
            position=("1cm", "19cm"),
            presentation_class="footer",
        )
    )
    deck.save(sample.path)
    doc = OdpParser().parse(sample.path)
    assert "Apiary society footer" not in doc.markdown
    assert page_text(doc, 3) == "# Slide 3\n\nQueen excluders keep brood out of the honey supers."


def test_odt_title_style_and_numbered_headings_in_lists_are_headings(tmp_path: Path) -> None:
    document = odfdo.Document("text")
    body = document.body
    body.clear()
    body.append(odfdo.Paragraph("Field Guide to Mosses", style="Title"))
    body.append(
        odfdo.Element.from_tag(
            "<text:list><text:list-item><text:h text:outline-level='1'>Where Mosses Grow</text:h>"
            "</text:list-item></text:list>"
        )
    )
    body.append(odfdo.Paragraph("Mosses favour damp north-facing stone walls."))
    path = tmp_path / "mosses.odt"
    document.save(path)
    doc = OdtParser().parse(path)
    assert doc.markdown == (
        "# Field Guide to Mosses\n\n# Where Mosses Grow\n\nMosses favour damp north-facing stone walls."
    )


def test_a_slide_show_or_template_package_is_read_as_a_presentation(tmp_path: Path) -> None:
    sample = sample_pptx(tmp_path)
    with zipfile.ZipFile(sample.path) as zf:
        types = zf.read("[Content_Types].xml")
    main = b"presentationml.presentation.main+xml"
    assert main in types
    rewrite_member(
        sample.path, "[Content_Types].xml", types.replace(main, b"presentationml.slideshow.main+xml")
    )
    assert detect(sample.path).kind == "pptx"
    doc = PptxParser().parse(sample.path)
    assert len(doc.pages) == 5 and PPTX_HORN in page_text(doc, 3)


def test_a_repetitive_odt_is_not_taken_for_a_zip_bomb(tmp_path: Path) -> None:
    document = odfdo.Document("text")
    document.body.clear()
    for _ in range(30_000):
        document.body.append(odfdo.Paragraph("Check the same valve again."))
    path = tmp_path / "checklist.odt"
    document.save(path)
    with zipfile.ZipFile(path) as zf:
        content = zf.getinfo("content.xml")
    assert content.file_size > 200 * content.compress_size  # past odfdo's default 200:1
    doc = OdtParser().parse(path)
    assert doc.markdown.count("Check the same valve again.") == 30_000


@pytest.mark.parametrize("sample", [sample_pptx, sample_odp, sample_odt], ids=["pptx", "odp", "odt"])
def test_damaged_parts_end_in_a_docingest_error_or_a_result_never_a_library_error(
    tmp_path: Path, sample: SampleFactory
) -> None:
    made = sample(tmp_path)
    original = made.path.read_bytes()
    with zipfile.ZipFile(made.path) as zf:
        members = sorted(n for n in zf.namelist() if n.endswith((".xml", ".rels")) or n == "mimetype")
    outcomes: set[str] = set()
    for seed in range(60):
        rng = random.Random(seed)
        made.path.write_bytes(original)
        member = rng.choice(members)
        with zipfile.ZipFile(made.path) as zf:
            data = bytearray(zf.read(member))
        if not data:
            data = bytearray(b"<")
        elif seed % 2:
            data = data[: rng.randrange(len(data))]  # cut short
        else:
            for _ in range(5):  # five random bytes
                data[rng.randrange(len(data))] = rng.randrange(256)
        rewrite_member(made.path, member, bytes(data))
        try:
            parse_file(made.path, made.kind)
            outcomes.add("parsed")
        except DocingestError as exc:  # anything else fails the test
            assert str(tmp_path) not in str(exc)
            outcomes.add(exc.error_code)
    assert "document_corrupt" in outcomes and "parsed" in outcomes


def test_odt_metadata_keeps_the_filled_properties_as_text(tmp_path: Path) -> None:
    document = odfdo.Document("text")
    document.body.clear()
    document.body.append(odfdo.Paragraph("Hives are inspected weekly."))
    document.meta.set_title("Apiary Log")
    document.meta.set_creator("Last Editor")  # no initial creator: the last one is the author
    document.meta.set_subject("Apiculture")
    document.meta.set_keywords("bees, honey")
    document.meta.set_modification_date(datetime(2024, 5, 1, 12, 0, 0))
    path = tmp_path / "log.odt"
    document.save(path)
    metadata = OdtParser().parse(path).metadata
    assert {k: metadata[k] for k in ("Title", "Author", "Subject", "Keywords", "ModDate")} == {
        "Title": "Apiary Log",
        "Author": "Last Editor",
        "Subject": "Apiculture",
        "Keywords": "bees, honey",
        "ModDate": "2024-05-01T12:00:00",
    }
    assert all(isinstance(v, str) and v for v in metadata.values())
