"""Which spreadsheet cells the xlsx reader flags (a formula without its value, a date-typed cell), read from the
sheet's XML: with and without cached formula values, under a prefixed namespace, and in a sheet with neither."""

from __future__ import annotations

import datetime as dt
import json
import re
import zipfile
from pathlib import Path

import polars as pl
import pytest

from citizen_view.readers.spreadsheet import _flags, _sheet_part

COLUMNS = ["id", "first", "last", "born"]


def _flag_cells(book: Path, sheet, columns: list[str], wanted: set[str]) -> dict[tuple[int, str], str]:
    return _flags(_sheet_part(book, sheet), columns, wanted)


def _book(path: Path, *, dates: bool = True, formulas: bool = True) -> Path:
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path))
    ws, day = wb.add_worksheet(), wb.add_format({"num_format": "dd/mm/yyyy"})
    ws.write_row(0, 0, COLUMNS)
    ws.write_row(1, 0, ["R1", "Jan", "Smit", "17-05-1990"])
    ws.write_row(2, 0, ["R2", "Els", "Mol", "02-01-1980"])
    if dates:
        ws.write_datetime(2, 2, dt.datetime(2001, 1, 2), day)
        ws.write_datetime(1, 3, dt.datetime(1990, 5, 17), day)
    if formulas:
        ws.write_formula(3, 1, '=A4&"x"', None, "R3x")
        ws.write_formula(4, 1, "=1+1", None, 2)
    ws.write(3, 0, "R3")
    ws.write(4, 0, "R4")
    wb.close()
    return path


def _rewrite(path: Path, fn) -> Path:
    out = path.with_name("re_" + path.name)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            dst.writestr(item, fn(data) if item.filename.startswith("xl/worksheets/") else data)
    return out


def _uncached(data: bytes) -> bytes:  # as a tool that never calculates formulas writes them
    return data.replace(b"<v>R3x</v>", b"").replace(b"<v>2</v>", b"<v></v>")


def _prefixed(data: bytes) -> bytes:  # the same sheet with the spreadsheet namespace bound to a prefix
    ns = b'"http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    data = data.replace(b"xmlns=" + ns, b"xmlns:x=" + ns)
    return re.sub(rb"<(/?)([a-zA-Z]+)([ >/])", lambda m: b"<" + m[1] + b"x:" + m[2] + m[3], data)


DATES = {(3, "last"): "date", (2, "born"): "date"}
FORMULAS = {(4, "first"): "formula", (5, "first"): "formula"}


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("cached", DATES),
        ("uncached", DATES | FORMULAS),
        ("prefixed", DATES | FORMULAS),
    ],
)
def test_dates_and_formulas_without_values_are_flagged(tmp_path, variant, expected):
    book = _book(tmp_path / "p.xlsx")
    if variant != "cached":
        book = _rewrite(book, _uncached if variant == "uncached" else lambda d: _prefixed(_uncached(d)))
    assert _flag_cells(book, None, COLUMNS, set(COLUMNS)) == expected
    only_first = {k: v for k, v in expected.items() if k[1] == "first"}
    assert _flag_cells(book, None, COLUMNS, {"first"}) == only_first


def test_a_sheet_of_plain_text_has_nothing_to_flag(tmp_path):
    book = _book(tmp_path / "p.xlsx", dates=False, formulas=False)
    assert _flag_cells(book, None, COLUMNS, set(COLUMNS)) == {}
    styled_but_unused = _book(tmp_path / "s.xlsx", dates=False, formulas=True)  # cached values: nothing to flag
    assert _flag_cells(styled_but_unused, None, COLUMNS, set(COLUMNS)) == {}


# --- sheets that do not start at A1, cells without references, error values (red-team pass, 2026-12-05) ------------

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _raw_book(path: Path, rows: str) -> Path:
    """A workbook of one sheet whose <sheetData> is `rows` (inline strings), as other tools write them."""
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(
            "[Content_Types].xml",
            f'<Types xmlns="{pkg}/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
            'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName='
            '"/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"'
            '/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.worksheet+xml"/></Types>',
        )
        z.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="{pkg}/relationships"><Relationship Id="rId1" Type="{rel}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>',
        )
        z.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{_MAIN}" xmlns:r="{rel}"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets>'
            "</workbook>",
        )
        z.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<Relationships xmlns="{pkg}/relationships"><Relationship Id="rId1" Type="{rel}/worksheet" '
            'Target="worksheets/sheet1.xml"/></Relationships>',
        )
        z.writestr("xl/worksheets/sheet1.xml", f'<worksheet xmlns="{_MAIN}"><sheetData>{rows}</sheetData></worksheet>')
    return path


def _text(ref: str, value: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'


def _formula(ref: str) -> str:  # a formula saved without its value
    return f'<c r="{ref}"><f>VLOOKUP(A1,Other!A:B,2)</f></c>'


def _read(tmp_path, book: Path):
    from citizen_view.contract import load_sources
    from citizen_view.readers import read_xlsx

    (tmp_path / "sources.yaml").write_text(
        "sources:\n  - {name: p, path: p.xlsx, format: xlsx, record_id: id, fields: {full_name: name}}\n",
        encoding="utf-8",
    )
    return read_xlsx(load_sources(tmp_path / "sources.yaml").source("p"), book, book.name)


@pytest.mark.parametrize("layout", ["row 1 empty", "column A styled but empty", "data from column B"])
def test_a_sheet_that_does_not_start_at_a1_flags_the_right_cell_of_the_right_record(tmp_path, layout):
    top = 2 if layout == "row 1 empty" else 1
    first = "B" if layout == "data from column B" else "A"
    cols = [chr(ord(first) + k) for k in range(2)]
    styled = layout == "column A styled but empty"
    pad = (lambda r: f'<c r="A{r}" s="1"/>') if styled else (lambda r: "")
    cols = ["B", "C"] if styled else cols
    rows = [f'<row r="{top}">{pad(top)}{_text(f"{cols[0]}{top}", "id")}{_text(f"{cols[1]}{top}", "name")}</row>']
    for k in range(1, 5):
        r = top + k
        name = _formula(f"{cols[1]}{r}") if k == 2 else _text(f"{cols[1]}{r}", f"Person {k}")
        rows.append(f'<row r="{r}">{pad(r)}{_text(f"{cols[0]}{r}", f"R{k}")}{name}</row>')
    got = _read(tmp_path, _raw_book(tmp_path / "p.xlsx", "".join(rows)))
    assert got.rows.select("id", "name", "_line").rows() == [
        ("R1", "Person 1", top + 1),
        ("R2", None, top + 2),  # the formula's record, on its own line of the sheet
        ("R3", "Person 3", top + 3),
        ("R4", "Person 4", top + 4),
    ]
    flagged = [(r["id"], json.loads(r["_issues"])[0]["column"]) for r in got.rows.iter_rows(named=True) if r["_issues"]]
    assert flagged == [("R2", "name")]


def test_cells_without_references_a_row_of_formulas_and_error_values_are_accounted_for(tmp_path):
    rows = (
        '<row r="1"><c t="inlineStr"><is><t>id</t></is></c><c t="inlineStr"><is><t>name</t></is></c></row>'
        '<row r="2"><c t="inlineStr"><is><t>R1</t></is></c><c><f>A1&amp;"x"</f></c></row>'  # no references
        f'<row r="3">{_formula("A3")}{_formula("B3")}</row>'  # a record of formulas only, none saved with a value
        f'<row r="4">{_text("A4", "R4")}<c r="B4" t="e"><v>#N/A</v></c></row>'
    )
    got = _read(tmp_path, _raw_book(tmp_path / "p.xlsx", rows))
    assert got.rows.select("id", "name", "_line").rows() == [("R1", None, 2), (None, None, 3), ("R4", None, 4)]
    reasons = [[i["reason"].split(" (")[0] for i in json.loads(r)] for r in got.rows["_issues"]]
    assert reasons == [
        ["a formula saved without its computed value"],
        ["a formula saved without its computed value"] * 2,
        ["a spreadsheet error value such as #N/A or #REF!"],
    ]


@pytest.mark.parametrize(
    "layout",
    ["an empty unnamed column", "an empty inline string in A1", "a value tag with a space", "rows without references"],
)
def test_the_frame_and_the_flags_agree_on_where_each_column_is(tmp_path, layout):
    refs = layout != "rows without references"
    letters = {"an empty unnamed column": ["A", "C", "D"], "an empty inline string in A1": ["B", "C", "D"]}.get(
        layout, ["A", "B", "C"]
    )  # an empty unnamed column: B holds nothing

    def cell(col: int, row: int, value: str, *, date: bool = False) -> str:
        ref = f' r="{letters[col]}{row}"' if refs else ""
        return f'<c{ref} s="1"><v>{value}</v></c>' if date else f'<c{ref} t="inlineStr"><is><t>{value}</t></is></c>'

    top = 5 if not refs else 1
    rows = [[cell(0, top, "id"), cell(1, top, "name"), cell(2, top, "born")]]
    for k in (1, 2, 3):
        r = top + k  # the name of the second record is a date typed into the name column
        name = cell(1, r, "32878", date=True) if k == 2 else cell(1, r, f"Person {k}")
        rows.append([cell(0, r, f"R{k}"), name, cell(2, r, "05-01-1990")])
    if layout == "an empty inline string in A1":  # calamine skips it: the frame starts at B
        rows[0].insert(0, '<c r="A1" t="inlineStr"><is><t></t></is></c>')
    if layout == "a value tag with a space":  # calamine reads <v >7</v>: the record R1 has its id
        rows[1][0] = f'<c r="A{top + 1}"><v >7</v></c>'
    body = "".join(
        f"<row{f' r={chr(34)}{top + n}{chr(34)}' if refs or n == 0 else ''}>{''.join(row)}</row>"
        for n, row in enumerate(rows)
    )
    book = _raw_book(tmp_path / "p.xlsx", body)
    with zipfile.ZipFile(book, "a") as z:  # a style that shows numbers as dates, for the cell in the name column
        z.writestr(
            "xl/styles.xml",
            f'<styleSheet xmlns="{_MAIN}"><numFmts count="1"><numFmt numFmtId="164" formatCode="dd/mm/yyyy"/></numFmts>'
            '<cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="164" applyNumberFormat="1"/></cellXfs></styleSheet>',
        )
    got = _read(tmp_path, book)
    flagged = [
        (r["_line"], json.loads(r["_issues"])[0]["column"]) for r in got.rows.iter_rows(named=True) if r["_issues"]
    ]
    assert flagged == [(top + 2, "name")]
    assert got.rows.filter(pl.col("_line") == top + 2)["name"].to_list() == [None]
    assert got.rows["born"].to_list() == ["05-01-1990"] * 3  # no valid date wiped
    assert got.rows["_line"].to_list() == [top + 1, top + 2, top + 3]


def test_an_id_kept_as_a_number_loads_as_the_sheet_shows_it(tmp_path):
    """A register exported through a spreadsheet keeps IDs as numbers shown through a format of zeros: a Norwegian
    ID of someone born on the 1st to 9th of a month loses its first digit as a number. It loads as shown, and passes
    its checksum; a cell without that format, or a number that is not whole, stays as the number it is."""
    import xlsxwriter

    from tests.test_ingest import _issues, _load

    book = tmp_path / "p.xlsx"
    wb = xlsxwriter.Workbook(str(book))
    ws = wb.add_worksheet()
    fnr, ref = wb.add_format({"num_format": "00000000000"}), wb.add_format({"num_format": '"K-"000000'})
    ws.write_row(0, 0, ["id", "fnr", "name"])
    ws.write_number(1, 0, 42, ref), ws.write_number(1, 1, 1019000083, fnr), ws.write(1, 2, "Kari Nordmann")
    ws.write_number(2, 0, 43, ref), ws.write_number(2, 1, 1019000083), ws.write(2, 2, "Ola Nordmann")  # no format
    ws.write_number(3, 0, 44, ref), ws.write_number(3, 1, 12.5, fnr), ws.write(3, 2, "Per Hansen")
    wb.close()
    (tmp_path / "sources.yaml").write_text(
        "country: NO\nsources:\n  - {name: p, path: p.xlsx, format: xlsx, record_id: id, "
        "fields: {national_id: fnr, full_name: name}}\n",
        encoding="utf-8",
    )
    from citizen_view.contract import load_sources
    from citizen_view.readers import read_xlsx

    sources = load_sources(tmp_path / "sources.yaml")
    got = read_xlsx(sources.source("p"), book, book.name)
    assert got.rows.select("id", "fnr").rows() == [
        ("K-000042", "01019000083"),
        ("K-000043", "1019000083"),
        ("K-000044", "12.5"),
    ]
    _report, canonical, _rejected = _load(tmp_path, "p")  # held back or not (two bad IDs of three), as loaded
    ids = canonical.select("source_record_id", "national_id").rows()
    assert ids == [("K-000042", "01019000083"), ("K-000043", None), ("K-000044", None)]
    issues = _issues(tmp_path, "p").select("record_id", "field").rows()
    assert issues == [("K-000043", "national_id"), ("K-000044", "national_id")]


@pytest.mark.parametrize(
    ("code", "number", "shown"),
    [
        ("000000000", "12345678", "012345678"),
        ("000\\-00\\-0000", "12345678", "012-34-5678"),
        ("00000", "1234567", "1234567"),  # more digits than places: all shown, as a spreadsheet does
        ('"NL"000', "7", "NL007"),
        ("000 000", "12345", "012 345"),
    ],
)
def test_a_format_of_zeros_pads_as_a_spreadsheet_shows(code, number, shown):
    from citizen_view.readers.spreadsheet import _digit_pattern, _shown

    assert _shown(number, _digit_pattern(code)) == shown


@pytest.mark.parametrize(
    "code", ["0", "#,##0", "0.00", "00000;[Red]-00000", "[<=9999]0000;General", "00%", "00/00", "General"]
)
def test_formats_that_are_not_digits_padded_with_zeros_are_left_alone(code):
    from citizen_view.readers.spreadsheet import _digit_pattern

    assert _digit_pattern(code) is None


def test_a_repeated_header_name_stops_the_workbook_as_it_stops_a_csv_file(tmp_path):
    """calamine renames a repeated name (`name`, `name_1`) and then a real `name_1` column to `name_1_1`: a mapping
    of `name_1` read the second `name` column. The header is read as written, and a repeat is refused."""
    import xlsxwriter

    from citizen_view.contract import SourceError, load_sources
    from citizen_view.readers import read_xlsx

    def book(header: list[str]) -> Path:
        path = tmp_path / "p.xlsx"
        wb = xlsxwriter.Workbook(str(path))
        ws = wb.add_worksheet()
        ws.write_row(1, 1, header)  # the frame starts at B2: the header is its first row, wherever that is
        ws.write_row(2, 1, ["R1", "first", "second", "third"])
        wb.close()
        return path

    (tmp_path / "sources.yaml").write_text(
        "sources:\n  - {name: p, path: p.xlsx, format: xlsx, record_id: id, fields: {full_name: name_1}}\n",
        encoding="utf-8",
    )
    source = load_sources(tmp_path / "sources.yaml").source("p")
    with pytest.raises(SourceError, match=r"repeats column name\(s\) \['name'\] in its header"):
        read_xlsx(source, book(["id", "name", "name", "name_1"]), "p.xlsx")
    got = read_xlsx(source, book(["id", "name", "", "name_1"]), "p.xlsx").rows
    assert got.select("id", "name_1", "__UNNAMED__2", "_line").rows() == [("R1", "third", "second", 3)]
