"""HTML -> Markdown via BeautifulSoup (lxml) and markdownify.

Boilerplate is dropped first: ``script``, ``style``, ``noscript``, ``template``,
``nav``, ``header``, ``footer`` and elements of class ``navheader``/``navfooter``
(the Prev/Up/Next bars of the PostgreSQL manual) or ``toc`` (its tables of
contents, which repeat the headings). Headings become ATX (``#``),
``<pre>`` becomes fenced code, relative links keep only their text (absolute
http(s) links stay as ``[text](url)``), images keep only their alt text.
"""

from __future__ import annotations

import re
import warnings as pywarnings
from pathlib import Path

from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning
from markdownify import MarkdownConverter

from docingest.providers.parsing.base import DEFAULT_OPTIONS, PageProgress, ParsedDocument, ParseOptions
from docingest.providers.parsing.decoding import decode_text

_DROP_TAGS = ["script", "style", "noscript", "template", "nav", "header", "footer"]
_DROP_CLASSES = ".navheader, .navfooter, .toc"
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""\A\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._:-]+)""", re.IGNORECASE)
# lxml turns NUL into U+FFFD and fails on lone surrogates; html.parser keeps both.
_LXML_UNSAFE = re.compile("[\x00\ud800-\udfff]")
_BLANK_RUN = re.compile(r"\n(?:[ \t]*\n){2,}")
_META_NAMES = {
    "description": "Description",
    "author": "Author",
    "keywords": "Keywords",
    "generator": "Generator",
}


class _Converter(MarkdownConverter):
    """markdownify tuned for retrieval text: fewer URLs and escapes."""

    def convert_a(self, el, text, parent_tags):
        href = el.get("href") or ""
        if not href.startswith(("http://", "https://")):
            return text
        el.attrs.pop("title", None)
        return super().convert_a(el, text, parent_tags)  # type: ignore[misc]  # made at runtime by markdownify

    def convert_img(self, el, text, parent_tags):
        return el.get("alt") or ""

    def convert_pre(self, el, text, parent_tags):
        fenced = super().convert_pre(el, text, parent_tags)  # type: ignore[misc]  # made at runtime by markdownify
        longest = max((len(m) for m in re.findall(r"`{3,}", text or "")), default=0)
        if longest:  # the code itself contains a fence: use a longer one around it
            fence = "`" * (longest + 1)
            fenced = fenced.replace("```", fence, 1)
            fenced = fence.join(fenced.rsplit("```", 1))
        return fenced


_CONVERTER = _Converter(
    heading_style="ATX",
    bullets="-",
    escape_underscores=False,
    escape_asterisks=False,
    strip_document="strip",
)


def _declared_encoding(data: bytes) -> str | None:
    """The charset named by ``<meta>`` or the XML prolog in the first 4 KiB, if any."""
    head = data[:4096]
    match = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    return match.group(1).decode("ascii") if match else None


class HtmlParser:
    """Converts an HTML page to Markdown, without site navigation."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the HTML file at ``path``.

        Decoding: a BOM wins, then ``<meta charset>`` / the XML prolog, then UTF-8
        with undecodable bytes replaced (and a warning).

        Returns:
            A ``ParsedDocument`` of kind ``'html'``, no pages; runs of blank lines
            collapsed to one; ``metadata`` has ``Title`` (from ``<title>``),
            ``Description``/``Author``/``Keywords``/``Generator`` (from ``<meta
            name>``), ``Language`` (``<html lang>``) and ``Encoding``, when present.

        Raises:
            DocumentCorrupt: the bytes are not text in their encoding (see ``parsing.decoding``).
            OSError: the file cannot be read. HTML markup itself never fails to parse.
        """
        return html_to_markdown(path.read_bytes())


def html_to_markdown(data: bytes, *, declared_encoding: str | None = None) -> ParsedDocument:
    """Convert an HTML page's bytes to Markdown (what :class:`HtmlParser` does to a file; also
    used for EPUB chapters and HTML e-mail bodies).

    Args:
        data: the page's bytes.
        declared_encoding: a charset the transport states (an e-mail part's ``charset``):
            after a BOM, it wins over ``<meta charset>`` / the XML prolog, as in browsers.

    Returns:
        A ``ParsedDocument`` of kind ``'html'`` as :meth:`HtmlParser.parse` describes.

    Raises:
        DocumentCorrupt: the bytes are not text in their encoding (see ``parsing.decoding``).
    """
    decoded = decode_text(data, declared_encoding=declared_encoding or _declared_encoding(data))
    warnings = list(decoded.warnings)
    features = "lxml"
    if _LXML_UNSAFE.search(decoded.text):
        features = "html.parser"
        warnings.append("NUL or lone surrogate characters found: parsed with html.parser, not lxml")
    with pywarnings.catch_warnings():
        pywarnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(decoded.text, features)

    metadata = _metadata(soup)
    metadata["Encoding"] = decoded.encoding
    for tag in soup(_DROP_TAGS):
        tag.decompose()
    for tag in soup.select(_DROP_CLASSES):
        tag.decompose()
    for tag in soup(["head", "title"]):
        tag.decompose()

    markdown = _CONVERTER.convert_soup(soup.body or soup)
    markdown = _BLANK_RUN.sub("\n\n", markdown).strip("\n")
    return ParsedDocument(markdown=markdown, kind="html", pages=[], metadata=metadata, warnings=warnings)


def _metadata(soup: BeautifulSoup) -> dict[str, str]:
    """Title, a few ``<meta name>`` values and the language, whitespace-folded."""
    metadata: dict[str, str] = {}
    if soup.title is not None:
        title = " ".join(soup.title.get_text().split())
        if title:
            metadata["Title"] = title
    for meta in soup.find_all("meta", attrs={"name": True, "content": True}):
        key = _META_NAMES.get(str(meta["name"]).lower())
        value = " ".join(str(meta["content"]).split())
        if key and value:
            metadata[key] = value
    html = soup.find("html")
    lang = (html.get("lang") or html.get("xml:lang")) if html is not None else None
    if lang:
        metadata["Language"] = str(lang)
    return metadata
