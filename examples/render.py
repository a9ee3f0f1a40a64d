"""Render the sample pages ``examples/docs/md/*.md`` to HTML, PDF and DOCX.

Usage (from the repository root, with the ``dev`` extra installed)::

    python examples/render.py            # writes examples/docs/{html,pdf,docx}/NAME.{html,pdf,docx}
    python examples/render.py --check    # exit 1 when a committed file differs from a fresh render

One Markdown parse (markdown-it-py, CommonMark) drives all three outputs:

- HTML: markdown-it-py's own renderer inside a minimal page (``<title>`` = the first heading);
- PDF: that HTML laid out by fpdf2's ``write_html`` (real text in the core Helvetica and
  Courier fonts, so the pages must be Latin-1; headings, paragraphs, lists, code blocks);
- DOCX: python-docx, walking the same tokens: headings as ``Heading N`` styles, list items as
  ``List Bullet``/``List Number``, code blocks in a ``Source Code`` paragraph style and inline
  code in Courier New.

Every output is byte-for-byte reproducible: fixed creation dates and producer in the PDF, fixed
core properties and ZIP timestamps in the DOCX. Only the render needs these packages; the
rendered files are committed and ingesting them needs nothing beyond docingest itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import io
import sys
import zipfile
from pathlib import Path

import docx
from docx.enum.style import WD_STYLE_TYPE
from docx.shared import Pt
from fpdf import FPDF
from markdown_it import MarkdownIt
from markdown_it.token import Token

HERE = Path(__file__).resolve().parent
DOCS = HERE / "docs"
SOURCES = DOCS / "md"
#: Creation and modification date written into every PDF and DOCX (reproducible output).
FIXED_DATE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
AUTHOR = "docingest"
PRODUCER = "docingest examples/render.py"
CODE_FONT = "Courier New"

_md = MarkdownIt("commonmark")


def title_of(tokens: list[Token]) -> str:
    """Text of the first heading, or '' when the page has none."""
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            return tokens[i + 1].content
    return ""


def render_html(source: str) -> str:
    """A complete UTF-8 HTML page for Markdown ``source``."""
    tokens = _md.parse(source)
    body = _md.renderer.render(tokens, _md.options, {})
    title = html.escape(title_of(tokens))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )


def render_pdf(source: str) -> bytes:
    """A PDF of Markdown ``source`` (A4, text layer, fixed metadata).

    Raises:
        fpdf.errors.FPDFUnicodeEncodingException: a character outside Latin-1 (core fonts).
    """
    tokens = _md.parse(source)
    body = _md.renderer.render(tokens, _md.options, {})
    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(title_of(tokens))
    pdf.set_author(AUTHOR)
    pdf.set_producer(PRODUCER)
    pdf.set_creator(PRODUCER)
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.write_html(body)
    return bytes(pdf.output())


def _add_runs(paragraph: docx.text.paragraph.Paragraph, inline: Token) -> None:
    """Append the inline children of a Markdown block to ``paragraph`` as runs."""
    bold = italic = False
    for child in inline.children or []:
        if child.type == "text":
            run = paragraph.add_run(child.content)
            run.bold, run.italic = bold or None, italic or None
        elif child.type == "code_inline":
            run = paragraph.add_run(child.content)
            run.font.name = CODE_FONT
        elif child.type in ("softbreak", "hardbreak"):
            paragraph.add_run(" ")
        elif child.type in ("strong_open", "strong_close"):
            bold = child.type == "strong_open"
        elif child.type in ("em_open", "em_close"):
            italic = child.type == "em_open"
        elif child.type in ("link_open", "link_close"):
            continue  # the link's text follows as text tokens
        else:
            raise ValueError(f"render.py does not handle inline Markdown {child.type!r}")


def render_docx(source: str) -> bytes:
    """A DOCX of Markdown ``source``, reproducible byte for byte.

    Raises:
        ValueError: for Markdown the renderer does not handle (tables, images, quotes).
    """
    tokens = _md.parse(source)
    document = docx.Document()
    code_style = document.styles.add_style("Source Code", WD_STYLE_TYPE.PARAGRAPH)
    code_style.base_style = document.styles["Normal"]
    code_style.font.name = CODE_FONT
    code_style.font.size = Pt(9)
    props = document.core_properties
    props.title, props.author, props.last_modified_by = title_of(tokens), AUTHOR, AUTHOR
    props.created = props.modified = FIXED_DATE.replace(tzinfo=None)
    props.revision = 1

    lists: list[str] = []  # the open lists' styles, innermost last
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            document.add_heading(tokens[i + 1].content, level=int(tok.tag[1]))
        elif tok.type == "bullet_list_open":
            lists.append("List Bullet")
        elif tok.type == "ordered_list_open":
            lists.append("List Number")
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif tok.type == "paragraph_open":
            style = lists[-1] if lists else None
            _add_runs(document.add_paragraph(style=style), tokens[i + 1])
        elif tok.type in ("fence", "code_block"):
            paragraph = document.add_paragraph(style=code_style)
            lines = tok.content.rstrip("\n").split("\n")
            for n, line in enumerate(lines):
                run = paragraph.add_run(line)
                if n < len(lines) - 1:
                    run.add_break()
        elif tok.type in ("blockquote_open", "table_open", "html_block", "hr"):
            raise ValueError(f"render.py does not handle Markdown {tok.type!r}")
    raw = io.BytesIO()
    document.save(raw)
    return _fixed_zip_times(raw.getvalue())


def _fixed_zip_times(data: bytes) -> bytes:
    """The same ZIP with every member's timestamp set to :data:`FIXED_DATE`."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_DATE.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


RENDERERS = {
    "html": lambda s: render_html(s).encode("utf-8"),
    "pdf": render_pdf,
    "docx": render_docx,
}


def outputs(sources: Path = SOURCES) -> dict[Path, bytes]:
    """``{output path: bytes}`` for every source page under ``sources``, every format."""
    result: dict[Path, bytes] = {}
    for src in sorted(sources.glob("*.md")):
        text = src.read_text(encoding="utf-8")
        for ext, render in RENDERERS.items():
            result[DOCS / ext / f"{src.stem}.{ext}"] = render(text)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed files instead of writing them"
    )
    args = parser.parse_args(argv)
    rendered = outputs()
    expected = set(rendered)
    stale = [p for ext in RENDERERS for p in (DOCS / ext).glob("*") if p not in expected]
    if args.check:
        differ = [p for p, data in rendered.items() if not p.is_file() or p.read_bytes() != data]
        for p in differ + stale:
            print(f"out of date: {p.relative_to(HERE)}", file=sys.stderr)
        return 1 if differ or stale else 0
    for p in stale:
        p.unlink()
    for p, data in rendered.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    print(
        f"rendered {len(rendered)} files from {len(rendered) // len(RENDERERS)} pages under "
        f"{DOCS.relative_to(HERE.parent)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
