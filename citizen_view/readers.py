"""Readers for legacy extract formats: every row either parses into string columns or is rejected with a reason.

Each reader returns the rows it could parse (all values as text, plus `_file` and `_line`, the 1-based
physical line or spreadsheet row) and the rows it could not, with the raw text. Nothing is dropped
silently: rows read = rows parsed + rows rejected. Blank lines are not rows.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from citizen_view.contract import SourceError

if TYPE_CHECKING:
    from citizen_view.contract import SourceConfig


@dataclass(frozen=True)
class Reject:
    """A row that could not be loaded, kept with the reason."""

    file: str
    line: int
    reason: str
    raw: str


@dataclass
class FileRead:
    """What one extract file gave: parsed rows (text columns + `_file`, `_line`) and rejected rows."""

    rows: pl.DataFrame
    rejects: list[Reject] = field(default_factory=list)


def read_file(source: SourceConfig, path: Path, *, display_name: str) -> FileRead:
    """Read one extract file of a source in its declared format."""
    reader = _READERS[source.format]
    try:
        return reader(source, path, display_name)
    except SourceError:
        raise
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        raise SourceError(f"source {source.name!r}: file {display_name!r} cannot be read as {source.format}: {exc}") from exc


# --- text decoding ---------------------------------------------------------------------------------


def _decode_lines(data: bytes, encoding: str) -> tuple[list[str], set[int]]:
    """Split into lines (without line ends); return the 0-based indexes of lines that do not decode."""
    try:
        text = data.decode(encoding)
        if text.startswith("\ufeff"):
            text = text[1:]
        return text.splitlines(), set()
    except UnicodeDecodeError:
        pass
    lines: list[str] = []
    bad: set[int] = set()
    for i, raw in enumerate(data.splitlines()):
        try:
            lines.append(raw.decode(encoding))
        except UnicodeDecodeError:
            lines.append(raw.decode(encoding, errors="backslashreplace"))
            bad.add(i)
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    return lines, bad


def _undecodable(encoding: str) -> str:
    return f"undecodable bytes for encoding {encoding}"


def _frame(columns: list[str], values: list[list[str | None]], files: str, lines: list[int]) -> pl.DataFrame:
    data: dict[str, list] = {c: v for c, v in zip(columns, values)}
    df = pl.DataFrame(data, schema={c: pl.String for c in columns}) if columns else pl.DataFrame()
    return df.with_columns(pl.lit(files).alias("_file"), pl.Series("_line", lines, dtype=pl.Int64))


# --- csv -------------------------------------------------------------------------------------------


def read_csv(source: SourceConfig, path: Path, name: str) -> FileRead:
    """Delimited text; a row with the wrong number of fields is rejected."""
    encoding = str(source.option("encoding"))
    lines, bad = _decode_lines(path.read_bytes(), encoding)
    rejects: list[Reject] = []
    delimiter = str(source.option("delimiter"))
    quotechar = source.option("quotechar") or None
    # Line ends are gone: feed csv one logical line at a time but let quoted newlines join lines.
    good_idx = [i for i in range(len(lines)) if i not in bad] if bad else range(len(lines))
    for i in sorted(bad):
        rejects.append(Reject(name, i + 1, _undecodable(encoding), lines[i]))
    it = iter(good_idx)

    def line_source():
        for i in it:
            line_source.current = i  # type: ignore[attr-defined]
            yield lines[i]

    line_source.current = -1  # type: ignore[attr-defined]
    reader = csv.reader(line_source(), delimiter=delimiter, quotechar=quotechar, strict=True)
    header: list[str] | None = None if source.option("header") else []
    cols: list[list[str | None]] = []
    line_nos: list[int] = []
    start = 0
    while True:
        start = line_source.current + 1  # type: ignore[attr-defined]
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            i = line_source.current  # type: ignore[attr-defined]
            rejects.append(Reject(name, i + 1, f"malformed quoting: {exc}", lines[i]))
            continue
        line_no = _first_line(start, line_source.current, bad) + 1  # type: ignore[attr-defined]
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if header is None:
            header = [h.strip() for h in row]
            _check_header(source, name, header)
            cols = [[] for _ in header]
            continue
        if not header:
            header = [f"column_{k + 1}" for k in range(len(row))]
            cols = [[] for _ in header]
        if len(row) != len(header):
            rejects.append(
                Reject(name, line_no, f"wrong field count: {len(row)} fields, expected {len(header)}", delimiter.join(row))
            )
            continue
        for k, v in enumerate(row):
            cols[k].append(v if v != "" else None)
        line_nos.append(line_no)
    if header is None:
        raise SourceError(f"source {source.name!r}: file {name!r} is empty (no header row)")
    return FileRead(_frame(header, cols, name, line_nos), rejects)


def _first_line(start: int, current: int, bad: set[int]) -> int:
    """The first decodable line index at or after `start` (a record's first physical line)."""
    i = start
    while i in bad and i < current:
        i += 1
    return i


def _check_header(source: SourceConfig, name: str, header: list[str]) -> None:
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise SourceError(f"source {source.name!r}: file {name!r} repeats column name(s) {dupes} in its header")


# --- fixed width -----------------------------------------------------------------------------------


def read_fixed_width(source: SourceConfig, path: Path, name: str) -> FileRead:
    """Mainframe-style fixed-width records; a line of the wrong length is rejected."""
    encoding = str(source.option("encoding"))
    widths: dict[str, int] = dict(source.option("widths"))
    total = sum(widths.values())
    lines, bad = _decode_lines(path.read_bytes(), encoding)
    rejects: list[Reject] = []
    skip_header = bool(source.option("header"))
    keep_text: list[str] = []
    keep_no: list[int] = []
    for i, line in enumerate(lines):
        if skip_header and i == 0:
            continue
        if i in bad:
            rejects.append(Reject(name, i + 1, _undecodable(encoding), line))
            continue
        if not line.strip():
            continue
        if len(line) != total:
            rejects.append(
                Reject(name, i + 1, f"wrong field count: record is {len(line)} characters, expected {total}", line)
            )
            continue
        keep_text.append(line)
        keep_no.append(i + 1)
    s = pl.Series("line", keep_text, dtype=pl.String)
    exprs = []
    offset = 0
    for col, width in widths.items():
        exprs.append(pl.col("line").str.slice(offset, width).str.strip_chars().replace("", None).alias(col))
        offset += width
    df = pl.DataFrame(s).select(exprs)
    return FileRead(df.with_columns(pl.lit(name).alias("_file"), pl.Series("_line", keep_no, dtype=pl.Int64)), rejects)


# --- JSON lines ------------------------------------------------------------------------------------


def read_jsonl(source: SourceConfig, path: Path, name: str) -> FileRead:
    """One JSON object per line; nested objects become dotted columns, lists stay as JSON text."""
    encoding = str(source.option("encoding"))
    lines, bad = _decode_lines(path.read_bytes(), encoding)
    rejects: list[Reject] = []
    records: list[dict[str, str | None]] = []
    line_nos: list[int] = []
    columns: dict[str, None] = {}
    for i, line in enumerate(lines):
        if i in bad:
            rejects.append(Reject(name, i + 1, _undecodable(encoding), line))
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            rejects.append(Reject(name, i + 1, f"invalid JSON: {exc.msg} at column {exc.colno}", line))
            continue
        if not isinstance(obj, dict):
            rejects.append(Reject(name, i + 1, f"expected a JSON object, got {type(obj).__name__}", line))
            continue
        flat: dict[str, str | None] = {}
        _flatten(obj, "", flat)
        for k in flat:
            if k not in columns:
                columns[k] = None
        records.append(flat)
        line_nos.append(i + 1)
    cols = list(columns)
    values = [[r.get(c) for r in records] for c in cols]
    return FileRead(_frame(cols, values, name, line_nos), rejects)


def _flatten(obj: dict, prefix: str, out: dict[str, str | None]) -> None:
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            _flatten(v, key + ".", out)
        elif isinstance(v, list):
            out[key] = json.dumps(v, ensure_ascii=False)
        elif v is None or v == "":
            out[key] = None
        elif isinstance(v, bool):
            out[key] = "true" if v else "false"
        else:
            out[key] = str(v)


# --- spreadsheets and parquet ----------------------------------------------------------------------


def read_xlsx(source: SourceConfig, path: Path, name: str) -> FileRead:
    """First (or the named) sheet of a workbook; header in row 1, every cell read as text."""
    sheet = source.option("sheet")
    kwargs: dict = {"sheet_name": sheet} if isinstance(sheet, str) else {"sheet_id": (sheet or 0) + 1}
    df = pl.read_excel(
        path, engine="calamine", infer_schema_length=0, drop_empty_rows=False, raise_if_empty=False, **kwargs
    )
    _check_header(source, name, df.columns)
    df = df.with_columns(pl.col(c).cast(pl.String).str.strip_chars().replace("", None) for c in df.columns)
    df = df.with_columns(pl.int_range(2, df.height + 2, dtype=pl.Int64).alias("_line"), pl.lit(name).alias("_file"))
    data_cols = [c for c in df.columns if c not in ("_line", "_file")]
    if data_cols:
        df = df.filter(~pl.all_horizontal(pl.col(c).is_null() for c in data_cols))
    return FileRead(df.select([*data_cols, "_file", "_line"]))


def read_parquet(source: SourceConfig, path: Path, name: str) -> FileRead:
    """A Parquet file; typed columns are kept as their text form (dates as ISO yyyy-mm-dd)."""
    df = pl.read_parquet(path)
    df = df.with_columns(pl.col(c).cast(pl.String) for c in df.columns)
    df = df.with_columns(pl.lit(name).alias("_file"), pl.int_range(1, df.height + 1, dtype=pl.Int64).alias("_line"))
    return FileRead(df)


_READERS = {
    "csv": read_csv,
    "fixed_width": read_fixed_width,
    "jsonl": read_jsonl,
    "xlsx": read_xlsx,
    "parquet": read_parquet,
}


def raw_text(row: dict) -> str:
    """A parsed row as JSON text, for rejected_records.raw when the row was rejected after parsing."""
    return json.dumps({k: v for k, v in row.items() if not k.startswith("_")}, ensure_ascii=False)


__all__ = ["FileRead", "Reject", "read_file", "raw_text"]
