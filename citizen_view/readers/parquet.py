"""Parquet files: typed columns kept as their text form (durations in ISO 8601); nested values in mapped fields set
aside.

Binary columns: a column of Parquet's UUID type as the UUID's text (`12345678-1234-...`); other bytes as UTF-8 text
where they are (writers such as Hive and Impala store text as plain binary, without Parquet's string type: Spark's
`binaryAsString`). Bytes that are not UTF-8 are set aside in a mapped field (their hexadecimal form kept as the raw
value) and, in any other column, turn the whole column into hexadecimal text (one form per column)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from citizen_view.readers.common import ISSUES, FileRead, check_header, mapped_columns

if TYPE_CHECKING:
    from citizen_view.contract import SourceConfig


def read_parquet(source: SourceConfig, path: Path, name: str) -> FileRead:
    """A Parquet file; typed columns are kept as their text form (dates as ISO yyyy-mm-dd)."""
    import pyarrow.parquet as pq

    df = pl.read_parquet(path)
    check_header(source, name, df.columns)
    df, set_aside = _nested_and_binary_as_text(df, mapped_columns(source), uuids=_uuid_columns(path))
    df = df.with_columns(_as_text(c, t) for c, t in df.schema.items())
    if set_aside is not None:
        df = df.with_columns(pl.Series(ISSUES, set_aside, dtype=pl.String))
    df = df.with_columns(pl.lit(name).alias("_file"), pl.int_range(1, df.height + 1, dtype=pl.Int64).alias("_line"))
    return FileRead(df, records=pq.ParquetFile(path).metadata.num_rows)  # the file's own row count


def _as_text(column: str, kind: pl.DataType) -> pl.Expr:
    """A typed column's text form: a duration in ISO 8601 (`P1DT5S`; Polars casts no duration to text), anything
    else as Polars casts it."""
    if isinstance(kind, pl.Duration):
        return pl.col(column).dt.to_string("iso")
    return pl.col(column).cast(pl.String)


def _uuid_columns(path: Path) -> set[str]:
    """The top-level columns of Parquet's UUID type (16 bytes; Polars reads them as plain binary)."""
    import pyarrow.parquet as pq

    schema = pq.ParquetFile(path).schema
    columns = (schema.column(i) for i in range(len(schema)))
    return {c.path for c in columns if "." not in c.path and str(c.logical_type) == "UUID"}


def _uuid_text(column: str) -> pl.Expr:
    """16 bytes as a UUID's text: 8-4-4-4-12 lowercase hexadecimal digits."""
    digits = pl.col(column).bin.encode("hex")
    parts = [digits.str.slice(start, length) for start, length in ((0, 8), (8, 4), (12, 4), (16, 4), (20, 12))]
    return pl.concat_str(parts, separator="-").alias(column)


def _nested_and_binary_as_text(
    df: pl.DataFrame, scalars: set[str], *, uuids: set[str]
) -> tuple[pl.DataFrame, list[str | None] | None]:
    """Struct, list and object columns as JSON text, binary columns as text (module docstring); in a mapped field (one
    value expected) each nested value, and each byte string that is not UTF-8, is set aside with its reason, as the
    JSONL reader does (the second item: the rows' set-aside JSON, or None)."""
    per_row: list[list[dict[str, str]]] = [[] for _ in range(df.height)]
    for c, kind in df.schema.items():
        if kind == pl.Binary:
            df = df.with_columns(_uuid_text(c) if c in uuids else _bytes_as_text(df[c], c in scalars, per_row))
            continue
        if not (kind.is_nested() or kind == pl.Object):
            continue
        texts = [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in df[c].to_list()]
        if c in scalars:
            reason = f"a {str(kind).split('(')[0].lower()} value where a single value is expected (column {c})"
            for r, t in enumerate(texts):
                if t is not None:
                    per_row[r].append({"column": c, "raw": t[:1000], "reason": reason})
            texts = [None] * df.height
        df = df.with_columns(pl.Series(c, texts, dtype=pl.String))
    if not any(per_row):
        return df, None
    return df, [json.dumps(i, ensure_ascii=False) if i else None for i in per_row]


def _bytes_as_text(values: pl.Series, mapped: bool, per_row: list[list[dict[str, str]]]) -> pl.Series:
    """A binary column as UTF-8 text. Bytes that are not UTF-8: in a `mapped` field set aside (into `per_row`) with their
    hexadecimal form, the value left empty; in any other column the whole column as hexadecimal text."""
    texts: list[str | None] = []
    not_text: list[int] = []
    for r, v in enumerate(values.to_list()):
        try:
            texts.append(None if v is None else v.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(None)
            not_text.append(r)
    if not_text and not mapped:
        return values.bin.encode("hex")
    for r in not_text:
        raw = values[r].hex()
        reason = f"bytes that are not UTF-8 text (column {values.name}; kept as hexadecimal)"
        per_row[r].append({"column": values.name, "raw": raw[:1000], "reason": reason})
    return pl.Series(values.name, texts, dtype=pl.String)
