"""Spreadsheets (XLSX, XLSM, ODS) and structured text (CSV, TSV, JSON, JSON Lines): the
samples of ``tests/fixtures/formats/sheets.py`` detected and parsed, one heading and one table
per sheet, cells written as read, the bad inputs refused with their error codes (a
password-protected XLSX, a zip bomb, a truncated or damaged XLSX, a sheet over the cell limit,
a used range calamine could not allocate), and a million-cell sheet parsed in the sandbox
within its memory limit."""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from docingest.errors import (
    ArchiveTooLarge,
    DocumentCorrupt,
    DocumentEncrypted,
    SpreadsheetTooLarge,
)
from docingest.providers.parsing import DEFAULT_OPTIONS, ParsedDocument, ParseOptions, detect, parse_file
from docingest.providers.parsing.sandbox import ParseLimits, SandboxedParser
from docingest.providers.parsing.spreadsheet import OdsParser, XlsxParser, format_cell
from docingest.providers.parsing.tabular import MAX_DEPTH, CsvParser, JsonParser
from tests.fixtures.formats import FormatSample, sheets

SAMPLES = [
    sheets.sample_xlsx,
    sheets.sample_xlsm,
    sheets.sample_ods,
    sheets.sample_csv,
    sheets.sample_tsv,
    sheets.sample_json,
    sheets.sample_jsonl,
]
#: The sandbox's default memory limit (``parse_memory_mb``), MiB.
DEFAULT_PARSE_MEMORY_MB = 2048


def _table_text(sentence: str) -> str:
    return sentence.replace("|", "\\|")


@pytest.mark.parametrize("factory", SAMPLES, ids=lambda f: f.__name__)
def test_sample_is_detected_and_each_sentence_lands_on_its_page_under_its_heading(
    factory: Any, tmp_path: Path
) -> None:
    sample: FormatSample = factory(tmp_path)
    detected = detect(sample.path)
    assert (detected.kind, detected.mime) == (sample.kind, sample.mime)
    document = parse_file(sample.path, detected.kind)
    assert document.kind == sample.kind
    for expect in sample.expects:
        text = _table_text(expect.sentence)
        assert document.markdown.count(text) == 1, expect.sentence
        if expect.page is None:
            assert document.pages == []
            continue
        page = document.pages[expect.page - 1]
        assert page.number == expect.page
        body = document.markdown[page.start : page.end]
        assert text in body
        assert body.startswith(f"# {expect.heading}\n\n| ")


def test_xlsx_writes_one_heading_and_table_per_visible_sheet(tmp_path: Path) -> None:
    sample = sheets.sample_xlsx(tmp_path)
    progress: list[tuple[int, int]] = []
    document = XlsxParser().parse(
        sample.path, DEFAULT_OPTIONS, lambda done, total: progress.append((done, total))
    )

    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert [(p.number, p.empty) for p in document.pages] == [(1, False), (2, True), (3, False)]
    assert document.pages[1].start == document.pages[1].end
    first, third = (document.markdown[p.start : p.end] for p in (document.pages[0], document.pages[2]))
    assert document.markdown == first + "\n\n" + third
    assert first.splitlines()[:4] == [
        "# Greenhouse Schedule",
        "",
        "| Task | Week | Note |",
        "| --- | --- | --- |",
    ]
    assert len(first.splitlines()) == 7  # the empty row dropped
    assert "| Vent check | 30 | Automatic roof vents stick \\| clean the hinges every July. |" in first
    assert third.splitlines()[2:8] == [
        "| Item | Cost | Bought | Remark |",
        "| --- | --- | --- | --- |",
        "| Drip line | 1200 | 2024-03-01 |  |",
        "| Timer | 0.3 | 2024-04-15 |  |",
        "| Filters | 524.7 | 2024-05-02 09:30:00 |  |",
        f"| Total | {sheets.XLSX_TOTAL} |  |  |",  # the formula's cached value
    ]
    assert (
        third.splitlines()[-1] == "| Timer |  |  | A rain sensor pauses the watering timer after a storm. |"
    )
    assert sheets.HIDDEN_SENTENCE not in document.markdown
    assert document.warnings == ["sheet 2 ('Archive') is hidden: skipped"]
    assert document.metadata["Title"] == "Greenhouse operations plan"
    assert document.metadata["Author"] == "Mira Okafor"
    assert document.metadata["Subject"] == "Market garden"


def test_very_hidden_sheet_is_skipped_and_trailing_empty_columns_are_trimmed(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Data"
    sheet["B3"] = "Header"
    sheet["C3"] = "Second"
    sheet["B4"] = "value"
    sheet["F4"] = "   "  # only whitespace: an empty cell widening the used range
    secret = workbook.create_sheet("Macros")
    secret["A1"] = "never shown"
    secret.sheet_state = "veryHidden"
    path = tmp_path / "trim.xlsx"
    workbook.save(path)

    document = XlsxParser().parse(path)

    assert document.markdown == "# Data\n\n| Header | Second |\n| --- | --- |\n| value |  |"
    assert document.warnings == ["sheet 2 ('Macros') is very hidden: skipped"]


def test_a_chart_sheet_is_an_empty_page(tmp_path: Path) -> None:
    from openpyxl.chart import BarChart, Reference

    workbook = openpyxl.Workbook()
    data = workbook.active
    data.title = "Yields"
    data.append(["Crop", "Tonnes"])
    data.append(["Rye", 4])
    chart = BarChart()
    chart.add_data(Reference(data, min_col=2, min_row=1, max_row=2))
    workbook.create_chartsheet("Yield chart").add_chart(chart)
    path = tmp_path / "chart.xlsx"
    workbook.save(path)

    document = XlsxParser().parse(path)
    assert document.markdown == "# Yields\n\n| Crop | Tonnes |\n| --- | --- |\n| Rye | 4 |"
    assert [(p.number, p.empty) for p in document.pages] == [(1, False), (2, True)]


def test_a_workbook_without_cells_has_empty_pages(tmp_path: Path) -> None:
    path = tmp_path / "blank.xlsx"
    openpyxl.Workbook().save(path)
    document = XlsxParser().parse(path)
    assert document.markdown == ""
    assert [(p.number, p.empty) for p in document.pages] == [(1, True)]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12.0, "12"),
        (7, "7"),
        (0.1 + 0.2, "0.3"),
        (3.0000000000000004, "3"),
        (1 / 3, "0.333333333333333"),
        (-2.5, "-2.5"),
        (1e20, "1e+20"),
        (0.00012, "0.00012"),
        (True, "TRUE"),
        (False, "FALSE"),
        (dt.date(2024, 3, 1), "2024-03-01"),
        (dt.datetime(2024, 3, 1, 13, 30), "2024-03-01 13:30:00"),
        (dt.time(9, 5), "09:05:00"),
        (dt.timedelta(hours=26, minutes=3), "26:03:00"),
        ("a | b\nc", "a \\| b c"),
    ],
)
def test_cells_are_written_as_a_person_reads_them(value: object, text: str) -> None:
    assert format_cell(value) == text


def test_ods_skips_its_hidden_sheet_and_reads_meta_xml(tmp_path: Path) -> None:
    sample = sheets.sample_ods(tmp_path)
    document = OdsParser().parse(sample.path)
    assert [(p.number, p.empty) for p in document.pages] == [(1, False), (2, True), (3, False)]
    assert "marbled paper" not in document.markdown
    assert document.warnings == ["sheet 2 ('Scratch') is hidden: skipped"]
    assert document.metadata["Title"] == "Conservation workshop sheet"
    assert (
        "| Wheat starch | 2.5 | Wheat starch paste stays reversible for future conservators. |"
        in document.markdown
    )


def test_password_protected_xlsx_is_refused_by_detect_and_by_the_parser(tmp_path: Path) -> None:
    from msoffcrypto.format.ooxml import OOXMLFile

    sample = sheets.sample_xlsx(tmp_path)
    encrypted = tmp_path / "locked.xlsx"
    with open(sample.path, "rb") as plain, open(encrypted, "wb") as out:
        OOXMLFile(plain).encrypt("tomato-2024", out)

    with pytest.raises(DocumentEncrypted) as detected:
        detect(encrypted)
    assert detected.value.error_code == "document_encrypted"
    with pytest.raises(DocumentEncrypted, match="password"):
        XlsxParser().parse(encrypted)


def test_zip_bomb_posing_as_xlsx_is_refused_before_unpacking(tmp_path: Path) -> None:
    sample = sheets.sample_xlsx(tmp_path)
    bomb = tmp_path / "bomb.xlsx"
    shutil.copy(sample.path, bomb)
    chunk = bytes(16 * 1024 * 1024)
    with (
        zipfile.ZipFile(bomb, "a", zipfile.ZIP_DEFLATED) as zf,
        zf.open("xl/media/padding.bin", "w") as member,
    ):
        for _ in range(8):  # 128 MiB of zeros: about 130 KB packed
            member.write(chunk)
    assert bomb.stat().st_size < 1024 * 1024
    assert detect(bomb).kind == "xlsx"

    with pytest.raises(ArchiveTooLarge) as refused:
        XlsxParser().parse(bomb, ParseOptions(max_unpacked_bytes=64 * 1024 * 1024))
    assert refused.value.error_code == "archive_too_large"
    assert "zip bomb" in str(refused.value)


@pytest.mark.parametrize("factory", [sheets.sample_xlsx, sheets.sample_ods], ids=["xlsx", "ods"])
def test_truncated_workbook_is_corrupt_and_the_message_has_no_path(factory: Any, tmp_path: Path) -> None:
    sample = factory(tmp_path)
    data = sample.path.read_bytes()
    truncated = tmp_path / f"cut{sample.path.suffix}"
    truncated.write_bytes(data[: len(data) // 2])
    detected = detect(truncated)
    assert detected.kind == sample.kind

    with pytest.raises(DocumentCorrupt) as refused:
        parse_file(truncated, detected.kind)
    assert refused.value.error_code == "document_corrupt"
    assert str(tmp_path) not in str(refused.value)


def test_xlsx_with_broken_sheet_xml_is_corrupt(tmp_path: Path) -> None:
    sample = sheets.sample_xlsx(tmp_path)
    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(sample.path) as source, zipfile.ZipFile(broken, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2] + b"<c r='A9'><v>1</v></row>"
            target.writestr(info, data)
    with pytest.raises(DocumentCorrupt, match="XLSX is damaged"):
        XlsxParser().parse(broken)


def test_workbook_over_the_cell_limit_is_refused(tmp_path: Path) -> None:
    sample = sheets.sample_xlsx(tmp_path)
    cells = 4 * 3 + (4 + 3 * 3 + 2 + 4 * sheets.FILLER_ROWS + 2 * 2)  # non-empty, in the visible sheets
    assert len(XlsxParser().parse(sample.path, ParseOptions(max_spreadsheet_cells=cells)).pages) == 3
    with pytest.raises(SpreadsheetTooLarge) as refused:
        XlsxParser().parse(sample.path, ParseOptions(max_spreadsheet_cells=cells - 1))
    assert refused.value.error_code == "spreadsheet_too_large"
    assert "sheet 3, 'Irrigation Costs'" in str(refused.value)
    ods = sheets.sample_ods(tmp_path)
    with pytest.raises(SpreadsheetTooLarge):
        OdsParser().parse(ods.path, ParseOptions(max_spreadsheet_cells=10))


def test_sheet_whose_used_range_calamine_could_not_allocate_is_refused(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    workbook.active["A1"] = "top left"
    workbook.active["XFD1048576"] = "bottom right"  # two cells spanning 17 billion
    path = tmp_path / "sparse.xlsx"
    workbook.save(path)
    with pytest.raises(SpreadsheetTooLarge, match="1,048,576 rows by 16,384 columns"):
        XlsxParser().parse(path)


def parse_reporting_peak_rss(
    path: Path, kind: str, on_progress: Any = None, options: Any = DEFAULT_OPTIONS
) -> ParsedDocument:
    """A sandbox target: ``parse_file``, with the child's resident set before the parse and its
    peak (``ru_maxrss``) after it put in the metadata, MiB."""
    with open("/proc/self/statm") as fh:
        before = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    document = parse_file(path, kind, on_progress, options)
    document.metadata["RssBeforeMiB"] = f"{before:.0f}"
    document.metadata["PeakRssMiB"] = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
    return document


def test_million_cell_sheet_parses_in_the_sandbox_within_half_its_memory_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Readings")
    sheet.append([f"column {c}" for c in range(10)])
    for r in range(100_000):
        sheet.append(
            [r, r / 8, f"station {r % 97}", r % 13, "north", r * 2, r / 7, "ok", f"batch {r // 100}", "z"]
        )
    path = tmp_path / "million.xlsx"
    workbook.save(path)

    parser = SandboxedParser(
        ParseLimits(timeout_seconds=300, timeout_seconds_per_mb=0, memory_mb=DEFAULT_PARSE_MEMORY_MB),
        target="tests.unit.test_parse_sheets:parse_reporting_peak_rss",
    )
    try:
        document = parser(path, "xlsx")
    finally:
        parser.close()

    lines = document.markdown.splitlines()
    assert len(lines) == 2 + 1 + 1 + 100_000
    assert (
        lines[-1]
        == "| 99999 | 12499.875 | station 89 | 3 | north | 199998 | 14285.5714285714 | ok | batch 999 | z |"
    )
    peak = int(document.metadata["PeakRssMiB"])
    with capsys.disabled():
        print(
            f"\n1,000,010-cell XLSX ({path.stat().st_size / 2**20:.1f} MiB, {len(document.markdown) / 2**20:.1f} MiB "
            f"of text): child RSS {document.metadata['RssBeforeMiB']} MiB before, peak {peak} MiB"
        )
    assert peak < DEFAULT_PARSE_MEMORY_MB / 2


# --- CSV and TSV ---


def test_csv_dialect_is_sniffed_and_cells_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "semicolons.csv"
    path.write_text('name;city;note\nAda;London;"likes | pipes"\n\n;;\nBob;Paris;"two\nlines"\nCy\n', "utf-8")
    document = CsvParser().parse(path)
    assert document.markdown == (
        "| name | city | note |\n| --- | --- | --- |\n"
        "| Ada | London | likes \\| pipes |\n| Bob | Paris | two lines |\n| Cy |  |  |"
    )
    assert document.metadata == {"Encoding": "utf-8", "Delimiter": ";"}
    assert document.pages == []


def test_tsv_is_split_on_tabs_and_legacy_bytes_are_decoded(tmp_path: Path) -> None:
    path = tmp_path / "caf\u00e9s.tsv"
    path.write_bytes("caf\u00e9\tprix, \u20ac\nCr\u00e8me\t3,50\n".encode("cp1252"))
    document = CsvParser().parse(path)
    assert document.markdown == "| caf\u00e9 | prix, \u20ac |\n| --- | --- |\n| Cr\u00e8me | 3,50 |"
    assert document.metadata["Encoding"] == "cp1252"
    assert document.metadata["Delimiter"] == "tab"


def test_csv_over_the_cell_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("".join(f"{i},{i * 2},x\n" for i in range(100)), "utf-8")
    assert CsvParser().parse(path, ParseOptions(max_spreadsheet_cells=300)).markdown.count("\n") == 100
    with pytest.raises(SpreadsheetTooLarge, match="300 non-empty cells"):
        CsvParser().parse(path, ParseOptions(max_spreadsheet_cells=299))


def test_csv_with_an_unclosed_quote_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "open-quote.csv"
    path.write_text('a,b\n1,"never closed\n' + "x" * 200_000 + "\n", "utf-8")
    with pytest.raises(DocumentCorrupt, match="quote"):
        CsvParser().parse(path)


# --- JSON and JSON Lines ---


def test_json_is_flattened_into_path_value_lines_one_block_per_record(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_text(
        json.dumps(
            {
                "orders": [
                    {"customer": {"name": "Ada"}, "total": 0},
                    {"customer": {"name": "Lin"}, "items": [], "gift": True},
                ],
                "meta": {"x.y": None, "note": "line one\nline two", "e": {}},
            }
        ).replace("0}", "12.50}"),
        "utf-8",
    )
    document = JsonParser().parse(path)
    assert document.markdown.split("\n\n") == [
        "orders[0].customer.name: Ada\norders[0].total: 12.50",
        "orders[1].customer.name: Lin\norders[1].items: []\norders[1].gift: true",
        'meta["x.y"]: null\nmeta.note: line one line two\nmeta.e: {}',
    ]
    assert document.warnings == []


def test_top_level_array_records_are_blocks_and_heading_lookalikes_escaped(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    path.write_text('[{"id": 1, "big": 1' + "0" * 5000 + '}, "# not a heading", [true, 2]]', "utf-8")
    document = JsonParser().parse(path)
    assert document.markdown.split("\n\n") == [
        "id: 1\nbig: 1" + "0" * 5000,
        "\\# not a heading",
        "[0]: true\n[1]: 2",
    ]


def test_nesting_past_the_depth_bound_is_written_as_compact_json(tmp_path: Path) -> None:
    value: Any = {"leaf": "deep"}
    for _ in range(MAX_DEPTH + 3):
        value = {"k": value}
    path = tmp_path / "deep.json"
    path.write_text(json.dumps(value), "utf-8")
    document = JsonParser().parse(path)
    prefix = ".".join(["k"] * MAX_DEPTH)
    assert document.markdown == f'{prefix}: {{"k":{{"k":{{"k":{{"leaf":"deep"}}}}}}}}'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a": 1,}', "expected a member name in double quotes: line 1, column 9"),
        ('{"a": 1} trailing', "extra data after the JSON value"),
        ('{"a": "unterminated', "Unterminated string starting at: line 1, column 7"),
    ],
)
def test_invalid_json_is_kept_as_text_with_a_warning(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, "utf-8")
    document = JsonParser().parse(path)
    assert document.markdown == text
    assert len(document.warnings) == 1
    assert reason in document.warnings[0]
    assert "indexed as plain text" in document.warnings[0]


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, '{"a":' * 5000 + '"bottom value of the deep well"' + "}" * 5000],
    ids=["arrays", "objects"],
)
def test_json_nested_too_deeply_to_decode_is_refused_not_indexed_as_brackets(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "deep.json"
    path.write_text(text, "utf-8")
    with pytest.raises(DocumentCorrupt, match="nested too deeply") as refused:
        JsonParser().parse(path)
    assert refused.value.error_code == "document_corrupt"


def test_json_lines_one_block_per_line_blank_lines_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"a": 1}\n\n{"b": [1, {"c": "x"}]}\n"plain"\n', "utf-8")
    document = JsonParser().parse(path)
    assert document.markdown.split("\n\n") == ["a: 1", "b[0]: 1\nb[1].c: x", "plain"]


def test_json_lines_with_a_bad_line_fall_back_to_text(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"a": 1}\n{"b": \n', "utf-8")
    document = JsonParser().parse(path)
    assert document.markdown == '{"a": 1}\n{"b": \n'
    assert "line 2" in document.warnings[0]


def test_a_large_json_array_is_decoded_one_record_at_a_time(tmp_path: Path) -> None:
    """``json.loads`` of the whole array, then its flattening, peaks near 7 times the file's
    size (5.5 for the objects alone); decoded a record at a time the parse holds the file's
    bytes, its text and the output: under 5 times (3.9 measured), in a fresh parse child."""
    record = {"id": 0, "name": "sensor", "tags": ["a", "b", "c"], "reading": {"value": 1.5, "unit": "C"}}
    path = tmp_path / "records.json"
    path.write_text("[" + ",".join(json.dumps({**record, "id": i}) for i in range(200_000)) + "]", "utf-8")
    size_mib = path.stat().st_size / 2**20

    parser = SandboxedParser(
        ParseLimits(timeout_seconds=300, timeout_seconds_per_mb=0, memory_mb=DEFAULT_PARSE_MEMORY_MB),
        target="tests.unit.test_parse_sheets:parse_reporting_peak_rss",
    )
    try:
        document = parser(path, "json")
    finally:
        parser.close()

    assert document.markdown.count("\n\n") == 200_000 - 1
    growth = int(document.metadata["PeakRssMiB"]) - int(document.metadata["RssBeforeMiB"])
    assert growth < 5 * size_mib, f"the parse grew {growth} MiB for {size_mib:.0f} MiB of JSON"


def _repeat_in_ods(path: Path, row: bytes, *, at_table_end: bool = False) -> None:
    """Insert ``row`` (an ODS table row) after the first row of the first table, or at that
    table's end."""
    anchor = b"</table:table>" if at_table_end else b"</table:table-row>"
    replacement = row + anchor if at_table_end else anchor + row
    sheets.rewrite_member(path, "content.xml", lambda xml: xml.replace(anchor, replacement, 1))


def test_ods_repeating_a_cell_a_billion_times_is_refused_before_calamine_expands_it(tmp_path: Path) -> None:
    sample = sheets.sample_ods(tmp_path)
    _repeat_in_ods(
        sample.path,
        b'<table:table-row table:number-rows-repeated="100000"><table:table-cell table:number-columns-repeated='
        b'"10000" office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row>',
    )
    assert sample.path.stat().st_size < 64 * 1024
    with pytest.raises(SpreadsheetTooLarge, match="sheet 'Bindery Queue' spans"):
        OdsParser().parse(sample.path)


def test_ods_trailing_empty_repeats_as_libreoffice_writes_them_are_not_counted(tmp_path: Path) -> None:
    sample = sheets.sample_ods(tmp_path)
    _repeat_in_ods(
        sample.path,
        b'<table:table-row table:number-rows-repeated="1048570"><table:table-cell table:number-columns-repeated='
        b'"1024" table:style-name="Default"/></table:table-row>',
        at_table_end=True,
    )
    document = OdsParser().parse(sample.path)
    assert "Kozo tissue mends torn pages" in document.markdown


def test_password_protected_ods_is_refused(tmp_path: Path) -> None:
    sample = sheets.sample_ods(tmp_path)
    sheets.rewrite_member(
        sample.path,
        "META-INF/manifest.xml",
        lambda xml: xml.replace(
            b'manifest:full-path="content.xml" manifest:media-type="text/xml"/>',
            b'manifest:full-path="content.xml" manifest:media-type="text/xml"><manifest:encryption-data manifest:checksum-type="SHA1/1K" '
            b'manifest:checksum="AAAA"/></manifest:file-entry>',
        ),
    )
    assert b"encryption-data" in zipfile.ZipFile(sample.path).read("META-INF/manifest.xml")
    with pytest.raises(DocumentEncrypted, match="password"):
        OdsParser().parse(sample.path)


def test_json_lines_in_a_json_file_are_read_as_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text('{"a": 1}\n{"b": 2}\n', "utf-8")
    document = JsonParser().parse(path)
    assert document.markdown == "a: 1\n\nb: 2"
    assert document.warnings == []


def test_csv_with_one_long_cell_is_read(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("h\n" + "x" * 200_000 + "\n", "utf-8")
    document = CsvParser().parse(path)
    assert document.markdown.startswith("| h |\n| --- |\n| xxx") and len(document.markdown) > 200_000
