"""E-mail -> Markdown-ish text: ``.eml`` (RFC 5322/MIME, the stdlib's ``email`` with
``policy.default``) and Outlook ``.msg`` (extract-msg), in the same shape::

    # <Subject>

    From: ...
    To: ...
    Cc: ...
    Date: <ISO 8601>

    <the text/plain body, or the HTML body converted when there is no plain one>

    ## Attachments

    - report.pdf (application/pdf, 120 KB)

    ## Attached message: <its subject>
    ...

A message attached to a message (``message/rfc822``, an embedded .msg) is rendered in place,
one heading level down; the files attached (to it or to the message) are listed under
``## Attachments`` and returned in ``ParsedDocument.attachments`` so each can be ingested as
its own document. Inline images of an HTML body (``Content-ID`` parts of
``multipart/related``, Outlook's hidden attachments) are neither listed nor returned.
"""

from __future__ import annotations

import email
import email.errors
import mimetypes
import struct
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, MIMEPart
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from docingest.errors import DocumentCorrupt, scrub_paths
from docingest.providers.parsing.base import (
    DEFAULT_OPTIONS,
    Attachment,
    PageProgress,
    ParsedDocument,
    ParseOptions,
)
from docingest.providers.parsing.decoding import decode_text
from docingest.providers.parsing.html import html_to_markdown

#: Headings deeper than this are written at this level (Markdown has six).
_MAX_LEVEL = 6
#: Messages nested deeper than this are not rendered (a warning says so).
_MAX_DEPTH = 8
#: What ``email``'s header parser raises on a header it cannot read (known bugs of
#: ``_header_value_parser`` included).
_HEADER_ERRORS = (email.errors.MessageError, ValueError, IndexError, TypeError, AttributeError, LookupError)
_NO_SUBJECT = "(no subject)"


@dataclass
class _Mail:
    """One message, as both readers fill it in."""

    subject: str = ""
    sender: str = ""
    to: str = ""
    cc: str = ""
    date: str = ""
    message_id: str = ""
    body: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    nested: list[_Mail] = field(default_factory=list)


class EmlParser:
    """Converts an RFC 5322 e-mail message (``.eml``) to Markdown-ish text."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the e-mail at ``path``.

        Returns:
            A ``ParsedDocument`` of kind ``'eml'``, no pages, shaped as the module docstring
            shows; ``metadata`` ``Title`` and ``Subject`` (the subject), ``From``, ``To``,
            ``Cc``, ``Date`` (ISO 8601 when it parses, else as written) and ``MessageId``, empty
            ones left out; ``attachments`` every attached file (of nested messages too), in
            order; warnings for MIME defects (a message read as far as it goes), undecodable
            body parts (skipped) and nesting over eight levels.

        Raises:
            OSError: the file cannot be read. MIME itself never fails to parse: a damaged
                message is read as far as possible, with a warning.
        """
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        warnings: list[str] = []
        mail = _read_eml(message, warnings, depth=0)
        defects = sorted({type(d).__name__ for part in message.walk() for d in part.defects})
        if defects:
            warnings.append(
                f"the message's MIME structure is damaged ({', '.join(defects)}): read as far as it goes"
            )
        return _document(mail, "eml", warnings)


class MsgParser:
    """Converts an Outlook message (``.msg``, MS-OXMSG) to Markdown-ish text."""

    def parse(
        self, path: Path, options: ParseOptions = DEFAULT_OPTIONS, on_progress: PageProgress | None = None
    ) -> ParsedDocument:
        """Parse the Outlook message at ``path``.

        Returns:
            A ``ParsedDocument`` of kind ``'msg'``, shaped as :meth:`EmlParser.parse`
            describes; embedded messages rendered in place; web (linked) and broken attachments
            listed with a warning, not returned.

        Raises:
            DocumentCorrupt: not a readable Compound File, or not a message extract-msg can
                read (a damaged property stream, a missing required stream).
        """
        import extract_msg
        from extract_msg.exceptions import ExMsgBaseException

        library_errors = (
            ExMsgBaseException,
            OSError,
            ValueError,
            KeyError,
            IndexError,
            TypeError,
            AttributeError,
            struct.error,
            RecursionError,
        )
        warnings: list[str] = []
        try:
            msg = extract_msg.openMsg(str(path), strict=False)
        except FileNotFoundError:
            raise
        except library_errors as exc:
            raise DocumentCorrupt(
                f"the Outlook message cannot be opened ({type(exc).__name__}: {_cause(exc)}); it may be "
                "damaged: save it again from Outlook (or forward it as .eml) and upload it"
            ) from exc
        try:
            with msg:
                mail = _read_msg(msg, warnings, depth=0)
        except library_errors as exc:
            raise DocumentCorrupt(
                f"the Outlook message is damaged ({type(exc).__name__}: {_cause(exc)}); save it again "
                "from Outlook (or forward it as .eml) and upload it"
            ) from exc
        return _document(mail, "msg", warnings)


def _cause(exc: BaseException) -> str:
    """A library error's text for a user: without the server path of the file."""
    return scrub_paths(str(exc)) or type(exc).__name__


# ------------------------------------------------------------------------------ rendering


def _document(mail: _Mail, kind: str, warnings: list[str]) -> ParsedDocument:
    """The ``ParsedDocument`` of a message read into ``mail``."""
    metadata = {
        "Title": mail.subject,
        "Subject": mail.subject,
        "From": mail.sender,
        "To": mail.to,
        "Cc": mail.cc,
        "Date": mail.date,
        "MessageId": mail.message_id,
    }
    attachments: list[Attachment] = []
    markdown = "\n\n".join(_render(mail, 1, attachments))
    return ParsedDocument(
        markdown=markdown,
        kind=kind,
        pages=[],
        metadata={k: v for k, v in metadata.items() if v},
        warnings=warnings,
        attachments=attachments,
    )


def _render(mail: _Mail, level: int, attachments: list[Attachment]) -> list[str]:
    """Markdown blocks of ``mail`` with its heading at ``level``; its attachments (and its
    nested messages') appended to ``attachments``."""
    title = mail.subject or _NO_SUBJECT
    heading = "#" * min(level, _MAX_LEVEL)
    blocks = [f"{heading} {title}" if level == 1 else f"{heading} Attached message: {title}"]
    fields = [("From", mail.sender), ("To", mail.to), ("Cc", mail.cc), ("Date", mail.date)]
    header = "\n".join(f"{name}: {value}" for name, value in fields if value)
    if header:
        blocks.append(header)
    if mail.body.strip():
        blocks.append(mail.body.strip())
    if mail.attachments:
        blocks.append(f"{'#' * min(level + 1, _MAX_LEVEL)} Attachments")
        blocks.append("\n".join(f"- {_describe(a)}" for a in mail.attachments))
        attachments.extend(mail.attachments)
    for nested in mail.nested:
        blocks.extend(_render(nested, level + 1, attachments))
    return blocks


def _describe(attachment: Attachment) -> str:
    """``report.pdf (application/pdf, 120 KB)``."""
    size = len(attachment.data)
    shown = f"{size} bytes" if size < 1024 else f"{size / 1024:,.0f} KB"
    return f"{attachment.filename or '(no name)'} ({attachment.mime}, {shown})"


def _iso_date(value: str) -> str:
    """An RFC 5322 date as ISO 8601, or ``value`` as written when it does not parse."""
    try:
        return parsedate_to_datetime(value).isoformat()
    except (ValueError, TypeError, IndexError):
        return " ".join(value.split())


# ----------------------------------------------------------------------------------- .eml


def _header(message: EmailMessage, name: str) -> str:
    """A header's value, decoded (RFC 2047) and whitespace-folded; '' when absent. A header
    ``email`` cannot parse is decoded from its raw value."""
    try:
        value = message.get(name)
        return " ".join(str(value).split()) if value is not None else ""
    except _HEADER_ERRORS:
        for key, raw in message.raw_items():
            if key.lower() == name.lower():
                try:
                    return " ".join(str(make_header(decode_header(str(raw)))).split())
                except _HEADER_ERRORS:
                    return " ".join(str(raw).split())
        return ""


def _read_eml(message: EmailMessage, warnings: list[str], *, depth: int) -> _Mail:
    """``message`` (and the messages attached to it) as a :class:`_Mail`."""
    date = _header(message, "Date")
    mail = _Mail(
        subject=_header(message, "Subject"),
        sender=_header(message, "From"),
        to=_header(message, "To"),
        cc=_header(message, "Cc"),
        date=_iso_date(date) if date else "",
        message_id=_header(message, "Message-ID"),
    )
    texts: list[str] = []
    try:
        body = message.get_body(preferencelist=("plain", "html"))
    except _HEADER_ERRORS:
        body = None
    if message.is_multipart():
        _collect_parts([message], body, mail, texts, warnings, depth)
    elif body is not None:
        texts.append(_text_of(body, warnings))
    elif message.get_content_type() != "message/rfc822":
        _add_attachment(mail, message, warnings)  # the whole message is one file
    mail.body = "\n\n".join(t for t in texts if t.strip())
    return mail


def _collect_parts(
    parts: Any, body: MIMEPart | None, mail: _Mail, texts: list[str], warnings: list[str], depth: int
) -> None:
    """Walk the MIME tree in order: ``body`` (and the one form of it a ``multipart/alternative``
    holds, plain preferred) and text parts without a file name join the text, a
    ``message/rfc822`` part is a nested message, inline images of an HTML body are dropped,
    every other leaf is an attachment."""
    for part in parts:
        content_type = part.get_content_type()
        if content_type == "message/rfc822":  # before is_multipart(): its payload is a list
            payload = part.get_payload()
            if not isinstance(payload, list) or not payload:
                continue
            if depth + 1 >= _MAX_DEPTH:
                warnings.append(f"a message nested more than {_MAX_DEPTH} levels deep is left out")
                continue
            mail.nested.append(_read_eml(payload[0], warnings, depth=depth + 1))
        elif content_type == "multipart/alternative":  # one text in several forms: one is read
            best = part.get_body(preferencelist=("plain", "html"))
            if best is not None:
                texts.append(_text_of(best, warnings))
        elif part.is_multipart():
            _collect_parts(part.iter_parts(), body, mail, texts, warnings, depth)
        elif body is not None and part is body:
            texts.append(_text_of(body, warnings))
        elif _is_inline_text(part):
            if content_type in ("text/plain", "text/html"):
                texts.append(_text_of(part, warnings))
        elif part.get_content_disposition() != "attachment" and "Content-ID" in part and not _filename(part):
            continue  # an inline image of the HTML body
        else:
            _add_attachment(mail, part, warnings)


def _is_inline_text(part: MIMEPart) -> bool:
    """A text part shown in the message (no file name, not marked as an attachment)."""
    return (
        part.get_content_maintype() == "text"
        and part.get_content_disposition() != "attachment"
        and not _filename(part)
    )


def _text_of(part: MIMEPart, warnings: list[str]) -> str:
    """A text/plain or text/html part's text (HTML converted to Markdown); '' with a warning
    when it is not text in its charset."""
    data = part.get_payload(decode=True) or b""
    if not isinstance(data, bytes):
        return ""
    charset = part.get_content_charset()
    try:
        if part.get_content_subtype() == "html":
            converted = html_to_markdown(data, declared_encoding=charset)
            warnings.extend(converted.warnings)
            return converted.markdown
        decoded = decode_text(data, declared_encoding=charset)
    except DocumentCorrupt as exc:
        warnings.append(
            f"a {part.get_content_type()} part of the message is not readable text: skipped ({exc})"
        )
        return ""
    warnings.extend(decoded.warnings)
    return decoded.text.replace("\r\n", "\n")


#: What ``email`` records on a part whose base64 does not decode: it then hands back the part's
#: raw base64 text as its "bytes", which would be ingested as a text file of junk.
_UNDECODABLE = (
    email.errors.InvalidBase64LengthDefect,
    email.errors.InvalidBase64PaddingDefect,
    email.errors.InvalidBase64CharactersDefect,
)


def _add_attachment(mail: _Mail, part: MIMEPart, warnings: list[str]) -> None:
    """Add a MIME part to ``mail.attachments`` (its transfer encoding undone), unless its
    base64 does not decode (a message cut short, a damaged part): then a warning says so."""
    data = part.get_payload(decode=True)  # records the part's decoding defects
    name = _filename(part)
    if any(isinstance(defect, _UNDECODABLE) for defect in part.defects):
        warnings.append(
            f"attachment {name or '(no name)'} ({part.get_content_type()}) is damaged or cut off "
            "(its base64 does not decode): not ingested"
        )
        return
    mail.attachments.append(
        Attachment(filename=name, mime=part.get_content_type(), data=data if isinstance(data, bytes) else b"")
    )


def _filename(part: MIMEPart) -> str:
    """The part's file name (``Content-Disposition`` or ``Content-Type`` ``name``), '' if none."""
    try:
        return " ".join((part.get_filename() or "").split())
    except _HEADER_ERRORS:
        return ""


# ----------------------------------------------------------------------------------- .msg


def _read_msg(msg: Any, warnings: list[str], *, depth: int) -> _Mail:
    """An extract-msg message (and its embedded messages) as a :class:`_Mail`."""
    from extract_msg.enums import AttachmentType

    date = getattr(msg, "date", None)
    mail = _Mail(
        subject=_clean(getattr(msg, "subject", None)),
        sender=_clean(getattr(msg, "sender", None)),
        to=_clean(getattr(msg, "to", None)),
        cc=_clean(getattr(msg, "cc", None)),
        date=date.isoformat() if isinstance(date, datetime) else _clean(date),
        message_id=_clean(getattr(msg, "messageId", None)),
    )
    body = getattr(msg, "body", None)
    if isinstance(body, str) and body.strip():
        mail.body = body.replace("\r\n", "\n")
    else:
        html = getattr(msg, "htmlBody", None)
        if isinstance(html, bytes) and html.strip():
            try:
                converted = html_to_markdown(html)
                mail.body = converted.markdown
                warnings.extend(converted.warnings)
            except DocumentCorrupt as exc:
                warnings.append(f"the message's HTML body is not readable text: skipped ({exc})")
    for attachment in getattr(msg, "attachments", []):
        kind = attachment.type
        if kind in (AttachmentType.MSG, AttachmentType.SIGNED_EMBEDDED):
            if depth + 1 >= _MAX_DEPTH:
                warnings.append(f"a message nested more than {_MAX_DEPTH} levels deep is left out")
            else:
                mail.nested.append(_read_msg(attachment.data, warnings, depth=depth + 1))
            continue
        name = _clean(attachment.longFilename or attachment.shortFilename or attachment.displayName)
        if kind not in (AttachmentType.DATA, AttachmentType.SIGNED) or not isinstance(attachment.data, bytes):
            warnings.append(
                f"attachment {name or '(no name)'} is not stored in the message ({kind.name}): skipped"
            )
            continue
        if attachment.hidden and attachment.contentId:
            continue  # an inline image of the HTML body
        mime = _clean(attachment.mimetype) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        mail.attachments.append(Attachment(filename=name, mime=mime.lower(), data=attachment.data))
    return mail


def _clean(value: object) -> str:
    """A property's text, whitespace-folded; '' for None."""
    return " ".join(str(value).split()) if value is not None else ""
