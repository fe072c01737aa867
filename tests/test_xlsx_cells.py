"""Which spreadsheet cells the xlsx reader flags (a formula without its value, a date-typed cell), read from the
sheet's XML: with and without cached formula values, under a prefixed namespace, and in a sheet with neither."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path

import pytest

from citizen_view.readers import _flag_cells

COLUMNS = ["id", "first", "last", "born"]


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
