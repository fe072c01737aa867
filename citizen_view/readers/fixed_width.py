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
    """Mainframe-style fixed-width records, one per line; a line of the wrong length is rejected."""
    encoding = str(source.option("encoding"))
    widths: dict[str, int] = dict(source.option("widths"))
    check_header(source, name, list(widths))
    total = sum(widths.values())
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
        if len(line) != total:
            rejects.append(
                Reject(name, i + 1, f"wrong field count: record is {len(line)} characters, expected {total}", line)
            )
            continue
        keep_text.append(line)
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
