"""Readers for legacy extract formats: every record either parses into string columns or is rejected with a reason.

Records are split the way each format defines them, and never by anything else: text formats by
line feeds only (`\n`, with `\r\n` accepted), so a form feed, a byte 0x85 or a U+2028 inside a
value stays inside its record; a CSV record may continue over the next lines only inside a quoted
value, and only for `max_record_lines` lines: a quote left open longer is a fault of that one line,
which is rejected, and reading resumes on the next line. Each reader accounts for every line of its
file (header, blank, part of a record) and counts the file's records itself; `FileRead.records` is
that count and must equal rows parsed + rows rejected, or the source stops (`SourceError`).
Each parsed row has its values as text plus `_file` and `_line` (the 1-based line or spreadsheet
row where the record starts); each rejected one keeps its raw text and the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from citizen_view.contract import SourceError
from citizen_view.readers.common import INVISIBLE, ISSUES, FileRead, Reject, internal, mapped_columns, raw_text
from citizen_view.readers.delimited import read_csv
from citizen_view.readers.fixed_width import read_fixed_width
from citizen_view.readers.json_lines import read_jsonl
from citizen_view.readers.parquet import read_parquet
from citizen_view.readers.spreadsheet import read_xlsx

if TYPE_CHECKING:
    from pathlib import Path

    from citizen_view.contract import SourceConfig


def read_file(source: SourceConfig, path: Path, *, display_name: str) -> FileRead:
    """Read one extract file of a source in its declared format; check every record is accounted for.

    Record ids are normalised (NFC, without invisible characters), so two ids that look the same are the same.
    """
    reader = _READERS[source.format]
    try:
        got = reader(source, path, display_name)
        rid = source.record_id
        if rid and rid in got.rows.columns:
            got.rows = got.rows.with_columns(pl.col(rid).str.replace_all(INVISIBLE, "").str.normalize("NFC"))
    except SourceError:
        raise
    except Exception as exc:  # any reader's failure (polars, calamine's CalamineError, OS) stops this source alone
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SourceError(
            f"source {source.name!r}: file {display_name!r} cannot be read as {source.format}: {first_line}"
        ) from exc
    if got.records != got.rows.height + len(got.rejects):
        raise SourceError(
            f"source {source.name!r}: file {display_name!r} holds {got.records:,} records but the reader accounted for "
            f"{got.rows.height:,} parsed + {len(got.rejects):,} rejected; nothing was loaded"
        )
    return got


_READERS = {
    "csv": read_csv,
    "fixed_width": read_fixed_width,
    "jsonl": read_jsonl,
    "xlsx": read_xlsx,
    "parquet": read_parquet,
}


__all__ = [
    "ISSUES",
    "FileRead",
    "Reject",
    "internal",
    "mapped_columns",
    "raw_text",
    "read_csv",
    "read_file",
    "read_fixed_width",
    "read_jsonl",
    "read_parquet",
    "read_xlsx",
]
