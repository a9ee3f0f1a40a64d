"""OCR with Tesseract: images (PNG, JPEG, TIFF, WebP) and PDF pages without a text layer, the
image limits, damaged images, and what the parse stage records (event, progress, metrics)."""

from __future__ import annotations

import io
import re
import struct
import types
import zlib
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from PIL import Image
from prometheus_client import REGISTRY

from docingest.domain import JobControl
from docingest.errors import DocumentCorrupt, ImageTooLarge, OcrFailed
from docingest.providers.parsing import OcrPage, ParsedDocument, ParseOptions, detect, parse_file
from docingest.providers.parsing import ocr as ocr_module
from docingest.providers.parsing.options import ocr_status
from docingest.providers.parsing.sandbox import ParseLimits, SandboxedParser
from docingest.providers.storage.local import LocalStorage
from docingest.stages.parse import ParseDocument, ocr_summary
from tests.fixtures.formats import FormatSample, SampleFactory
from tests.fixtures.formats import ocr as samples

STATUS = ocr_status("eng")
AUTO = ParseOptions(ocr="auto", tessdata=STATUS.tessdata)
ALWAYS = ParseOptions(ocr="always", tessdata=STATUS.tessdata)
OFF = ParseOptions(ocr="off", tessdata=STATUS.tessdata)
IMAGE_SAMPLES = [samples.sample_png, samples.sample_jpeg, samples.sample_tiff, samples.sample_webp]
ALL_SAMPLES = [*IMAGE_SAMPLES, samples.sample_scanned_pdf, samples.sample_mixed_pdf]


def test_tesseract_and_its_english_data_are_found() -> None:
    assert STATUS.available, STATUS.reason  # the tests below need them (CI installs them)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _share_found(sentence: str, text: str) -> float:
    """The share of the sentence's words (with repeats) found in ``text``."""
    found = _words(text)
    wanted = _words(sentence)
    return sum(1 for w in wanted if w in found) / len(wanted)


def _page_text(document: ParsedDocument, number: int) -> str:
    (page,) = [p for p in document.pages if p.number == number]
    return document.markdown[page.start : page.end]


def _check_expects(sample: FormatSample, document: ParsedDocument) -> None:
    """At least 95% of every expected sentence's words are on its page."""
    for expect in sample.expects:
        assert expect.page is not None
        share = _share_found(expect.sentence, _page_text(document, expect.page))
        assert share >= 0.95, (expect, share, document.markdown)


@pytest.mark.parametrize("factory", ALL_SAMPLES, ids=lambda f: f.__name__)
def test_every_sample_is_detected_and_ocr_finds_95_percent_of_its_words_on_its_page(
    tmp_path: Path, factory: SampleFactory
) -> None:
    sample = factory(tmp_path)
    assert sample.needs_ocr
    detected = detect(sample.path)
    assert (detected.kind, detected.mime) == (sample.kind, sample.mime)
    document = parse_file(sample.path, detected.kind, options=AUTO)
    _check_expects(sample, document)
    assert document.ocr_pages and all(p.words > 0 and not p.low_confidence for p in document.ocr_pages)
    assert all(p.confidence >= 80 and p.seconds > 0 for p in document.ocr_pages)


def test_an_image_of_text_is_one_page_with_its_ocr_figures(tmp_path: Path) -> None:
    sample = samples.sample_png(tmp_path)
    document = parse_file(sample.path, "image", options=AUTO)
    assert document.kind == "image" and document.warnings == []
    assert [(p.number, p.start, p.empty) for p in document.pages] == [(1, 0, False)]
    assert document.pages[0].end == len(document.markdown)
    (page,) = document.ocr_pages
    assert page.number == 1 and page.words == len(_words(" ".join(samples.PNG_SENTENCES)))
    # Paragraphs (a blank row between sentences in the image) are separated by a blank line.
    assert document.markdown.count("\n\n") == len(samples.PNG_SENTENCES) - 1


def test_every_tiff_frame_is_a_page_with_progress_after_each(tmp_path: Path) -> None:
    sample = samples.sample_tiff(tmp_path)
    seen: list[tuple[int, int]] = []
    document = parse_file(sample.path, "image", options=AUTO, on_progress=lambda d, t: seen.append((d, t)))
    assert [p.number for p in document.pages] == [1, 2] and not any(p.empty for p in document.pages)
    assert [p.number for p in document.ocr_pages] == [1, 2]
    assert seen == [(1, 2), (2, 2)]
    assert "Moraines" not in _page_text(document, 1) and "Moraines" in _page_text(document, 2)


def test_the_exif_orientation_is_applied_before_ocr(tmp_path: Path) -> None:
    sample = samples.sample_jpeg(tmp_path)  # stored on its side, EXIF orientation 6
    document = parse_file(sample.path, "image", options=AUTO)
    _check_expects(sample, document)
    assert document.metadata == {"Author": "Studio Journal"}
    assert document.ocr_pages[0].rotation == 0  # upright from its tag: read once
    # The same pixels without the orientation tag: the first reading is garbage, and only
    # Tesseract's orientation detection, turning the page, gets the text.
    sideways = tmp_path / "sideways.jpg"
    with Image.open(sample.path) as image:
        image.save(sideways, quality=90)
    unturned = parse_file(sideways, "image", options=AUTO)
    assert unturned.ocr_pages[0].rotation == 270
    assert _share_found(" ".join(samples.JPEG_SENTENCES), unturned.markdown) >= 0.95


def test_text_on_a_transparent_background_is_read(tmp_path: Path) -> None:
    path = tmp_path / "transparent.png"
    samples.text_image(samples.PNG_SENTENCES[:1], width=2000, mode="RGBA").save(path)
    document = parse_file(path, "image", options=AUTO)
    assert _share_found(samples.PNG_SENTENCES[0], document.markdown) >= 0.95


def test_a_blank_image_is_empty_not_low_confidence(tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    Image.new("L", (1200, 800), 255).save(path)
    document = parse_file(path, "image", options=AUTO)
    assert document.markdown == "" and [p.empty for p in document.pages] == [True]
    assert document.ocr_pages == [OcrPage(1, 0.0, 0, document.ocr_pages[0].seconds, False)]
    assert document.warnings == []


def test_a_low_confidence_page_is_kept_flagged_and_named_in_a_warning(tmp_path: Path) -> None:
    sample = samples.sample_scanned_pdf(tmp_path)
    strict = ParseOptions(ocr="auto", tessdata=STATUS.tessdata, ocr_low_confidence=99.5)
    document = parse_file(sample.path, "pdf", options=strict)
    assert [p.low_confidence for p in document.ocr_pages] == [True, True]
    _check_expects(sample, document)  # the text is kept
    (warning,) = [w for w in document.warnings if "confidence" in w]
    assert "2 of 2 pages" in warning and "under 99.5" in warning and "pages 1 (" in warning


def test_with_ocr_off_an_image_is_not_read(tmp_path: Path) -> None:
    sample = samples.sample_png(tmp_path)
    document = parse_file(sample.path, "image", options=OFF)
    assert document.markdown == "" and document.ocr_pages == []
    assert [p.empty for p in document.pages] == [True]
    assert any("OCR is off" in w for w in document.warnings)


def test_a_scanned_pdf_is_read_page_by_page(tmp_path: Path) -> None:
    sample = samples.sample_scanned_pdf(tmp_path)
    seen: list[tuple[int, int]] = []
    document = parse_file(sample.path, "pdf", options=AUTO, on_progress=lambda d, t: seen.append((d, t)))
    _check_expects(sample, document)
    assert [p.number for p in document.ocr_pages] == [1, 2]
    assert not any(p.empty for p in document.pages)
    assert seen == [(1, 2)]  # the PDF parser reports pages done before each next page
    assert not any("text layer" in w for w in document.warnings)


def test_with_ocr_off_the_scanned_pdf_has_no_text(tmp_path: Path) -> None:
    sample = samples.sample_scanned_pdf(tmp_path)
    document = parse_file(sample.path, "pdf", options=OFF)
    assert document.markdown == "" and document.ocr_pages == []
    assert [p.empty for p in document.pages] == [True, True]
    assert any("2 of 2 pages have no text layer" in w for w in document.warnings)


def test_the_mixed_pdf_ocrs_only_its_page_without_a_text_layer(tmp_path: Path) -> None:
    sample = samples.sample_mixed_pdf(tmp_path)
    document = parse_file(sample.path, "pdf", options=AUTO)
    assert [p.number for p in document.ocr_pages] == [2]
    _check_expects(sample, document)
    # Page 1 is its text layer, exactly, with its heading from the outline.
    assert _page_text(document, 1).startswith("# Apple Orchards\n" + samples.MIXED_TEXT_SENTENCES[0])
    # The outline entry of the OCRed page marks the line OCR read with its title, once.
    scanned = _page_text(document, 2)
    assert scanned.startswith("# Cider Making\n") and scanned.count("Cider Making") == 1


def test_ocr_always_reads_every_pdf_page_text_layer_or_not(tmp_path: Path) -> None:
    sample = samples.sample_mixed_pdf(tmp_path)
    document = parse_file(sample.path, "pdf", options=ALWAYS)
    assert [p.number for p in document.ocr_pages] == [1, 2]
    _check_expects(sample, document)
    # Page 1 is what OCR read (Tesseract's blank line after the title, where the text layer has
    # a line break), its title marked from the outline.
    assert _page_text(document, 1).startswith("# Apple Orchards\n\nOrchard growers")


def test_a_pdf_page_too_large_for_the_pixel_limit_is_read_at_a_lower_resolution(tmp_path: Path) -> None:
    sample = samples.sample_scanned_pdf(tmp_path)
    a4_at_300_dpi = 2480 * 3508
    small = ParseOptions(ocr="auto", tessdata=STATUS.tessdata, max_image_pixels=a4_at_300_dpi // 2)
    document = parse_file(sample.path, "pdf", options=small)
    _check_expects(sample, document)
    assert sum("was OCRed at 212 dpi instead of 300" in w for w in document.warnings) == 2


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk of ``width x height`` 8-bit greyscale, and an IDAT of one
    row: what Pillow needs to open it (pixels would be read, and fail, only on decoding)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(bytes(width + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_a_30000_x_30000_image_is_too_large_decided_from_its_header_in_the_sandbox(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(30_000, 30_000))
    assert detect(path).kind == "image"
    with pytest.raises(ImageTooLarge) as caught:
        parse_file(path, "image", options=AUTO)
    assert caught.value.error_code == "image_too_large"
    assert "UPLOAD_PIPELINE_MAX_IMAGE_PIXELS" in caught.value.message
    # one limit in the message, ours: Pillow's decompression-bomb check does not speak first
    assert "30000 x 30000" in caught.value.message and "DOS" not in caught.value.message
    # In a child of 256 MB (900 million pixels would not fit): the same answer, not out of memory.
    parser = SandboxedParser(ParseLimits(timeout_seconds=60, memory_mb=256))
    try:
        with pytest.raises(ImageTooLarge):
            parser(path, "image", options=AUTO)
    finally:
        parser.close()
    assert Image.MAX_IMAGE_PIXELS != AUTO.max_image_pixels  # Pillow's own limit is left as it was


@pytest.mark.parametrize(
    ("side", "whose"),
    [(40, "our check: Pillow only warns under twice the limit"), (100, "Pillow's decompression-bomb error")],
)
def test_an_image_over_the_pixel_limit_is_image_too_large(tmp_path: Path, side: int, whose: str) -> None:
    path = tmp_path / "over.png"
    Image.new("L", (side, side), 255).save(path)
    tiny = ParseOptions(ocr="auto", tessdata=STATUS.tessdata, max_image_pixels=1000)
    with pytest.raises(ImageTooLarge, match="1,000"):
        parse_file(path, "image", options=tiny)


@pytest.mark.parametrize(
    "damage",
    ["a PNG signature, then random bytes", "a truncated PNG", "a truncated JPEG", "a TIFF cut at 3/4"],
)
def test_a_damaged_image_is_document_corrupt_without_a_server_path(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "damaged.img"
    if damage.startswith("a PNG signature"):
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    else:
        make = {"PNG": samples.sample_png, "JPEG": samples.sample_jpeg, "TIFF": samples.sample_tiff}
        sample = next(factory for name, factory in make.items() if name in damage)(tmp_path)
        data = sample.path.read_bytes()
        # the TIFF's frame directories are at its end: cut there, Pillow raises TypeError
        path.write_bytes(data[: len(data) * 3 // 4] if "TIFF" in damage else data[: len(data) // 2])
    assert detect(path).kind == "image"
    with pytest.raises(DocumentCorrupt) as caught:
        parse_file(path, "image", options=AUTO)
    assert caught.value.error_code == "document_corrupt"
    assert str(tmp_path) not in caught.value.message and "damaged.img" not in caught.value.message


def test_missing_language_data_is_ocr_failed(tmp_path: Path) -> None:
    sample = samples.sample_png(tmp_path)
    klingon = ParseOptions(ocr="auto", tessdata=STATUS.tessdata, ocr_languages="tlh")
    with pytest.raises(OcrFailed) as caught:
        parse_file(sample.path, "image", options=klingon)
    assert "'tlh'" in caught.value.message and str(STATUS.tessdata) not in caught.value.message


def test_one_tesseract_engine_per_process_and_languages_is_reused(tmp_path: Path) -> None:
    sample = samples.sample_png(tmp_path)
    parse_file(sample.path, "image", options=AUTO)
    with ocr_module.TESSERACT_LOCK:
        engine = ocr_module._engine(AUTO)
    parse_file(sample.path, "image", options=AUTO)
    with ocr_module.TESSERACT_LOCK:
        assert ocr_module._engine(AUTO) is engine


def test_ocr_summary_weights_the_mean_confidence_by_words() -> None:
    pages = [
        OcrPage(2, 90.0, 300, 1.5, False),
        OcrPage(5, 30.0, 100, 0.5, True),
        OcrPage(7, 0.0, 0, 0.2, False),
    ]
    assert ocr_summary(pages) == {
        "pages": [2, 5, 7],
        "mean_confidence": 75.0,
        "low_confidence_pages": [5],
        "words": 400,
        "seconds": 2.2,
    }


class _Ctx:
    def __init__(self, document: object, kind: str) -> None:
        self.job = types.SimpleNamespace(control=JobControl(detected_kind=kind))
        self.document = document

    def check(self) -> None:
        pass

    def save_progress(self, progress: object, persist: object = None, *, control: object = None) -> None:
        pass


def _sample_value(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"kind": "pdf"}) or 0.0


def test_the_parse_stage_records_the_ocr_event_progress_and_metrics(tmp_path: Path) -> None:
    sample = samples.sample_mixed_pdf(tmp_path)
    storage = LocalStorage(tmp_path / "storage")
    key = f"u/raw/{uuid4()}.pdf"
    storage.put_stream(key, io.BytesIO(sample.path.read_bytes()))
    doc = types.SimpleNamespace(
        raw_path=key, filename="orchard.pdf", document_id=uuid4(), user_id="u", meta={}
    )
    pages_before = _sample_value("docingest_ocr_pages_total")
    count_before = _sample_value("docingest_ocr_seconds_count")
    result = ParseDocument(storage, parse_file, options=AUTO).run(_Ctx(doc, "pdf"))  # type: ignore[arg-type]
    (event,) = [payload for name, payload in result.events if name == "ocr_completed"]
    assert event["pages"] == [2] and event["low_confidence_pages"] == []
    assert event["mean_confidence"] >= 80 and event["words"] > 0 and event["seconds"] > 0
    assert result.progress is not None and result.progress.pages_ocred == 1
    assert _sample_value("docingest_ocr_pages_total") == pages_before + 1
    assert _sample_value("docingest_ocr_seconds_count") == count_before + 1
    # With OCR off: nothing about OCR.
    plain = ParseDocument(storage, parse_file, options=OFF).run(_Ctx(doc, "pdf"))  # type: ignore[arg-type]
    assert not any(name == "ocr_completed" for name, _ in plain.events)
    assert plain.progress is not None and plain.progress.pages_ocred is None


def test_a_16_bit_greyscale_scan_is_read(tmp_path: Path) -> None:
    import numpy as np

    eight_bit = np.asarray(samples.text_image(samples.PNG_SENTENCES[:1], width=2000))
    path = tmp_path / "sixteen.tiff"
    Image.fromarray(eight_bit.astype("uint16") * 200).save(path)  # 0..51000 of 65535
    with Image.open(path) as image:
        assert image.mode == "I;16"
    document = parse_file(path, "image", options=AUTO)
    assert _share_found(samples.PNG_SENTENCES[0], document.markdown) >= 0.95


def test_a_scanned_pdf_is_ocred_in_the_bounded_parse_child(tmp_path: Path) -> None:
    sample = samples.sample_scanned_pdf(tmp_path)
    parser = SandboxedParser(ParseLimits(timeout_seconds=60), progress_seconds=0.01)
    seen: list[tuple[int, int]] = []
    try:
        document = parser(sample.path, "pdf", on_progress=lambda d, t: seen.append((d, t)), options=AUTO)
    finally:
        parser.close()
    _check_expects(sample, document)
    assert [p.number for p in document.ocr_pages] == [1, 2] and seen == [(1, 2)]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"ocr": "off"}, "UPLOAD_PIPELINE_OCR=off; set it to auto"),
        ({"ocr": "auto", "ocr_languages": "zzz"}, "apt-get install tesseract-ocr-zzz"),
    ],
    ids=["off by the setting", "no language data"],
)
def test_the_no_text_hint_says_why_ocr_is_off(tmp_path: Path, overrides: dict[str, Any], words: str) -> None:
    from docingest.domain import Stage
    from docingest.settings import Settings
    from docingest.stages import Collaborators, build_handlers
    from docingest.stages.parse import ValidateParse

    settings = Settings(data_dir=tmp_path, environment="test", embedding_provider="hashing", **overrides)
    handlers = build_handlers(
        Collaborators(
            settings=settings,
            storage=LocalStorage(tmp_path / "storage"),
            parser=lambda: parse_file,
            chunker=lambda: None,  # type: ignore[arg-type,return-value]
            embedder=lambda: None,  # type: ignore[arg-type,return-value]
        )
    )
    validate = handlers[Stage.PARSED]
    assert isinstance(validate, ValidateParse)
    assert validate.ocr == "off" and words in validate.ocr_off_because


@pytest.mark.parametrize("turned", [90, 180, 270])
def test_a_page_scanned_on_its_side_or_upside_down_is_read(tmp_path: Path, turned: int) -> None:
    """Turned 90 or 180 degrees, Tesseract reads garbage: orientation detection turns the page
    upright for a second reading. Turned 270, Tesseract's layout analysis reads it as stored."""
    upright = samples.text_image(samples.PNG_SENTENCES)
    path = tmp_path / "sideways.png"
    upright.rotate(turned, expand=True).save(path, dpi=(samples.DPI, samples.DPI))
    document = parse_file(path, "image", options=AUTO)
    (page,) = document.ocr_pages
    assert not page.low_confidence
    assert all(_share_found(s, document.markdown) >= 0.95 for s in samples.PNG_SENTENCES)
    if turned != 270:
        assert page.rotation == 360 - turned
        assert ocr_summary(document.ocr_pages)["rotated_pages"] == {"1": page.rotation}
    # an upright page is read once, as stored
    assert "rotated_pages" not in ocr_summary(
        parse_file(samples.sample_png(tmp_path).path, "image", options=AUTO).ocr_pages
    )
