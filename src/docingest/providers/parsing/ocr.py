"""OCR with Tesseract (through tesserocr): images (PNG, JPEG, TIFF, WebP) and the PDF pages
without a text layer (:func:`ocr_image`, called by ``pdf.py``).

One ``PyTessBaseAPI`` is kept per process and ``(languages, tessdata)``, made on first use and
reused (it holds the loaded language model); it is not thread-safe, so its calls hold
:data:`TESSERACT_LOCK`. The wheel's libtesseract is built without OpenMP: one page is OCRed on
one core, and ``OMP_THREAD_LIMIT`` changes nothing.

Images are opened by Pillow, which reads the header only: the pixel count is checked against
``ParseOptions.max_image_pixels`` before any pixel is decoded (Pillow's own decompression-bomb
check is off while the image is open: one limit, one message). EXIF orientation is applied; every frame of a TIFF is a page.
"""

from __future__ import annotations

import re
import struct
import threading
import time
import warnings as py_warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from PIL import Image

try:  # imported here so that the parse children's forkserver preloads it (preloaded.py)
    import tesserocr
except ImportError:  # a broken install: options.ocr_status turns OCR off
    tesserocr = None

from docingest.errors import DocumentCorrupt, ImageTooLarge, OcrFailed, scrub_paths
from docingest.providers.parsing.base import (
    DEFAULT_OPTIONS,
    OcrPage,
    PageJoiner,
    PageProgress,
    ParsedDocument,
    ParseOptions,
    escape_markdown,
    numbers_text,
)

#: Serialises every Tesseract call of this process (a ``PyTessBaseAPI`` is not thread-safe).
TESSERACT_LOCK = threading.Lock()

_ENGINES: dict[tuple[str, str | None], Any] = {}
_MAX_LISTED_PAGES = 10
#: Below this a declared resolution is a screen default (72, 96 dpi is fine), not a scan's.
_MIN_SOURCE_DPI = 70
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
#: What Pillow raises on a damaged, truncated or unreadable image (``UnidentifiedImageError``
#: and "image file is truncated" are ``OSError``s; some plugins raise ``SyntaxError``; a TIFF
#: frame cut short, ``TypeError: Missing dimensions``).
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError, TypeError)
#: Multi-frame formats whose frames are pages (others: animations, only the first is read).
_PAGED_FORMATS = frozenset({"TIFF"})
_EXIF_METADATA = {0x010E: "Title", 0x013B: "Author", 0x8298: "Copyright"}
_EXIF_DATETIME = 0x0132
_EXIF_ORIENTATION = 0x0112
#: EXIF orientation -> the turn that shows the picture upright (as ``ImageOps.exif_transpose``).
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_PNG_METADATA = {"Title": "Title", "Author": "Author", "Description": "Subject", "Copyright": "Copyright"}


def _engine(options: ParseOptions) -> Any:
    """This process's ``PyTessBaseAPI`` for ``options``' languages (call with the lock held).

    Raises:
        OcrFailed: tesserocr is missing, or Tesseract cannot load the language data.
    """
    key = (options.ocr_languages, options.tessdata)
    api = _ENGINES.get(key)
    if api is None:
        if tesserocr is None:
            raise OcrFailed("OCR is not available: the tesserocr package cannot be imported")
        kwargs: dict[str, Any] = {"lang": options.ocr_languages, "psm": tesserocr.PSM.AUTO}
        if options.tessdata:
            kwargs["path"] = options.tessdata
        try:
            api = tesserocr.PyTessBaseAPI(**kwargs)
        except RuntimeError as exc:
            raise OcrFailed(
                f"Tesseract could not load the language data {options.ocr_languages!r} "
                f"({scrub_paths(str(exc))}): install it (apt-get install tesseract-ocr-eng) "
                "or fix UPLOAD_PIPELINE_OCR_LANGUAGES / UPLOAD_PIPELINE_TESSDATA_PREFIX"
            ) from exc
        _ENGINES[key] = api
    return api


def _grey(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit greyscale, transparency flattened onto white (text drawn on a
    transparent background would otherwise turn black on black)."""
    if image.mode == "L":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # 16-bit or float scans
        wide = image.convert("I") if image.mode.startswith("I;16") else image
        low, high = (float(v) for v in cast(tuple[float, float], wide.getextrema()))
        scale = 255.0 / ((high - low) or 1.0)
        return wide.point(lambda v: v * scale - low * scale).convert("L")
    return image.convert("L")


def clean_ocr_text(text: str) -> str:
    """Tesseract's text with form feeds and trailing spaces removed and runs of blank lines
    made one (paragraphs stay separated by one blank line)."""
    text = _TRAILING_SPACE.sub("", text.replace("\f", "").replace("\r\n", "\n"))
    return _BLANK_LINES.sub("\n\n", text).strip("\n")


def ocr_image(
    image: Image.Image,
    number: int,
    options: ParseOptions,
    *,
    dpi: int | None = None,
    started: float | None = None,
) -> tuple[str, OcrPage]:
    """Read the text of one page image with Tesseract.

    Args:
        image: the page (any Pillow mode; it is OCRed as 8-bit greyscale).
        number: the page's 1-based number (for the :class:`OcrPage`).
        options: ``ocr_languages``, ``tessdata`` and ``ocr_low_confidence`` are used.
        dpi: the image's resolution in dots per inch when known (a rendered PDF page, a scan
            that says so); None lets Tesseract estimate it from the text's height.
        started: ``time.monotonic()`` when the page's work began (rendering included);
            default now.

    Returns:
        ``(text, page)``: the text (:func:`clean_ocr_text`: paragraphs separated by a blank
        line, ``""`` when nothing was read; not yet escaped: :func:`escape_markdown`) and its :class:`OcrPage`
        (mean word confidence 0-100, words, seconds; ``low_confidence`` when words were read
        with a mean confidence below ``options.ocr_low_confidence``: a blank page is empty,
        not low).

    Raises:
        OcrFailed: Tesseract cannot load its language data or fails on the image.
    """
    started = time.monotonic() if started is None else started
    grey = _grey(image)
    text, confidences = _read(grey, number, options, dpi)
    rotation = 0
    if not confidences or sum(confidences) / len(confidences) < options.ocr_low_confidence:
        # a page scanned on its side reads as garbage: ask Tesseract's orientation detection
        # (osd.traineddata) and read the page again turned upright, keeping the better reading
        turn = _orientation(grey, options)
        if turn:
            turned_text, turned = _read(grey.rotate(turn, expand=True), number, options, dpi)
            if len(turned) and sum(turned) / len(turned) > (
                sum(confidences) / len(confidences) if confidences else 0
            ):
                text, confidences, rotation = turned_text, turned, turn
    del grey
    words = len(confidences)
    confidence = round(sum(confidences) / words, 1) if words else 0.0
    page = OcrPage(
        number=number,
        confidence=confidence,
        words=words,
        seconds=round(time.monotonic() - started, 3),
        low_confidence=words > 0 and confidence < options.ocr_low_confidence,
        rotation=rotation,
    )
    return clean_ocr_text(text), page


def _read(grey: Image.Image, number: int, options: ParseOptions, dpi: int | None) -> tuple[str, list[int]]:
    """Tesseract's text and word confidences (0-100) of the greyscale page ``grey``.

    Raises:
        OcrFailed: Tesseract cannot load its language data or fails on the image.
    """
    data, (width, height) = grey.tobytes(), grey.size
    with TESSERACT_LOCK:
        api = _engine(options)
        try:
            api.SetImageBytes(data, width, height, 1, width)
            if dpi is not None and dpi >= _MIN_SOURCE_DPI:
                api.SetSourceResolution(int(dpi))
            text = api.GetUTF8Text()
            confidences = list(api.AllWordConfidences())
        except RuntimeError as exc:
            raise OcrFailed(f"Tesseract failed on page {number} ({scrub_paths(str(exc))})") from exc
        finally:
            api.Clear()
    return text, confidences


#: Orientation detection's confidence under which its answer is not acted on.
_MIN_ORIENTATION_CONFIDENCE = 2.0


def _orientation(grey: Image.Image, options: ParseOptions) -> int:
    """The turn, in degrees counter-clockwise (90, 180, 270; Pillow's ``rotate``), that shows
    the page upright, by Tesseract's orientation and script detection; 0 when the page is
    upright, when the detection is unsure or fails, or without ``osd.traineddata``."""
    if tesserocr is None:
        return 0
    directory = options.tessdata or ""
    if directory and not (Path(directory) / "osd.traineddata").is_file():
        return 0
    with TESSERACT_LOCK:
        api = _ENGINES.get(("osd", options.tessdata))
        try:
            if api is None:
                kwargs: dict[str, Any] = {"lang": "osd", "psm": tesserocr.PSM.OSD_ONLY}
                if options.tessdata:
                    kwargs["path"] = options.tessdata
                api = tesserocr.PyTessBaseAPI(**kwargs)
                _ENGINES[("osd", options.tessdata)] = api
            api.SetImage(grey)
            found = api.DetectOrientationScript() or {}
        except RuntimeError:  # too little text to tell, or no osd data
            return 0
        finally:
            if api is not None:
                api.Clear()
    degrees = int(found.get("orient_deg") or 0) % 360
    if degrees not in (90, 180, 270) or float(found.get("orient_conf") or 0) < _MIN_ORIENTATION_CONFIDENCE:
        return 0
    return degrees


def low_confidence_warning(
    pages: Sequence[OcrPage], options: ParseOptions, what: str = "pages"
) -> str | None:
    """The warning naming the pages OCR read with low confidence (None when there are none)."""
    low = [p for p in pages if p.low_confidence]
    if not low:
        return None
    shown = ", ".join(f"{p.number} ({p.confidence:.0f})" for p in low[:_MAX_LISTED_PAGES])
    more = f" and {len(low) - _MAX_LISTED_PAGES} more" if len(low) > _MAX_LISTED_PAGES else ""
    return (
        f"OCR read {len(low)} of {len(pages)} {what} with a mean word confidence under "
        f"{options.ocr_low_confidence:g} ({what} {shown}{more}): their text is kept but may be "
        "wrong; a cleaner scan at 300 dpi reads better"
    )


def check_pixels(width: int, height: int, options: ParseOptions, what: str = "the image") -> None:
    """Raise :class:`ImageTooLarge` when ``width x height`` passes ``options.max_image_pixels``."""
    if width * height > options.max_image_pixels:
        raise ImageTooLarge(
            f"{what} is {width} x {height} pixels ({width * height:,}), over the limit of "
            f"{options.max_image_pixels:,} (UPLOAD_PIPELINE_MAX_IMAGE_PIXELS): scale it down "
            "(300 dpi is enough for OCR) and upload it again"
        )


class ImageParser:
    """Reads the text of an image (PNG, JPEG, TIFF, WebP) by OCR; each TIFF frame is a page."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """OCR the image at ``path``; ``on_progress(frames_read, frames_total)`` after each frame.

        Returns:
            A ``ParsedDocument`` of kind ``'image'``: one ``ParsedPage`` per page (every frame
            of a TIFF; the first frame only of an animated PNG or WebP, with a warning), the
            pages' OCR text joined by :data:`PAGE_SEPARATOR`, a frame without text ``empty``;
            ``ocr_pages`` one :class:`OcrPage` per frame OCRed; ``metadata`` from EXIF
            (``Title`` = ImageDescription, ``Author`` = Artist, ``Copyright``, ``CreationDate``
            = DateTime as ISO 8601) or PNG text chunks. EXIF orientation is applied before OCR.
            With ``options.ocr == 'off'`` nothing is OCRed: the pages are empty, with a warning
            (the validation stage then fails ``no_text`` saying OCR is off).

        Raises:
            ImageTooLarge: a frame has more than ``options.max_image_pixels`` pixels (decided
                from the header, before decoding).
            DocumentCorrupt: Pillow cannot identify or decode the image (damaged, truncated).
            OcrFailed: Tesseract cannot load its language data or fails on a frame.
            FileNotFoundError: ``path`` is not a file.
        """
        if not path.is_file():
            raise FileNotFoundError(path)
        # Pillow's decompression-bomb check is off while the image is opened (opening reads the
        # header only): ours (check_pixels) runs on every frame before its pixels are decoded,
        # with the installation's limit and one message.
        pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with py_warnings.catch_warnings():
                py_warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    return _parse_image(image, options, on_progress)
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(
                f"the image has more pixels than the limit of {options.max_image_pixels:,} "
                f"(UPLOAD_PIPELINE_MAX_IMAGE_PIXELS; {_cause(exc)}): scale it down and upload it again"
            ) from exc
        except (FileNotFoundError, PermissionError):
            raise
        except _IMAGE_ERRORS as exc:
            raise DocumentCorrupt(
                f"the image cannot be read ({type(exc).__name__}: {_cause(exc)}); it may be truncated "
                "or damaged: export it again as PNG or JPEG and upload it"
            ) from exc
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit


def _cause(exc: BaseException) -> str:
    """A library error's text for a user: without the server path of the file."""
    return scrub_paths(str(exc))


def _parse_image(
    image: Image.Image, options: ParseOptions, on_progress: PageProgress | None
) -> ParsedDocument:
    """The document of an opened image (see :meth:`ImageParser.parse`)."""
    warnings: list[str] = []
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format not in _PAGED_FORMATS:
        warnings.append(
            f"the {image.format} image is animated ({frames} frames): only its first frame is read"
        )
        frames = 1
    # before anything reads the pixels (a PNG's getexif() decodes the whole image)
    check_pixels(image.width, image.height, options, "frame 1" if frames > 1 else "the image")
    metadata = _metadata(image)
    what = "frames" if frames > 1 else "images"
    joiner = PageJoiner()
    ocr_pages: list[OcrPage] = []
    for index in range(frames):
        number = index + 1
        if index:
            try:
                image.seek(index)
                image.size  # noqa: B018 - a frame cut short fails here, not at the seek
            except _IMAGE_ERRORS as exc:
                warnings.append(
                    f"frames {number} to {frames} of {frames} could not be read ({type(exc).__name__}: "
                    f"{_cause(exc)}); the file may be truncated: the frames before them were read"
                )
                break
        check_pixels(image.width, image.height, options, f"frame {number}" if frames > 1 else "the image")
        text = ""
        if options.ocr != "off":
            started = time.monotonic()
            dpi = _dpi(image)
            grey = _upright_grey(image)
            if index == frames - 1 and grey is not image:
                image.close()  # frees the decoded pixels (3 bytes each in RGB) before OCR
            text, page = ocr_image(grey, number, options, dpi=dpi, started=started)
            del grey
            text = escape_markdown(text)
            ocr_pages.append(page)
        joiner.add(number, text)
        if on_progress is not None:
            on_progress(number, frames)
    if options.ocr == "off":
        warnings.append("OCR is off (UPLOAD_PIPELINE_OCR=off): the image's text was not read")
    else:
        low = low_confidence_warning(ocr_pages, options, what)
        if low:
            warnings.append(low)
        empty = [p.number for p in joiner.pages if p.empty]
        if empty and frames > 1:
            warnings.append(f"OCR found no text in {len(empty)} of {frames} frames: {numbers_text(empty)}")
    return ParsedDocument(
        markdown=joiner.markdown,
        kind="image",
        pages=joiner.pages,
        metadata=metadata,
        warnings=warnings,
        ocr_pages=ocr_pages,
    )


def _upright_grey(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit greyscale (:func:`_grey`), turned as its EXIF orientation says.

    The turn is made on the greyscale copy (a third of an RGB image's bytes), as Pillow's
    ``ImageOps.exif_transpose`` would turn it.
    """
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except _IMAGE_ERRORS:  # a damaged EXIF block: read the image as stored
        orientation = 1
    grey = _grey(image)
    method = _ORIENTATIONS.get(orientation)
    return grey.transpose(method) if method is not None else grey


def _dpi(image: Image.Image) -> int | None:
    """The horizontal resolution the image declares, dots per inch (None when it declares none)."""
    dpi = image.info.get("dpi")
    try:
        value = float(dpi[0]) if isinstance(dpi, tuple) else None
    except (TypeError, ValueError):
        return None
    return round(value) if value else None


def _metadata(image: Image.Image) -> dict[str, str]:
    """Document properties from EXIF (JPEG, TIFF, WebP) or PNG text chunks; empty ones left out."""
    metadata: dict[str, str] = {}
    try:
        exif = image.getexif()
    except _IMAGE_ERRORS:  # a damaged EXIF block costs the properties only
        exif = Image.Exif()
    for tag, key in _EXIF_METADATA.items():
        value = exif.get(tag)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and value.strip("\x00 "):
            metadata[key] = value.strip("\x00 ")
    stamp = exif.get(_EXIF_DATETIME)
    if isinstance(stamp, str):
        match = re.fullmatch(r"\s*(\d{4}):(\d{2}):(\d{2})[ T](\d{2}:\d{2}:\d{2})\s*\x00?", stamp)
        if match:
            metadata["CreationDate"] = f"{match[1]}-{match[2]}-{match[3]}T{match[4]}"
    for name, key in _PNG_METADATA.items():
        value = image.info.get(name)
        if isinstance(value, str) and value.strip() and key not in metadata:
            metadata[key] = value.strip()
    return metadata
