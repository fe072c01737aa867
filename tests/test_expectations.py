"""Great Expectations suites for publication tables: what passes, what fails, and the Data Docs site."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from citizen_view.quality.expectations import TableSpec, build_suite, to_pandas, validate_tables

MIN_CELL = 10
SPEC = TableSpec(
    name="population_by_area",
    columns=("area", "sex", "count", "flag"),
    not_null=("area", "sex", "flag"),
    value_sets={"sex": ("F", "M", "Total")},
    count_columns=("count",),
    unique_together=("area", "sex"),
    flag_column="flag",
)


def table(**overrides) -> pl.DataFrame:
    """A clean population_by_area table, with columns replaced by `overrides`."""
    data = {
        "area": ["North", "North", "North", "South", "South", "South"],
        "sex": ["F", "M", "Total", "F", "M", "Total"],
        "count": [12, 15, 27, None, None, 40],
        "flag": ["", "", "", "suppressed", "suppressed", ""],
    }
    data.update(overrides)
    return pl.DataFrame(data, schema_overrides={"count": pl.Int64})


def run(frame: pl.DataFrame, spec: TableSpec = SPEC, **kwargs):
    return validate_tables({spec.name: frame}, {spec.name: spec}, min_cell=MIN_CELL, **kwargs)[spec.name]


def failed_types(outcome) -> set[tuple[str, str | None]]:
    return {(f["expectation"], f["column"]) for f in outcome.failed}


def test_clean_table_passes_and_writes_data_docs(tmp_path):
    docs = tmp_path / "docs"
    outcome = run(table(), data_docs_dir=docs)
    assert outcome.success, outcome.failed
    assert outcome.table == "population_by_area"
    assert outcome.failed == []
    assert outcome.evaluated == len(build_suite(SPEC, min_cell=MIN_CELL).expectations)
    index = docs / "index.html"
    assert index.is_file()
    assert "population_by_area" in index.read_text(encoding="utf-8")
    assert list((docs / "validations").rglob("*.html"))


def test_count_below_min_cell_fails_between():
    outcome = run(table(count=[12, 3, 27, None, None, 40]))
    assert not outcome.success
    assert ("expect_column_values_to_be_between", "count") in failed_types(outcome)
    (between,) = [f for f in outcome.failed if f["expectation"] == "expect_column_values_to_be_between"]
    assert "1 unexpected" in between["observed"] and "3" in between["observed"]


def test_suppressed_null_count_with_flag_passes():
    outcome = run(table(count=[None, None, None, None, None, None], flag=["suppressed"] * 6))
    assert outcome.success, outcome.failed


@pytest.mark.parametrize("flag", ["", "hidden"])
def test_null_count_without_suppressed_flag_fails(flag):
    outcome = run(table(flag=["", "", "", flag, "suppressed", ""]))
    assert not outcome.success
    (failure,) = outcome.failed
    assert (failure["expectation"], failure["column"]) == ("expect_column_values_to_be_in_set", "flag")
    assert failure["observed"].startswith("where count IS NULL: 1 unexpected")


def test_null_count_with_null_flag_fails():
    outcome = run(table(flag=["", "", "", None, "suppressed", ""]))
    assert not outcome.success
    conditional = [f for f in outcome.failed if f["observed"].startswith("where count IS NULL")]
    assert [(f["expectation"], f["column"]) for f in conditional] == [("expect_column_values_to_not_be_null", "flag")]


def test_extra_column_fails_ordered_column_list():
    outcome = run(table().with_columns(pl.lit("123456782").alias("national_id")))
    assert not outcome.success
    assert ("expect_table_columns_to_match_ordered_list", None) in failed_types(outcome)


def test_reordered_columns_fail():
    outcome = run(table().select("sex", "area", "count", "flag"))
    assert ("expect_table_columns_to_match_ordered_list", None) in failed_types(outcome)


def test_value_outside_value_set_fails():
    outcome = run(table(sex=["F", "M", "Total", "F", "X", "Total"]))
    assert not outcome.success
    (failure,) = outcome.failed
    assert failure["expectation"] == "expect_column_values_to_be_in_set"
    assert failure["column"] == "sex" and "'X'" in failure["observed"]


def test_null_in_not_null_column_fails():
    outcome = run(table(area=["North", None, "North", "South", "South", "South"]))
    assert ("expect_column_values_to_not_be_null", "area") in failed_types(outcome)


def test_duplicate_key_fails():
    outcome = run(table(sex=["F", "F", "Total", "F", "M", "Total"]))
    assert ("expect_compound_columns_to_be_unique", "area, sex") in failed_types(outcome)


def test_single_column_key_uses_unique_values():
    spec = TableSpec(name="areas", columns=("area", "count"), unique_together=("area",), count_columns=("count",))
    outcome = run(pl.DataFrame({"area": ["A", "A"], "count": [10, 11]}), spec)
    assert failed_types(outcome) == {("expect_column_values_to_be_unique", "area")}


def test_float_count_fails_integer_type():
    outcome = run(table().with_columns(pl.col("count").cast(pl.Float64)))
    assert failed_types(outcome) == {("expect_column_values_to_be_in_type_list", "count")}


def test_null_counts_stay_integer_in_pandas():
    frame = to_pandas(table())
    assert str(frame["count"].dtype) == "Int64"
    assert frame["count"].isna().sum() == 2


def test_zero_count_needs_allow_zero():
    zero = table(count=[12, 0, 27, None, None, 40])
    assert ("expect_column_values_to_be_between", "count") in failed_types(run(zero))
    assert run(zero, allow_zero=True).success
    assert not run(table(count=[12, 3, 27, None, None, 40]), allow_zero=True).success
    assert not run(table(count=[12, -1, 27, None, None, 40]), allow_zero=True).success


def test_missing_count_column_fails_instead_of_raising():
    outcome = run(table().drop("count"))
    assert not outcome.success
    assert ("expect_column_values_to_be_between", "count") in failed_types(outcome)


def test_each_table_is_validated_against_its_own_frame(tmp_path):
    areas = TableSpec(name="areas", columns=("area",), value_sets={"area": ("North", "South")})
    outcomes = validate_tables(
        {"population_by_area": table(), "areas": pl.DataFrame({"area": ["North", "West"]})},
        {"population_by_area": SPEC, "areas": areas},
        min_cell=MIN_CELL,
        data_docs_dir=tmp_path,
    )
    assert outcomes["population_by_area"].success
    assert not outcomes["areas"].success
    assert failed_types(outcomes["areas"]) == {("expect_column_values_to_be_in_set", "area")}
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "population_by_area" in index and "areas" in index


def test_table_without_spec_is_an_error():
    with pytest.raises(KeyError, match="unknown"):
        validate_tables({"unknown": table()}, {}, min_cell=MIN_CELL)


def test_validation_is_quiet(capfd):
    run(table())
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_importing_module_does_not_import_gx():
    code = "import sys, citizen_view.quality.expectations; print('great_expectations' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.stdout.strip() == "False"
