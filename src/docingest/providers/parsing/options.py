"""The parse options of an installation: size limits, and whether OCR can run here.

OCR is Tesseract through tesserocr (its wheel carries libtesseract; the language data,
``<lang>.traineddata``, comes from the system: Debian's ``tesseract-ocr-eng`` puts it in
``/usr/share/tesseract-ocr/5/tessdata``). ``UPLOAD_PIPELINE_OCR=auto`` turns OCR on only
when tesserocr imports and every language of ``UPLOAD_PIPELINE_OCR_LANGUAGES`` is found;
``always`` insists, and says what is missing (``InvalidConfiguration``) instead of
silently leaving scanned pages out.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docingest.errors import InvalidConfiguration
from docingest.providers.parsing.base import ParseOptions

#: Where Debian and other distributions put Tesseract's language data, tried in order after
#: ``UPLOAD_PIPELINE_TESSDATA_PREFIX`` / ``TESSDATA_PREFIX``.
TESSDATA_DIRS: tuple[str, ...] = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)


@dataclass(frozen=True)
class OcrStatus:
    """Whether OCR can run here.

    Attributes:
        available: tesserocr imports and every requested language's data was found.
        tessdata: the directory holding the language data (None when not found).
        version: Tesseract's version (``'5.5.4'``), None when tesserocr is missing.
        reason: why OCR is not available (None when it is), in words a user can act on.
    """

    available: bool
    tessdata: str | None
    version: str | None
    reason: str | None


@functools.cache
def ocr_status(languages: str = "eng", prefix: str | None = None) -> OcrStatus:
    """Find tesserocr and the data of ``languages`` (``'eng+deu'``), once per process.

    Args:
        languages: Tesseract language codes joined by ``+``.
        prefix: a tessdata directory to try first (the setting).

    Returns:
        An :class:`OcrStatus`; never raises.
    """
    try:
        import tesserocr
    except ImportError as exc:  # the wheel is a dependency: a broken install
        return OcrStatus(False, None, None, f"the tesserocr package cannot be imported ({exc})")
    version = tesserocr.tesseract_version().split()[1] if tesserocr.tesseract_version() else None
    wanted = [lang for lang in languages.split("+") if lang]
    candidates = [d for d in (prefix, os.environ.get("TESSDATA_PREFIX"), *TESSDATA_DIRS) if d]
    for directory in candidates:
        if all((Path(directory) / f"{lang}.traineddata").is_file() for lang in wanted):
            return OcrStatus(True, str(Path(directory)), version, None)
    missing = " ".join(f"tesseract-ocr-{lang}" for lang in wanted)
    return OcrStatus(
        False,
        None,
        version,
        f"no Tesseract language data for {'+'.join(wanted)} in {', '.join(candidates)}: "
        f"install it (apt-get install {missing}) or set UPLOAD_PIPELINE_TESSDATA_PREFIX",
    )


def resolve_ocr(settings: Any) -> tuple[str, str | None, str | None]:
    """``(mode, tessdata, why_off)``: the OCR mode that runs here (``'auto'`` becomes ``'off'``
    when OCR is not available), the language data's directory, and, when the mode is ``'off'``,
    what would turn it on, in words a user can act on.

    Raises:
        InvalidConfiguration: ``UPLOAD_PIPELINE_OCR=always`` and OCR is not available (the
            message says what to install).
    """
    if settings.ocr == "off":
        return "off", None, "UPLOAD_PIPELINE_OCR=off; set it to auto to read scanned pages"
    status = ocr_status(settings.ocr_languages, settings.tessdata_prefix)
    if status.available:
        return settings.ocr, status.tessdata, None
    if settings.ocr == "always":
        raise InvalidConfiguration(f"UPLOAD_PIPELINE_OCR=always, but {status.reason}")
    return "off", None, status.reason


def parse_options(settings: Any) -> ParseOptions:
    """The :class:`ParseOptions` of ``settings``, with OCR resolved against this machine
    (:func:`resolve_ocr`).

    Raises:
        InvalidConfiguration: ``UPLOAD_PIPELINE_OCR=always`` and OCR is not available.
    """
    mode, tessdata, _ = resolve_ocr(settings)
    return ParseOptions(
        ocr=mode,
        ocr_languages=settings.ocr_languages,
        ocr_dpi=settings.ocr_dpi,
        ocr_low_confidence=settings.ocr_low_confidence,
        ocr_seconds_per_page=settings.ocr_seconds_per_page,
        tessdata=tessdata,
        max_spreadsheet_cells=settings.max_spreadsheet_cells,
        max_unpacked_bytes=settings.max_unpacked_mb * 1024 * 1024,
        max_image_pixels=settings.max_image_pixels,
    )
