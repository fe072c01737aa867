"""Evidence as the Dagster UI shows it best: tables as tables (never dict text), "k of N" samples, charts as links."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

if TYPE_CHECKING:
    from citizen_view.quality.rules import RuleResult

_TYPES = {pl.Int64: "int", pl.Int32: "int", pl.UInt32: "int", pl.Float64: "float", pl.Boolean: "bool"}


def table(
    frame: pl.DataFrame | Sequence[Mapping[str, Any]], *, limit: int = 25, columns: Sequence[str] = ()
) -> MetadataValue:
    """A frame (or a list of rows) as a Dagster table: columns with types, at most `limit` rows. `columns`: the
    columns of an empty list of rows, so an empty table still shows what it would hold."""
    if isinstance(frame, pl.DataFrame):
        df = frame
    elif frame:
        df = pl.DataFrame([{k: _plain(v) for k, v in r.items()} for r in frame], infer_schema_length=None)
    else:
        df = pl.DataFrame(schema={c: pl.String for c in columns})
    df = df.head(limit)
    schema = TableSchema(columns=[TableColumn(name=c, type=_TYPES.get(t, "string")) for c, t in df.schema.items()])
    records = [TableRecord({k: _cell(v) for k, v in row.items()}) for row in df.iter_rows(named=True)]
    return MetadataValue.table(records, schema=schema)


def counts(values: Mapping[Any, Any], *, key: str, value: str = "count") -> MetadataValue:
    """A mapping of counts (rejection reasons, issues per field, citizens per size) as a two-column table."""
    return table([{key: str(k), value: v} for k, v in values.items()], limit=max(len(values), 1), columns=(key, value))


def figures(values: Mapping[str, Any]) -> MetadataValue:
    """The scalar figures of a mapping as a two-column table (mappings go to `counts`, lists as comma-separated text)."""
    rows = [{"figure": k, "value": _plain(v)} for k, v in values.items() if not isinstance(v, Mapping)]
    return table(rows, limit=100, columns=("figure", "value"))


def evidence(result: RuleResult) -> dict[str, MetadataValue | str | int | float]:
    """A rule's outcome as check metadata: its summary, figures, each nested count as a table, and the offending
    rows with "k of N" when the sample is cut short (an empty table with the evidence's columns when there are none)."""
    shown, total = len(result.sample), result.sample_total or 0
    out: dict[str, Any] = {
        "summary": result.summary,
        "figures": figures(result.figures),
        "offending_rows": table(result.sample, columns=result.sample_columns),
        "offending_rows_shown": f"{shown} of {total:,}",
    }
    for name, value in result.figures.items():
        if isinstance(value, Mapping):
            out[name] = counts(value, key="value", value="count")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    return out


def chart_link(path: Path | None) -> MetadataValue:
    """A chart page (inline Vega, opens offline) as a link the UI opens with a click."""
    if path is None:
        return MetadataValue.text("no chart")
    return MetadataValue.url(Path(path).resolve().as_uri())


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return ", ".join(str(v) for v in value)
    return value


def _cell(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
