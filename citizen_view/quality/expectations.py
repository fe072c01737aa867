"""Great Expectations suites: the declarative spec each open-data publication table must meet.

A `TableSpec` says what a published table looks like (columns in order, non-null columns, allowed
values, person counts, compound key, suppression flag); `build_suite` turns it into a GX
`ExpectationSuite` and `validate_tables` runs the suites over polars frames in one ephemeral GX
context, optionally writing a Data Docs site. Any failed expectation makes the table's outcome
`success=False`, which the caller turns into a blocking check that stops publication.

GX 1.24 facts this module relies on (checked by tests/test_expectations.py):
- GX has no polars data source: frames go to pandas with integer columns as nullable `Int64`-style
  dtypes, so a suppressed (null) count keeps its column integer-typed (plain `to_pandas` would make
  it float64, and pyarrow-backed `int64[pyarrow]` matches no GX type name).
- Column-map expectations (between, in_set) ignore nulls; the suppression flag rule therefore pairs
  `in_set` with `not_null`, both restricted to rows whose count is null by a `row_condition`.
- A Checkpoint passes the same `batch_parameters` (hence the same dataframe) to every validation
  definition it holds, so one Checkpoint cannot feed each table its own frame: each table gets its
  own Checkpoint, all in one context and one run id, updating one Data Docs site.
- `get_context(mode="ephemeral")` without a config adds a `local_site` in a fresh temp directory;
  a project config is passed instead so the only docs site is the one asked for.
- GX is imported inside functions: importing it takes seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd
    import polars as pl

SUPPRESSED = "suppressed"
DOCS_SITE = "citizen_view"
INTEGER_TYPES = (
    "Int8Dtype",
    "Int16Dtype",
    "Int32Dtype",
    "Int64Dtype",
    "UInt8Dtype",
    "UInt16Dtype",
    "UInt32Dtype",
    "UInt64Dtype",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
)
_SAMPLE_VALUES = 5
_MAX_OBSERVED_CHARS = 300


@dataclass(frozen=True)
class TableSpec:
    """What a published table must look like: its columns in order, and the rules on them."""

    name: str
    columns: tuple[str, ...]
    not_null: tuple[str, ...] = ()
    value_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    count_columns: tuple[str, ...] = ()
    unique_together: tuple[str, ...] = ()
    flag_column: str | None = None


@dataclass
class SuiteOutcome:
    """How one table fared against its suite: overall success and each failed expectation."""

    table: str
    success: bool
    evaluated: int
    failed: list[dict] = field(default_factory=list)


def build_suite(spec: TableSpec, *, min_cell: int, allow_zero: bool = False) -> gx.ExpectationSuite:
    """The GX suite for a table spec; `allow_zero` exempts published zero counts from the minimum cell."""
    import great_expectations as gx
    from great_expectations.expectations.row_conditions import Column

    ex = gx.expectations
    suite = gx.ExpectationSuite(name=spec.name)
    add = suite.add_expectation
    add(ex.ExpectTableColumnsToMatchOrderedList(column_list=list(spec.columns)))
    for column in spec.not_null:
        add(ex.ExpectColumnValuesToNotBeNull(column=column))
    for column, allowed in spec.value_sets.items():
        add(ex.ExpectColumnValuesToBeInSet(column=column, value_set=list(allowed)))
    for column in spec.count_columns:
        add(ex.ExpectColumnValuesToBeInTypeList(column=column, type_list=list(INTEGER_TYPES)))
        if allow_zero:
            published = Column(column).is_not_null() & (Column(column) != 0)
            add(ex.ExpectColumnValuesToBeBetween(column=column, min_value=min_cell, row_condition=published))
        else:
            add(ex.ExpectColumnValuesToBeBetween(column=column, min_value=min_cell))
        if spec.flag_column:
            hidden = Column(column).is_null()
            add(ex.ExpectColumnValuesToNotBeNull(column=spec.flag_column, row_condition=hidden))
            add(ex.ExpectColumnValuesToBeInSet(column=spec.flag_column, value_set=[SUPPRESSED], row_condition=hidden))
    if len(spec.unique_together) == 1:
        add(ex.ExpectColumnValuesToBeUnique(column=spec.unique_together[0]))
    elif spec.unique_together:
        add(ex.ExpectCompoundColumnsToBeUnique(column_list=list(spec.unique_together)))
    return suite


def validate_tables(
    tables: dict[str, pl.DataFrame],
    specs: dict[str, TableSpec],
    *,
    min_cell: int,
    allow_zero: bool = False,
    data_docs_dir: Path | None = None,
) -> dict[str, SuiteOutcome]:
    """Validate each table against its spec in one ephemeral GX context; optionally write Data Docs."""
    missing = sorted(set(tables) - set(specs))
    if missing:
        raise KeyError(f"no TableSpec for table(s): {', '.join(missing)}")
    if not tables:
        return {}
    _quiet_gx_logging()
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    context = _ephemeral_context(data_docs_dir)
    source = context.data_sources.add_pandas("publication")
    actions = [gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])] if data_docs_dir else []
    run_id = RunIdentifier(run_name="publication")
    outcomes: dict[str, SuiteOutcome] = {}
    for name, frame in tables.items():
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
        suite = context.suites.add(build_suite(specs[name], min_cell=min_cell, allow_zero=allow_zero))
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"publish_{name}",
                validation_definitions=[definition],
                actions=actions,
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": _SAMPLE_VALUES},
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": to_pandas(frame)}, run_id=run_id)
        (suite_result,) = result.run_results.values()
        outcomes[name] = _outcome(name, suite_result)
    return outcomes


def to_pandas(frame: pl.DataFrame) -> pd.DataFrame:
    """A polars frame as pandas with nullable integer/boolean dtypes, so null counts stay integers."""
    import pandas as pd
    import pyarrow as pa

    nullable = {
        pa.int8(): pd.Int8Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.uint8(): pd.UInt8Dtype(),
        pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(),
        pa.uint64(): pd.UInt64Dtype(),
        pa.bool_(): pd.BooleanDtype(),
    }
    return frame.to_pandas(types_mapper=nullable.get)


def _ephemeral_context(data_docs_dir: Path | None) -> Any:
    """An in-memory GX context without progress bars whose only Data Docs site (if any) is data_docs_dir."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if data_docs_dir is not None:
        Path(data_docs_dir).mkdir(parents=True, exist_ok=True)
        sites[DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(data_docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _quiet_gx_logging() -> None:
    """Keep GX's info chatter out of a CLI unless someone configured its logger explicitly."""
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        gx_logger.setLevel(logging.WARNING)


def _outcome(table: str, suite_result: Any) -> SuiteOutcome:
    """A SuiteOutcome from a GX suite validation result."""
    failed = [_failure(r) for r in suite_result.results if not r.success]
    evaluated = int(suite_result.statistics.get("evaluated_expectations", len(suite_result.results)))
    return SuiteOutcome(table=table, success=bool(suite_result.success), evaluated=evaluated, failed=failed)


def _failure(result: Any) -> dict:
    """One failed expectation as {expectation, column, observed}."""
    config = result.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column")
    if column is None and kwargs.get("column_list") and not config.type.startswith("expect_table_"):
        column = ", ".join(kwargs["column_list"])
    return {"expectation": config.type, "column": column, "observed": _observed(result, kwargs.get("row_condition"))}


def _observed(result: Any, row_condition: Any) -> str:
    """A short human summary of why an expectation failed."""
    info = result.exception_info or {}
    if info.get("raised_exception"):
        text = f"error: {info.get('exception_message')}"
    else:
        res = result.result or {}
        if "unexpected_count" in res:
            sample = ", ".join(_short(v) for v in (res.get("partial_unexpected_list") or [])[:_SAMPLE_VALUES])
            text = f"{res['unexpected_count']} unexpected of {res.get('element_count', '?')}"
            if sample:
                text += f" (e.g. {sample})"
        elif "observed_value" in res:
            text = f"observed {_short(res['observed_value'])}"
            mismatched = (res.get("details") or {}).get("mismatched")
            if mismatched:
                text += f"; mismatched {mismatched}"
        else:
            text = "failed"
    if row_condition:
        text = f"where {_condition_text(row_condition)}: {text}"
    return text[:_MAX_OBSERVED_CHARS]


def _condition_text(condition: Any) -> str:
    """A row condition as readable text (GX serialises conditions as nested dicts)."""
    if isinstance(condition, dict):
        kind = condition.get("type")
        if kind == "nullity":
            return f"{condition['column']['name']} IS {'NULL' if condition['is_null'] else 'NOT NULL'}"
        if kind == "comparison":
            return f"{condition['column']['name']} {condition['operator']} {condition['parameter']!r}"
        if kind in ("and", "or"):
            return f" {kind.upper()} ".join(_condition_text(c) for c in condition.get("conditions", []))
    return str(condition)


def _short(value: Any) -> str:
    """A value shown briefly (numpy scalars as plain Python values)."""
    item = getattr(value, "item", None)
    if callable(item):
        try:
            value = item()
        except (TypeError, ValueError):
            pass
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
