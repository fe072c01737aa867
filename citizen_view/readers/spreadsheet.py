"""Workbooks (xlsx): calamine reads the cells' text; the sheet's XML says which of them are dates, formulas without
their values, error values or numbers shown through a format of zeros, and where calamine's frame starts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from citizen_view.readers.common import ISSUES, FileRead, check_header

if TYPE_CHECKING:
    from citizen_view.contract import SourceConfig


def read_xlsx(source: SourceConfig, path: Path, name: str) -> FileRead:
    """First (or the named) sheet of a workbook; header in row 1, every cell read as text.

    In mapped columns, a formula saved without its computed value and a cell typed as a date where text is
    expected are set aside (field_issues); a date cell in a mapped date field is written in the field's format.
    """
    sheet = source.option("sheet")
    kwargs: dict = {"sheet_name": sheet} if isinstance(sheet, str) else {"sheet_id": (sheet or 0) + 1}
    cells = pl.read_excel(
        path,
        engine="calamine",
        infer_schema_length=0,
        drop_empty_rows=False,
        drop_empty_cols=False,  # the cells flagged from the sheet's XML are placed by column: none may go missing
        raise_if_empty=False,
        read_options={"header_row": None},  # the header as written: calamine would rename a repeated name
        **kwargs,
    )
    header = _header(cells)
    check_header(source, name, header)
    df = cells.slice(1).rename(dict(zip(cells.columns, header, strict=True)))
    part = _sheet_part(path, sheet)
    first = part.origin[0] + 1 if part is not None else 2  # the row after the frame's first, its header
    df = df.with_columns(pl.col(c).cast(pl.String).str.strip_chars().replace("", None) for c in df.columns)
    df = df.with_columns(
        pl.int_range(first, first + df.height, dtype=pl.Int64).alias("_line"), pl.lit(name).alias("_file")
    )
    data_cols = [c for c in df.columns if c not in ("_line", "_file")]
    df = _typed_cells(source, part, df, data_cols, first=first)
    if data_cols:  # a row of empty cells is no record; one whose values were all set aside is (its issues say why)
        df = df.filter(~pl.all_horizontal(pl.col(c).is_null() for c in data_cols) | pl.col(ISSUES).is_not_null())
    return FileRead(df.select([*data_cols, "_file", "_line", ISSUES]))


def _header(cells: pl.DataFrame) -> list[str]:
    """The frame's first row as column names, as calamine names an empty one (`__UNNAMED__<n>`), without the
    suffix calamine gives a repeated name (`name`, `name_1`): a real `name_1` column would be renamed `name_1_1`,
    and a mapping of `name_1` would read the second `name`. check_header refuses a repeat, as in a CSV file."""
    first = cells.row(0) if cells.height else [None] * cells.width
    return [f"__UNNAMED__{i}" if v is None or v == "" else v for i, v in enumerate(first)]


_XL = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


_XL_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


_BUILTIN_DATE_FORMATS = {*range(14, 23), 45, 46, 47}  # ECMA-376 18.8.30: the built-in date and time formats


def _typed_cells(
    source: SourceConfig, part: _SheetPart | None, df: pl.DataFrame, data_cols: list[str], *, first: int
) -> pl.DataFrame:
    """Apply what the sheet's XML says about mapped cells (calamine gives their text only); adds the ISSUES column.
    `first`: the sheet row of the frame's first row."""
    by_column: dict[str, list[str]] = {}
    for canonical, mapping in source.fields.items():
        by_column.setdefault(mapping.column, []).append(canonical)
    if source.record_id:
        by_column.setdefault(source.record_id, [])
    flagged = _flags(part, data_cols, set(by_column)) if part is not None else {}
    values = {c: df.get_column(c).to_list() for c in by_column if c in df.columns}
    issues: list[list[dict[str, str]] | None] = [None] * df.height
    for (line, column), kind in flagged.items():
        pos = line - first
        if not 0 <= pos < df.height or column not in values:
            continue
        raw = values[column][pos]
        if kind.startswith("shown:"):  # a whole number shown through a format of zeros: the text the sheet shows
            if raw:
                values[column][pos] = _shown(raw, part.digit_styles[int(kind[6:])]) if part is not None else raw
            continue
        date_fields = [f for f in by_column[column] if f in ("date_of_birth", "date_of_death")]
        if kind == "date" and date_fields and raw:
            fmt = source.fields[date_fields[0]].format or "%Y-%m-%d"
            parsed = _calamine_datetime(raw)
            if parsed is not None:
                values[column][pos] = parsed.strftime(fmt)  # the date as the source meant it, in its declared format
                continue
        reason = {
            "formula": f"a formula saved without its computed value (column {column})",
            "error": f"a spreadsheet error value such as #N/A or #REF! (column {column})",
        }.get(kind, f"a cell typed as a date where text is expected (column {column})")
        values[column][pos] = None
        issues[pos] = [*(issues[pos] or []), {"column": column, "raw": raw or "", "reason": reason}]
    return df.with_columns(
        *(pl.Series(c, v, dtype=pl.String) for c, v in values.items()),
        pl.Series(ISSUES, [json.dumps(i, ensure_ascii=False) if i else None for i in issues], dtype=pl.String),
    )


def _calamine_datetime(text: str):
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass
class _SheetPart:
    """A worksheet's XML, the workbook's date styles and digit styles (_cell_styles), and where calamine's frame
    starts: (row, column index) of the first row and the leftmost column holding a value (1-based row, 0-based
    column)."""

    xml: bytes
    date_styles: set[int]
    origin: tuple[int, int]
    digit_styles: dict[int, tuple[str | None, ...]] = field(default_factory=dict)


def _sheet_part(path: Path, sheet: str | int | None) -> _SheetPart | None:
    """The chosen sheet's part of the workbook (None if the workbook does not name it)."""
    import xml.etree.ElementTree as ET
    import zipfile

    with zipfile.ZipFile(path) as z:
        book = ET.fromstring(z.read("xl/workbook.xml"))
        sheets = list(book.iter(f"{_XL}sheet"))
        chosen = (
            next((e for e in sheets if e.get("name") == sheet), None) if isinstance(sheet, str) else sheets[sheet or 0]
        )
        if chosen is None:
            return None
        rels = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
        target = next(r.get("Target", "") for r in rels if r.get("Id") == chosen.get(_XL_REL))
        member = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        date_styles, digit_styles = _cell_styles(z, ET)
        sheet_xml = z.read(member)
    return _SheetPart(sheet_xml, date_styles, _origin(sheet_xml), digit_styles)


# Rows and cells of a sheet's XML, and what makes calamine count a cell as holding a value.
_ROW = re.compile(rb"<(?:[\w.-]+:)?row\b([^>]*?)(/?)>")


_ROW_END = re.compile(rb"</(?:[\w.-]+:)?row>")


_CELL = re.compile(rb"<(?:[\w.-]+:)?c\b([^>]*?)(/?)>")


_CELL_END = re.compile(rb"</(?:[\w.-]+:)?c>")


_REF = re.compile(rb"""\br\s*=\s*["']([A-Za-z]{1,3})([0-9]+)["']""")


_ROW_NUMBER = re.compile(rb"""\br\s*=\s*["']([0-9]+)["']""")


_V_TEXT = re.compile(rb"<(?:[\w.-]+:)?v\b[^>/]*>[^<]")


_V_OR_IS = re.compile(rb"<(?:[\w.-]+:)?(?:v|is)\b")


_TEXT_TYPE = re.compile(rb"""\bt\s*=\s*["'](?:str|inlineStr)["']""")


def _origin(sheet_xml: bytes) -> tuple[int, int]:
    """(row, column index) where calamine's frame of the sheet starts: the first row with a value, the leftmost
    column with one. An empty cell that only carries a style, or a sheet that starts below row 1 or right of
    column A, moves it. Rows come in order, and so do the cells of a row: the first row with a value gives the row,
    and each row's first cell with a value is the only one that can move the column. Rows and cells written without
    a reference (it is optional) count on from the one before."""
    origin_row, origin_col, row = None, None, 0
    for m in _ROW.finditer(sheet_xml):
        number = _ROW_NUMBER.search(m[1])
        row = int(number[1]) if number else row + 1
        if m[2]:  # <row/>: no cells
            continue
        end = _ROW_END.search(sheet_xml, m.end())
        if end is None:
            break
        col = _first_value_column(sheet_xml, m.end(), end.start())
        if col is not None:
            if origin_row is None:
                origin_row, origin_col = row, col
            else:
                origin_col = min(origin_col, col)
            if origin_col == 0:
                break
    return (origin_row or 1, origin_col or 0)


def _first_value_column(sheet_xml: bytes, start: int, end: int) -> int | None:
    """The column index of the first cell with a value between `start` and `end` (one row's cells), if any."""
    position = 0
    for c in _CELL.finditer(sheet_xml, start, end):
        ref = _REF.search(c[1])
        col = _col_index(ref[1].decode()) if ref else position
        position = col + 1
        if c[2]:  # <c .../>: no value
            continue
        stop = close.start() if (close := _CELL_END.search(sheet_xml, c.end(), end)) else end
        # calamine keeps a text cell even when its text is empty, and any cell whose value has characters
        if (_TEXT_TYPE.search(c[1]) and _V_OR_IS.search(sheet_xml, c.end(), stop)) or _V_TEXT.search(
            sheet_xml, c.end(), stop
        ):
            return col
    return None


def _flags(part: _SheetPart, columns: list[str], wanted: set[str]) -> dict[tuple[int, str], str]:
    """{(row, column name): "formula" | "date" | "error" | "shown:<style>"} for cells of `wanted` columns holding a
    formula without a cached value, typed as a date (a date style on a number, or an ISO date cell), holding an error
    value (#N/A), or a number shown through a format of zeros (a digit style), read from the sheet's XML."""
    if not _may_flag(part.xml, part.date_styles | set(part.digit_styles)):
        return {}
    styles = (part.date_styles, set(part.digit_styles))
    return _CellFlagger(columns, wanted, *styles, first_col=part.origin[1]).parse(part.xml)


# Markup that may make a cell worth flagging (a superset: a hit only means the sheet is parsed cell by cell).
_FORMULA_TAG = re.compile(rb"<(?:[\w.-]+:)?f[\s/>]")


_DATE_TYPE = re.compile(rb"\bt\s*=\s*[\"'][de][\"']")  # a date cell, or an error value (#N/A)


_STYLE = re.compile(rb"\bs\s*=\s*[\"']([^\"']*)[\"']")


def _may_flag(sheet_xml: bytes, styles: set[int]) -> bool:
    """Whether any cell of the sheet can hold a formula, a date or a number in one of `styles` (date and digit
    styles): a fast scan of the bytes (most extracts have none, and then no cell needs to be looked at)."""
    if _FORMULA_TAG.search(sheet_xml) or _DATE_TYPE.search(sheet_xml):
        return True
    if not styles:
        return False
    used = set(_STYLE.findall(sheet_xml))
    return any(not v.isdigit() or int(v) in styles for v in used)


class _CellFlagger:
    """Streams a worksheet's XML through expat (C) and flags cells of wanted columns: one Python call per element
    start and end, no element objects (ElementTree's iterparse built one per cell, its value and its formula)."""

    def __init__(
        self, columns: list[str], wanted: set[str], date_styles: set[int], digit_styles: set[int], *, first_col: int = 0
    ):
        self.columns, self.wanted, self.date_styles = columns, wanted, date_styles
        self.digit_styles = digit_styles  # number formats of zeros (_digit_pattern): their cells are flagged too
        self.out: dict[tuple[int, str], str] = {}
        self.first_col = first_col  # the frame's first column (_origin)
        self.depth = 0
        self.row, self.next_col = 0, 0  # for cells without a reference: their row's and the place after the last
        self.cell: list | None = None  # [depth, row, column, t, s, has formula, has value, value has text]
        self._index: dict[str, int] = {}

    def parse(self, sheet_xml: bytes) -> dict[tuple[int, str], str]:
        from xml.parsers import expat

        parser = expat.ParserCreate(namespace_separator="}")
        parser.buffer_text = True
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        self._parser = parser
        parser.Parse(sheet_xml, True)
        return self.out

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        cell = self.cell
        if cell is not None:
            if self.depth == cell[0] + 1:
                if name == _XL_F:
                    cell[5] = True
                elif name == _XL_V and not cell[6]:  # find() takes the first <v> child: only its text counts
                    cell[6] = True
                    self._parser.CharacterDataHandler = self._text
            return
        if name == _XL_C:
            ref = attrs.get("r")
            if ref:
                letters = ref.rstrip("0123456789")
                index = self._index.get(letters)
                if index is None:
                    index = self._index[letters] = _col_index(letters)
                row = int(ref[len(letters) :])
            else:  # the reference is optional: the cell after the last one of its row
                index, row = self.next_col, self.row
            self.next_col = index + 1
            k = index - self.first_col
            if 0 <= k < len(self.columns) and self.columns[k] in self.wanted:
                self.cell = [self.depth, row, self.columns[k], attrs.get("t"), attrs.get("s", 0), False, False, False]
        elif name == _XL_ROW:
            self.row = int(attrs.get("r") or self.row + 1)
            self.next_col = 0

    def _text(self, data: str) -> None:
        if data and self.cell is not None:
            self.cell[7] = True

    def _end(self, name: str) -> None:
        cell = self.cell
        if cell is not None:
            if self.depth == cell[0] + 1 and name == _XL_V:
                self._parser.CharacterDataHandler = None
            elif self.depth == cell[0]:
                self._flag(cell)
                self.cell = None
        self.depth -= 1

    def _flag(self, cell: list) -> None:
        _depth, row, column, t, s, has_formula, has_value, value_text = cell
        style = int(s) if str(s).isdigit() else -1
        if has_formula and not (has_value and value_text):
            self.out[(row, column)] = "formula"
        elif t == "d" or ((t or "n") == "n" and style in self.date_styles):
            self.out[(row, column)] = "date"
        elif t == "e":
            self.out[(row, column)] = "error"
        elif (t or "n") == "n" and style in self.digit_styles:
            self.out[(row, column)] = f"shown:{style}"


_XL_NS = _XL[1:-1]


_XL_C, _XL_V, _XL_F, _XL_ROW = (f"{_XL_NS}}}{tag}" for tag in ("c", "v", "f", "row"))


def _cell_styles(z, ET) -> tuple[set[int], dict[int, tuple[str | None, ...]]]:  # noqa: N803
    """Indexes of the cell formats that show a number as a date or time, and of those that show it through zeros
    (`000000000`, `000\\-00\\-0000`), with their pattern (_digit_pattern)."""
    try:
        styles = ET.fromstring(z.read("xl/styles.xml"))
    except KeyError:
        return set(), {}
    date_ids = set(_BUILTIN_DATE_FORMATS)
    digit_formats: dict[int, tuple[str | None, ...]] = {}
    for fmt in styles.iter(f"{_XL}numFmt"):
        code = fmt.get("formatCode", "")
        pattern = _digit_pattern(code)
        if pattern is not None:
            digit_formats[int(fmt.get("numFmtId", -1))] = pattern
        code = re.sub(r'"[^"]*"|\[[^\]]*\]|\\.', "", code).lower()
        if re.search(r"[dyhs]|m", code) and "general" not in code:
            date_ids.add(int(fmt.get("numFmtId", -1)))
    xfs = styles.find(f"{_XL}cellXfs")
    formats = [int(xf.get("numFmtId", 0)) for xf in (xfs if xfs is not None else [])]
    dates = {i for i, f in enumerate(formats) if f in date_ids}
    return dates, {i: digit_formats[f] for i, f in enumerate(formats) if f in digit_formats}


def _digit_pattern(code: str) -> tuple[str | None, ...] | None:
    """A number format that shows a whole number as digits padded with zeros, perhaps with literal separators (an ID
    or postcode kept as a number: `00000000000`, `000\\-00\\-0000`, `"NL"000`), as its parts: None for each digit
    place, text for a literal. None for any other format (one with #, ?, a decimal point, a thousands separator, a
    colour, a condition or more than one section), which the sheet's text from calamine already matches or which
    is not an identifier's."""
    parts: list[str | None] = []
    i = 0
    while i < len(code):
        ch = code[i]
        if ch == "0":
            parts.append(None)
        elif ch == "\\" and i + 1 < len(code):
            parts.append(code[i + 1])
            i += 1
        elif ch == '"':
            end = code.find('"', i + 1)
            if end < 0:
                return None
            parts.append(code[i + 1 : end])
            i = end
        elif ch in " -()":
            parts.append(ch)
        else:
            return None
        i += 1
    return tuple(parts) if parts.count(None) >= 2 else None


def _shown(text: str, pattern: tuple[str | None, ...]) -> str:
    """The cell's number (`text`, as calamine writes it) as a digit pattern shows it: padded with zeros to the
    pattern's digit places, the digits beyond them in the first place, as a spreadsheet does. A number that is not
    whole or is negative is left as it is: such a value is no identifier, and its checks say so."""
    if not (text.isascii() and text.isdigit()):
        return text
    places = pattern.count(None)
    digits = text.zfill(places)
    extra, taken, out = len(digits) - places, 0, []
    for part in pattern:
        if part is None:
            width = 1 + extra if taken == 0 else 1
            out.append(digits[taken : taken + width])
            taken += width
        else:
            out.append(part)
    return "".join(out)


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters.rstrip("0123456789").upper():
        n = n * 26 + ord(ch) - 64
    return n - 1
