"""Parquet files: typed columns kept as their text form (durations in ISO 8601); nested values in mapped fields set
aside."""

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
    df, set_aside = _nested_as_text(df, mapped_columns(source))
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


def _nested_as_text(df: pl.DataFrame, scalars: set[str]) -> tuple[pl.DataFrame, list[str | None] | None]:
    """Struct, list and binary columns as JSON text; in a mapped field (one value expected) each such value is set
    aside with its reason, as the JSONL reader does (the second item: the rows' set-aside JSON, or None)."""
    nested = [c for c, t in df.schema.items() if t.is_nested() or t in (pl.Binary, pl.Object)]
    per_row: list[list[dict[str, str]]] = [[] for _ in range(df.height)]
    for c in nested:
        texts = [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in df[c].to_list()]
        if c in scalars:
            kind = str(df.schema[c]).split("(")[0].lower()
            reason = f"a {kind} value where a single value is expected (column {c})"
            for r, t in enumerate(texts):
                if t is not None:
                    per_row[r].append({"column": c, "raw": t[:1000], "reason": reason})
            texts = [None] * df.height
        df = df.with_columns(pl.Series(c, texts, dtype=pl.String))
    if not any(per_row):
        return df, None
    return df, [json.dumps(i, ensure_ascii=False) if i else None for i in per_row]
