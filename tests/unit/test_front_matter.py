"""A Markdown file's YAML front matter: taken out of the text, its keys as metadata."""

from __future__ import annotations

from pathlib import Path

from docingest.providers.parsing.markdown import MarkdownParser, split_front_matter
from docingest.stages.metadata import MAX_META_KEYS, meta_defaults


def test_a_front_matter_block_is_taken_out_and_its_keys_kept_as_json() -> None:
    text = (
        "---\ntitle: Tide tables\ntags: [harbour, tides]\ndate: 2024-05-01\ndraft: false\n"
        "weight: 2.5\n2024: year key\nauthor:\n  name: Ana\nmixed: [1, {a: 2}]\n---\n\n# Tides\n\nBody.\n"
    )
    body, meta, warnings = split_front_matter(text)
    assert body == "# Tides\n\nBody.\n"
    assert meta == {
        "title": "Tide tables",
        "tags": ["harbour", "tides"],
        "date": "2024-05-01",
        "draft": False,
        "weight": 2.5,
        "2024": "year key",
    }
    assert warnings == [
        "front matter keys dropped (not a string, number, date, boolean or list of those): author, mixed"
    ]


def test_text_without_a_mapping_block_is_left_as_it_is() -> None:
    for text in (
        "# Title\n\n---\nkey: value\n---\n",  # not at the start
        "---\nA thematic break opening prose.\n\n---\n\nMore prose.\n",  # YAML, not a mapping
        "---\nkey: value\nno closing line\n",
    ):
        assert split_front_matter(text) == (text, {}, [])


def test_a_block_that_is_not_valid_yaml_is_kept_as_text_with_a_warning(tmp_path: Path) -> None:
    text = "---\ntitle: [unclosed\nfoo: : bar\n---\n# Title\n\ntext"
    body, meta, warnings = split_front_matter(text)
    assert (body, meta) == (text, {})
    assert len(warnings) == 1
    assert warnings[0].startswith("front matter is not valid YAML (line 3: ")
    assert warnings[0].endswith("it was kept as text and gave no metadata")
    path = tmp_path / "a.md"
    path.write_text(text)
    parsed = MarkdownParser().parse(path)
    assert (parsed.markdown, parsed.front_matter, parsed.warnings) == (text, {}, warnings)


def test_the_markdown_parser_returns_the_front_matter_apart(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_bytes(b"\xef\xbb\xbf---\r\ntitle: BOM and CRLF\r\n...\r\nText.\r\n")
    parsed = MarkdownParser().parse(path)
    assert (parsed.markdown, parsed.front_matter) == ("Text.\r\n", {"title": "BOM and CRLF"})


def test_front_matter_never_overrides_a_key_and_stays_within_the_limits() -> None:
    meta = {"team": "docs"}
    extra = {"team": "web", **{f"k{i}": i for i in range(MAX_META_KEYS + 5)}}
    kept, left = meta_defaults(meta, extra)
    assert "team" not in kept and len(kept) == MAX_META_KEYS - 1
    assert left == [f"k{i}" for i in range(MAX_META_KEYS - 1, MAX_META_KEYS + 5)]
