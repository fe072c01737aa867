"""Mainframe-style fixed-width records, one per line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from citizen_view.readers.common import FileRead, Reject, check_accounting, check_header
from citizen_view.readers.text import split_lines

if TYPE_CHECKING:
    from citizen_view.contract import SourceConfig


def read_fixed_width(source: SourceConfig, path: Path, name: str) -> FileRead:
    """Mainframe-style fixed-width records, one per line; a line of the wrong length is rejected.

    `width_unit: bytes`: the widths count encoded bytes, as a writer that pads bytes lays them out (a name with an
    "ø" then takes one character less of its field in UTF-8). `trimmed_lines`: a line shorter than the record
    length is read as if the trailing blanks a transfer trimmed were still there; a longer one is still rejected."""
    encoding = str(source.option("encoding"))
    widths: dict[str, int] = dict(source.option("widths"))
    check_header(source, name, list(widths))
    total = sum(widths.values())
    in_bytes = source.option("width_unit") == "bytes"
    trimmed = source.option("trimmed_lines") is True
    lines = split_lines(path.read_bytes(), encoding, name)
    rejects: list[Reject] = []
    skip_header = bool(source.option("header"))
    keep_text: list[str] = []
    keep_no: list[int] = []
    header_lines = blank = 0
    for i, line in enumerate(lines.text):
        if skip_header and i == 0:
            header_lines = 1
            continue
        if i in lines.bad:
            rejects.append(Reject(name, i + 1, lines.bad[i], line))
            continue
        if not line.strip():
            blank += 1
            continue
        record = line
        if len(line) != total or (in_bytes and not line.isascii()):  # most lines: neither, and no call
            record, why = _record(line, widths, total, encoding, in_bytes=in_bytes, trimmed=trimmed)
            if record is None:
                rejects.append(Reject(name, i + 1, why, line))
                continue
        keep_text.append(record)
        keep_no.append(i + 1)
    check_accounting(name, len(lines.text), header=header_lines, blank=blank, records=len(keep_text) + len(rejects))
    s = pl.Series("line", keep_text, dtype=pl.String)
    exprs = []
    offset = 0
    for col, width in widths.items():
        exprs.append(pl.col("line").str.slice(offset, width).str.strip_chars().replace("", None).alias(col))
        offset += width
    df = pl.DataFrame(s).select(exprs)
    rows = df.with_columns(pl.lit(name).alias("_file"), pl.Series("_line", keep_no, dtype=pl.Int64))
    return FileRead(rows, rejects, records=len(keep_text) + len(rejects))


def _record(
    line: str, widths: dict[str, int], total: int, encoding: str, *, in_bytes: bool, trimmed: bool
) -> tuple[str | None, str]:
    """The line laid out in characters, one field's width each (for slicing), or None and why it is rejected."""
    if in_bytes and not line.isascii():
        data = line.encode(encoding)
        if trimmed and len(data) < total:
            data += b" " * (total - len(data))
        if len(data) != total:
            return None, f"wrong field count: record is {len(data)} bytes in {encoding}, expected {total}"
        fields, offset = [], 0
        for column, width in widths.items():
            try:
                fields.append(data[offset : offset + width].decode(encoding).ljust(width))
            except UnicodeDecodeError:
                return None, f"a character split across the edge of field {column!r} (byte {offset + width})"
            offset += width
        return "".join(fields), ""
    if trimmed and len(line) < total:
        line = line.ljust(total)
    if len(line) == total:
        return line, ""
    why = f"wrong field count: record is {len(line)} characters, expected {total}"
    if not in_bytes and not line.isascii() and len(line.encode(encoding, "replace")) == total:
        why += f" (its {total} bytes in {encoding} are: the widths may count bytes, options.width_unit: bytes)"
    elif not trimmed and len(line) < total:
        why += " (if a transfer trimmed trailing blanks: options.trimmed_lines: true)"
    return None, why
