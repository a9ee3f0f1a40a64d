"""Token-aware, Markdown-aware chunking sized by the embedding model's own tokenizer.

Splitting uses semantic-text-splitter (Markdown structure first: headings,
blocks, paragraphs, sentences, words). Its token-sized splitter re-tokenizes
large spans many times over a whole large document, so the text is first cut at
Markdown boundaries into pieces of at most ``piece_chars`` characters (a cheap
character count), and each piece is then split by tokens: the same semantic levels.
Every chunk is then re-counted with the real tokenizer, special tokens
included; any chunk over the limit is split again at a smaller size, so the
limit is guaranteed, not hoped for. Last, a piece with nothing to embed on its
own (only heading lines, only code-fence lines, no letter or digit) is joined to
a neighbour, still within the limit (:meth:`Chunker._absorb_fragments`).

A pipe table too long for one chunk (a spreadsheet's sheet, a CSV file) is cut between its
rows instead, and every chunk after the first starts with the table's header row and
delimiter row again, so each chunk says what its columns are (:meth:`Chunker._table_pieces`).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid5

from semantic_text_splitter import MarkdownSplitter, TextSplitter
from tokenizers import Tokenizer

from docingest.errors import ChunkTooLong

CHUNKER_NAME = "semantic-markdown"
CHUNKER_VERSION = 1
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)
_FENCE_LINE = re.compile(r"[ \t]*(```|~~~)")
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")
_LEADING_LETTERLESS = re.compile(r"(?:[^\w\n]*\n)*")
#: A pipe table (GFM): a header row and a delimiter row, then rows, every line starting with "|".
_TABLE = re.compile(
    r"^[ \t]*\|[^\n]*\n[ \t]*\|(?:[ \t]*:?-+:?[ \t]*\|)+[ \t]*(?:\n[ \t]*\|[^\n]*)*", re.MULTILINE
)
#: Where a piece may be cut to make room for a fragment, best first: blank lines, line breaks,
#: sentence ends, spaces.
_CUTS = (re.compile(r"\n[ \t]*\n\s*"), re.compile(r"\n\s*"), re.compile(r"(?<=[.!?])\s+"), re.compile(r"\s+"))
_MAX_CUTS_TRIED = 8  # per kind of cut, nearest the middle first
#: texts per tokenizer call when counting
COUNT_BATCH = 256
#: a context line cut shorter than this many tokens is left out (a title's first word is noise)
MIN_CONTEXT_TOKENS = 4


@dataclass(frozen=True)
class Chunk:
    """One chunk: ``text == header + document[start:end]``, where ``header`` is the
    ``header_chars`` first characters of ``text``: the repeated header and delimiter rows of
    a table the chunk continues (empty for every other chunk); ``token_count`` includes
    special tokens and the header."""

    ordinal: int
    text: str
    start: int
    end: int
    token_count: int
    page: int | None = None
    page_end: int | None = None
    heading_path: list[str] = field(default_factory=list)
    header_chars: int = 0

    def meta(self) -> dict[str, Any]:
        """The metadata stored with the chunk (page, heading path, character offsets, and
        ``header_chars`` when it repeats a table's header)."""
        meta: dict[str, Any] = {
            "start": self.start,
            "end": self.end,
            "page": self.page,
            "page_end": self.page_end,
            "heading_path": self.heading_path,
        }
        if self.header_chars:
            meta["header_chars"] = self.header_chars
        return meta


def _crosses(walls: Sequence[int], end: int, start: int) -> bool:
    """Whether a wall (an offset in ascending ``walls``) lies in ``[end, start]``: between a
    piece ending at ``end`` and the next one starting at ``start``."""
    i = bisect.bisect_left(walls, end)
    return i < len(walls) and walls[i] <= start


def chunk_id(document_id: UUID, ordinal: int) -> UUID:
    """Deterministic id: ``uuid5(document_id, f"{chunker}:{version}:{ordinal}")``."""
    return uuid5(document_id, f"{CHUNKER_NAME}:{CHUNKER_VERSION}:{ordinal}")


def load_tokenizer(path: str) -> Tokenizer:
    """Load a Hugging Face ``tokenizer.json`` with truncation and padding switched off.

    all-MiniLM-L6-v2 ships its tokenizer with truncation and padding at 128; left
    on, every count would be capped at 128 and long chunks would pass unseen.
    """
    tok = Tokenizer.from_file(path)
    tok.no_truncation()
    tok.no_padding()
    return tok


def fragment_kind(piece: str, markdown: bool = True) -> str | None:
    """What makes ``piece`` a fragment with nothing to embed alone, or None when it is not one.

    Every non-blank line is an ATX heading (only when ``markdown``), a code-fence line
    (three backticks or tildes, with its info string) or has no letter or digit.

    Returns:
        ``'heading'`` when it holds a heading line and nothing but headings and
        letterless lines, ``'fence'`` when it holds a fence line, ``'punctuation'``
        when no line has a letter or digit, None otherwise (or for a blank piece).
    """
    kind = None
    for line in piece.splitlines():
        if _FENCE_LINE.match(line):
            kind = "fence"
        elif markdown and _HEADING.match(line):
            kind = kind or "heading"
        elif _LETTER_OR_DIGIT.search(line):
            return None
        elif line.strip():
            kind = kind or "punctuation"
    return kind


def headings(text: str) -> list[tuple[int, int, str]]:
    """ATX headings outside fenced code: ``[(offset, level, title)]`` in order."""
    fences = [m.start() for m in _FENCE.finditer(text)]
    out = []
    for m in _HEADING.finditer(text):
        if bisect.bisect_right(fences, m.start()) % 2 == 1:  # inside an open fence
            continue
        out.append((m.start(), len(m.group(1)), m.group(2).strip()))
    return out


class Chunker:
    """Split parsed text into chunks within the model's maximum sequence length.

    Args:
        tokenizer: the embedding model's tokenizer (see :func:`load_tokenizer`).
        max_tokens: the model's maximum sequence length, special tokens included
            (256 for all-MiniLM-L6-v2).
        overlap_tokens: tokens shared by consecutive chunks (0 = none).
        special_tokens: tokens the model adds to every input ([CLS] and [SEP]: 2).
        piece_chars: size of the first, character-based cut (see module docstring).
        context_tokens: the most tokens of context (the document's title and the chunk's
            heading path, :meth:`context`) embedded before a chunk, within the room the chunk
            leaves under ``max_tokens``; chunks are sized as without it.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        max_tokens: int = 256,
        overlap_tokens: int = 0,
        special_tokens: int = 2,
        piece_chars: int = 6000,
        context_tokens: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.context_tokens = context_tokens
        self.max_tokens = max_tokens
        self.capacity = max_tokens - special_tokens
        if overlap_tokens >= self.capacity:
            raise ValueError("overlap_tokens must be smaller than the chunk capacity")
        self.overlap_tokens = overlap_tokens
        self.piece_chars = piece_chars
        self._outer = MarkdownSplitter(piece_chars, overlap=0)
        self._inner_md = MarkdownSplitter.from_huggingface_tokenizer(
            tokenizer, self.capacity, overlap=overlap_tokens
        )
        self._inner_text = TextSplitter.from_huggingface_tokenizer(
            tokenizer, self.capacity, overlap=overlap_tokens
        )

    def context_budget(self, token_count: int) -> int:
        """Tokens the context of a chunk of ``token_count`` tokens (special tokens included) may
        take: ``context_tokens``, at most the room the chunk leaves under ``max_tokens``, so the
        chunk is always embedded whole."""
        return max(0, min(self.context_tokens, self.max_tokens - token_count))

    def context(self, title: str, heading_path: Sequence[str], budget: int | None = None) -> str:
        """The context line embedded before a chunk: ``"title > heading > subheading"``.

        Empty parts and a heading equal to the one before it (an ``<h1>`` repeating the
        title) are left out. The line gets at most ``budget`` tokens (no special tokens;
        default ``context_tokens``; :meth:`context_budget` gives a chunk's): over it, the
        outer headings are dropped first (the title and the innermost heading stay), then
        the line is cut at a token boundary. Cut below :data:`MIN_CONTEXT_TOKENS`, or with a
        budget of 0, it is empty.
        """
        if budget is None:
            budget = self.context_tokens
        if budget < MIN_CONTEXT_TOKENS:
            return ""
        parts: list[str] = []
        for part in (title, *heading_path):
            part = " ".join(part.split())
            if part and (not parts or part != parts[-1]):
                parts.append(part)
        while True:
            line = " > ".join(parts)
            encoding = self.tokenizer.encode(line, add_special_tokens=False)
            if len(encoding.ids) <= budget:
                return line
            if len(parts) > 2:
                del parts[1]
                continue
            return line[: encoding.offsets[budget - 1][1]].rstrip()

    def _token_ids(self, texts: Sequence[str], *, special: bool) -> Iterator[list[int]]:
        """Each text's token ids, encoded :data:`COUNT_BATCH` texts at a time without character
        offsets (``encode_batch_fast``): an encoding of every chunk of a 1,000-page document at
        once held ~200 MB."""
        for i in range(0, len(texts), COUNT_BATCH):
            for e in self.tokenizer.encode_batch_fast(
                list(texts[i : i + COUNT_BATCH]), add_special_tokens=special
            ):
                yield e.ids

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts as the model sees them (special tokens included)."""
        return [len(ids) for ids in self._token_ids(texts, special=True)]

    def unknown_token_shares(self, texts: Sequence[str]) -> list[float]:
        """The share of each text's tokens (special tokens left out) that are the tokenizer's
        unknown token (``[UNK]`` for WordPiece, which gives it to any word over 100 characters:
        base64, hashes, minified code): 0.0 for a text the model reads, near 1.0 for one it
        cannot. 0.0 for every text when the tokenizer has no unknown token."""
        unk = getattr(self.tokenizer.model, "unk_token", None)
        unk_id = self.tokenizer.token_to_id(unk) if isinstance(unk, str) else None
        if unk_id is None:
            return [0.0] * len(texts)
        return [ids.count(unk_id) / len(ids) if ids else 0.0 for ids in self._token_ids(texts, special=False)]

    def _spans(self, text: str, markdown: bool) -> list[tuple[int, str]]:
        inner = self._inner_md if markdown else self._inner_text
        outer = self._outer if markdown else TextSplitter(self.piece_chars, overlap=0)
        spans: list[tuple[int, str]] = []
        for piece_start, piece in outer.chunk_indices(text):
            if len(piece) <= self.capacity:  # a token never spans less than one char
                spans.append((piece_start, piece))
                continue
            spans.extend((piece_start + s, c) for s, c in inner.chunk_indices(piece))
        return spans

    def _enforce_limit(self, spans: list[tuple[int, str]]) -> list[tuple[int, str, int]]:
        counts = self.count_tokens([c for _, c in spans]) if spans else []
        out: list[tuple[int, str, int]] = []
        for (start, text), n in zip(spans, counts, strict=True):
            if n <= self.max_tokens:
                out.append((start, text, n))
                continue
            capacity = self.capacity
            while True:  # re-split the offender at shrinking sizes until every part fits
                capacity = max(1, capacity * 3 // 4)
                splitter = TextSplitter.from_huggingface_tokenizer(self.tokenizer, capacity)
                parts = [(start + s, c) for s, c in splitter.chunk_indices(text)]
                part_counts = self.count_tokens([c for _, c in parts])
                if max(part_counts) <= self.max_tokens:
                    out.extend((s, c, k) for (s, c), k in zip(parts, part_counts, strict=True))
                    break
                if capacity == 1:
                    raise ChunkTooLong(f"cannot split a span of {n} tokens under {self.max_tokens}")
        return out

    def _segments(self, text: str, markdown: bool, breaks: Sequence[int] = ()) -> list[tuple[int, int, bool]]:
        """``text`` cut into ``(start, end, is_long_table)`` segments, in order: the pipe tables
        (outside code fences) over ``max_tokens`` tokens, and the text between them, also cut
        at every offset in ``breaks`` (ascending), so no chunk spans one."""
        segments = self._table_segments(text, markdown)
        if not breaks:
            return segments
        out: list[tuple[int, int, bool]] = []
        for start, end, table in segments:
            inner = list(breaks[bisect.bisect_right(breaks, start) : bisect.bisect_left(breaks, end)])
            for a, b in zip([start, *inner], [*inner, end], strict=True):
                if b > a:
                    out.append((a, b, table))
        return out

    def _table_segments(self, text: str, markdown: bool) -> list[tuple[int, int, bool]]:
        """``text`` cut into ``(start, end, is_long_table)`` segments: the long tables, and the
        text between them."""
        if not markdown or "|" not in text:
            return [(0, len(text), False)]
        fences = [m.start() for m in _FENCE.finditer(text)]
        tables = [
            (m.start(), m.end())
            for m in _TABLE.finditer(text)
            if m.end() - m.start() > self.capacity and bisect.bisect_right(fences, m.start()) % 2 == 0
        ]
        counts = self.count_tokens([text[a:b] for a, b in tables]) if tables else []
        segments: list[tuple[int, int, bool]] = []
        at = 0
        for (a, b), n in zip(tables, counts, strict=True):
            if n <= self.max_tokens:
                continue
            if a > at:
                segments.append((at, a, False))
            segments.append((a, b, True))
            at = b
        if at < len(text):
            segments.append((at, len(text), False))
        return segments

    def _table_pieces(self, text: str, start: int, end: int) -> list[tuple[int, str, int, str]]:
        """A long table ``text[start:end]`` cut between rows into ``(start, text, tokens,
        header)`` pieces within ``max_tokens``: the first holds the header and delimiter rows
        where the table has them; each later one has them as ``header`` (its chunk text is
        ``header + text``). A row too long even alone is split like any text, without header."""
        lines = text[start:end].split("\n")
        header = "\n".join(lines[:2]) + "\n"
        header_tokens = self.count_tokens([header])[0] - (self.max_tokens - self.capacity)
        row_tokens = [len(ids) for ids in self._token_ids(lines[2:], special=False)]
        pieces: list[tuple[int, str, int, str]] = []
        group: list[int] = []  # indexes into lines[2:] of the rows of the piece being built
        offsets = [start]
        for line in lines:
            offsets.append(offsets[-1] + len(line) + 1)
        headed = False  # whether a piece holds the header and delimiter rows themselves yet

        def flush() -> None:
            nonlocal headed
            if not group:
                return
            a = offsets[2 + group[0]] if headed else start
            b = offsets[3 + group[-1]] - 1
            prefix = header if headed else ""
            n = self.count_tokens([prefix + text[a:b]])[0]
            if n <= self.max_tokens:
                pieces.append((a, text[a:b], n, prefix))
            else:  # the estimate was short: split as any text, without the header
                pieces.extend((s, c, k, "") for s, c, k in self._enforce_limit([(a, text[a:b])]))
            group.clear()
            headed = True

        budget = self.capacity - header_tokens
        used = 0
        for i, tokens in enumerate(row_tokens):
            if tokens > budget:  # a row that does not fit beside the header: alone, split
                flush()
                a, b = (offsets[2 + i] if headed else start), offsets[3 + i] - 1
                if text[a:b].strip():
                    pieces.extend((s, c, k, "") for s, c, k in self._enforce_limit([(a, text[a:b])]))
                    headed = True
                used = 0
                continue
            if group and used + tokens > budget:
                flush()
                used = 0
            group.append(i)
            used += tokens
        flush()
        return pieces

    def _absorb_fragments(
        self,
        text: str,
        pieces: list[tuple[int, str, int]],
        markdown: bool,
        fixed: frozenset[int] = frozenset(),
        walls: Sequence[int] = (),
    ) -> list[tuple[int, str, int]]:
        """Join every fragment (:func:`fragment_kind`) to a neighbour, within ``max_tokens``.

        A fragment joins the piece after it, or the one before it when it closes a code
        block, when it is not a heading and the next piece starts a section (a heading),
        or at the end of the text. When the joined text would be over the limit, that
        neighbour is cut in two instead (at a blank line, a line break, a sentence end or
        a space, nearest its middle first) and the fragment joins the part next to it;
        when no cut fits either, the other neighbour is tried the same way. Joined pieces
        run from the first's start to the last's end, so every character covered before
        is still covered. A fragment with no neighbour or nothing that fits stays as it is.
        The pieces starting at an offset in ``fixed`` (a table's continuations, whose chunk
        text repeats the header) are never joined or cut, and no join crosses an offset in
        ``walls`` (ascending: page starts, with ``split_pages``).
        """
        spans = [(s, s + len(c), n) for s, c, n in pieces]
        fences = [m.start() for m in _FENCE.finditer(text)] if markdown else []
        i = 0
        while i < len(spans):
            start, end, _ = spans[i]
            kind = fragment_kind(text[start:end], markdown)
            if kind is None or len(spans) == 1 or start in fixed:
                i += 1
                continue
            has_next = i + 1 < len(spans)
            closing = kind == "fence" and bisect.bisect_left(fences, start) % 2 == 1
            section_ends = (
                kind != "heading" and has_next and _HEADING.match(text, spans[i + 1][0]) is not None
            )
            order = [i - 1, i + 1] if (not has_next or closing or section_ends) else [i + 1, i - 1]
            order = [
                j
                for j in order
                if 0 <= j < len(spans)
                and spans[j][0] not in fixed
                and not _crosses(walls, spans[min(i, j)][1], spans[max(i, j)][0])
            ]
            for j in order:
                lo, hi = min(i, j), max(i, j)
                joined = (spans[lo][0], max(spans[lo][1], spans[hi][1]))
                n = self.count_tokens([text[joined[0] : joined[1]]])[0]
                if n <= self.max_tokens:
                    spans[lo : hi + 1] = [(*joined, n)]
                    i = lo if j > i else i  # a joined fragment may still be one: look again
                    break
                parts = self._cut_and_join(text, spans[i], spans[j], markdown)
                if parts is not None:
                    spans[lo : hi + 1] = parts
                    i += 1
                    break
            else:
                i += 1
        return [(s, text[s:e], n) for s, e, n in spans]

    def _cut_and_join(
        self, text: str, fragment: tuple[int, int, int], other: tuple[int, int, int], markdown: bool
    ) -> list[tuple[int, int, int]] | None:
        """``fragment`` joined to the nearer part of ``other`` cut in two, both within the limit.

        Returns the two spans ``(start, end, tokens)`` in text order, neither a fragment, or
        None when no cut works.
        """
        forward = other[0] > fragment[0]
        lo = fragment[1] if forward else other[0]  # cuts must leave the fragment whole
        hi = other[1] if forward else fragment[0]
        body = text[lo:hi]
        middle = len(body) / 2
        for pattern in _CUTS:
            cuts = sorted(pattern.finditer(body), key=lambda m: abs(m.start() - middle))
            for m in cuts[:_MAX_CUTS_TRIED]:
                a, b = lo + m.start(), lo + m.end()  # the whitespace between the two parts
                first = (min(fragment[0], other[0]), a)
                second = (b, max(fragment[1], other[1]))
                if first[1] <= first[0] or second[1] <= second[0]:
                    continue
                if not (text[first[0] : first[1]].strip() and text[second[0] : second[1]].strip()):
                    continue
                if fragment_kind(text[first[0] : first[1]], markdown) or fragment_kind(
                    text[second[0] : second[1]], markdown
                ):
                    continue
                n1, n2 = self.count_tokens([text[first[0] : first[1]], text[second[0] : second[1]]])
                if n1 <= self.max_tokens and n2 <= self.max_tokens:
                    return [(*first, n1), (*second, n2)]
        return None

    def chunk(
        self,
        text: str,
        *,
        markdown: bool = True,
        page_starts: Sequence[int] = (),
        page_numbers: Sequence[int] = (),
        split_pages: bool = False,
    ) -> list[Chunk]:
        """Chunk ``text``; pages are given by their start offsets and numbers (ascending).
        With ``split_pages``, no chunk spans two pages (slides, sheets, image frames: a page is a
        unit of its own, and its number is where search sends the reader).

        Returns chunks in document order, none empty or whitespace-only, each with
        ``chunk.text == header + text[start:end]`` (``header`` empty except where a chunk
        continues a long pipe table: then its header and delimiter rows, ``header_chars`` long)
        and ``token_count <= max_tokens``; a piece with
        nothing to embed alone (only headings, only a code fence, no letter or digit) is
        joined to a neighbour wherever the limit allows (:meth:`_absorb_fragments`).
        A chunk's ``heading_path`` is the path of headings in effect where its text starts,
        past any leading lines without a letter or digit (a joined ``----`` or closing fence).

        Raises:
            ChunkTooLong: if some span cannot be cut under the limit (never seen in practice).
        """
        cut: list[tuple[int, str, int]] = []
        headers: dict[int, str] = {}  # start -> repeated table header of a table's continuation
        breaks = [p for p in page_starts if p > 0] if split_pages else []
        for seg_start, seg_end, long_table in self._segments(text, markdown, breaks):
            if long_table:
                for s, c, n, header in self._table_pieces(text, seg_start, seg_end):
                    cut.append((s, c, n))
                    if header:
                        headers[s] = header
                continue
            segment = text[seg_start:seg_end]
            spans = [(seg_start + s, c) for s, c in self._spans(segment, markdown) if c.strip()]
            cut.extend(self._enforce_limit(spans))
        heads = headings(text) if markdown else []
        next_head = 0
        path: list[tuple[int, str]] = []  # (level, title) of the headings above
        chunks: list[Chunk] = []
        pieces = self._absorb_fragments(text, cut, markdown, frozenset(headers), breaks)
        for ordinal, (start, piece, n) in enumerate(pieces):
            letterless = _LEADING_LETTERLESS.match(piece)  # lines of a joined fragment
            lead = start + (letterless.end() if letterless else 0)
            while next_head < len(heads) and heads[next_head][0] <= lead:
                _, level, title = heads[next_head]
                path = [p for p in path if p[0] < level] + [(level, title)]
                next_head += 1
            end = start + len(piece)
            page = page_end = None
            if page_starts:
                page = page_numbers[max(0, bisect.bisect_right(page_starts, start) - 1)]
                page_end = page_numbers[max(0, bisect.bisect_right(page_starts, end - 1) - 1)]
            header = headers.get(start, "")
            chunks.append(
                Chunk(
                    ordinal, header + piece, start, end, n, page, page_end, [t for _, t in path], len(header)
                )
            )
        return chunks
