"""What every reader gives (FileRead, Reject), the column names ingest keeps for itself, and the checks the readers
share."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
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
    """What one extract file gave: parsed rows (text columns + `_file`, `_line`), rejected rows, and its record count."""

    rows: pl.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    records: int | None = None  # records in the file, counted by the reader's own accounting (None: = rows + rejects)

    def __post_init__(self) -> None:
        if self.records is None:
            self.records = self.rows.height + len(self.rejects)


# A hidden column of parsed rows: values a reader set aside (JSON list of {column, raw, reason}), recorded in
# field_issues by canonical.py.
ISSUES = "_issues"


# The names of the columns ingest adds to parsed rows (where a row came from, what was set aside, its place while
# it is made canonical). A file's own column may not take one: its values would be overwritten. Any other name,
# `_id` of a document store's export among them, is the file's data like every other column.
_INTERNAL = frozenset({"_file", "_line", ISSUES, "_row", "_rid", "_reason", "_pos", "_series", "_extracted_at"})


_INTERNAL_PREFIXES = ("_first_", "_tidy", "_kept_")


def internal(column: str) -> bool:
    """Whether `column` is one ingest adds to parsed rows (see _INTERNAL)."""
    return column in _INTERNAL or column.startswith(_INTERNAL_PREFIXES)


def reserved_in(columns: Iterable[str]) -> list[str]:
    return sorted({c for c in columns if internal(c)})


def reserved_message(columns: list[str]) -> str:
    return f"column name(s) {columns} are kept for ingest's own use (which file and line a row came from)"


# Characters nobody sees: a byte-order mark, zero-width spaces and joiners, the word joiner, a soft hyphen.
INVISIBLE = "[\ufeff\u200b\u200c\u200d\u2060\u00ad]"


def frame_of(columns: list[str], values: list[list[str | None]], files: str, lines: list[int]) -> pl.DataFrame:
    data: dict[str, list] = {c: v for c, v in zip(columns, values)}
    df = pl.DataFrame(data, schema={c: pl.String for c in columns}) if columns else pl.DataFrame()
    return df.with_columns(pl.lit(files).alias("_file"), pl.Series("_line", lines, dtype=pl.Int64))


def check_accounting(name: str, total: int, **parts: int) -> None:
    """Every line of the file is the header, blank, undecodable or part of exactly one record."""
    if sum(parts.values()) != total:
        detail = ", ".join(f"{k} {v:,}" for k, v in parts.items())
        raise SourceError(f"file {name!r}: {total:,} lines but {detail} account for {sum(parts.values()):,}")


def mapped_columns(source: SourceConfig) -> set[str]:
    """Columns the contract maps to canonical fields or the record id: each holds one value on one line."""
    return {m.column for m in source.fields.values()} | ({source.record_id} if source.record_id else set())


def check_header(source: SourceConfig, name: str, header: list[str]) -> None:
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise SourceError(f"source {source.name!r}: file {name!r} repeats column name(s) {dupes} in its header")
    if reserved := reserved_in(header):
        raise SourceError(
            f"source {source.name!r}: file {name!r}: {reserved_message(reserved)}; rename them in the extract; "
            f"nothing was loaded"
        )


def raw_text(row: dict) -> str:
    """A parsed row as JSON text, for rejected_records.raw when the row was rejected after parsing."""
    return json.dumps({k: v for k, v in row.items() if not internal(k)}, ensure_ascii=False)


def too_big(values: list[str], header: list[str], max_bytes: int) -> str | None:
    for col, value in zip(header, values):
        if value is not None and len(value) > max_bytes // 4 and len(value.encode("utf-8")) > max_bytes:
            return f"field too big: column {col!r} holds {len(value.encode('utf-8')):,} bytes (max_field_bytes {max_bytes:,})"
    return None
