"""Evidence as the Dagster UI shows it best: tables as tables, not JSON behind a link."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

_TYPES = {pl.Int64: "int", pl.Int32: "int", pl.UInt32: "int", pl.Float64: "float", pl.Boolean: "bool"}


def table(frame: pl.DataFrame | Sequence[Mapping[str, Any]], *, limit: int = 25) -> MetadataValue:
    """A frame (or a list of rows) as a Dagster table: columns with types, at most `limit` rows."""
    df = frame if isinstance(frame, pl.DataFrame) else pl.DataFrame([{k: _plain(v) for k, v in r.items()} for r in frame])
    df = df.head(limit)
    schema = TableSchema(columns=[TableColumn(name=c, type=_TYPES.get(t, "string")) for c, t in df.schema.items()])
    records = [TableRecord({k: _cell(v) for k, v in row.items()}) for row in df.iter_rows(named=True)]
    return MetadataValue.table(records, schema=schema)


def figures(values: Mapping[str, Any]) -> MetadataValue:
    """A flat mapping of figures as a two-column table (nested values as text)."""
    return table([{"figure": k, "value": _plain(v)} for k, v in values.items()], limit=100)


def _plain(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return str(value)
    return value


def _cell(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
