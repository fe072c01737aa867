"""Disclosure control: small cells hidden, no hidden cell derivable from its totals, rounding applied."""

from __future__ import annotations

import polars as pl

from citizen_view.contract import DisclosureConfig
from citizen_view.disclosure import cells_below_minimum, protect, recoverable_cells

RULES = DisclosureConfig(min_cell=10)


def _table(rows):
    return pl.DataFrame(rows, schema=["area", "sex", "count"], orient="row")


def _with_margins(cells: dict[tuple[str, str], int]) -> pl.DataFrame:
    rows = [(a, s, n) for (a, s), n in cells.items()]
    areas = sorted({a for a, _ in cells})
    sexes = sorted({s for _, s in cells})
    rows += [(a, "Total", sum(n for (a2, _), n in cells.items() if a2 == a)) for a in areas]
    rows += [("Total", s, sum(n for (_, s2), n in cells.items() if s2 == s)) for s in sexes]
    rows += [("Total", "Total", sum(cells.values()))]
    return _table(rows)


def test_a_small_cell_and_a_complement_are_hidden_in_every_line():
    table = _with_margins({("A", "F"): 4, ("A", "M"): 50, ("B", "F"): 30, ("B", "M"): 40, ("C", "F"): 25, ("C", "M"): 60})
    result = protect(table, dims=["area", "sex"], margins=["area", "sex"], rules=RULES)
    out = result.table
    assert result.primary == 1 and result.secondary >= 3
    hidden = out.filter(pl.col("count").is_null())
    assert ("A", "F") in set(zip(hidden["area"], hidden["sex"]))
    assert set(hidden["flag"]) == {"suppressed"}
    assert cells_below_minimum(out, RULES).height == 0
    assert recoverable_cells(out, dims=["area", "sex"], margins=["area", "sex"]).height == 0


def test_a_lone_suppressed_cell_is_found_by_the_gate():
    table = _with_margins({("A", "F"): 40, ("A", "M"): 50, ("B", "F"): 30, ("B", "M"): 40})
    leaky = table.with_columns(pl.when((pl.col("area") == "A") & (pl.col("sex") == "F")).then(None).otherwise(pl.col("count")).alias("count"))
    lonely = recoverable_cells(leaky, dims=["area", "sex"], margins=["area", "sex"])
    assert lonely.select("area", "sex").rows() == [("A", "F")]


def test_unprotected_small_cells_are_found_and_zeros_follow_the_rule():
    table = _table([("A", "F", 3), ("A", "M", 0), ("B", "F", 12)])
    assert cells_below_minimum(table, RULES).select("area", "count").rows() == [("A", 3)]
    assert cells_below_minimum(table, DisclosureConfig(min_cell=10, suppress_zeros=True)).height == 2


def test_rounding_to_base_five_keeps_suppression():
    table = _with_margins({("A", "F"): 12, ("A", "M"): 13, ("B", "F"): 27, ("B", "M"): 2})
    out = protect(table, dims=["area", "sex"], margins=["area", "sex"], rules=DisclosureConfig(min_cell=10, round_to=5)).table
    published = out.get_column("count").drop_nulls().to_list()
    assert all(v % 5 == 0 for v in published)
    assert out.filter((pl.col("area") == "B") & (pl.col("sex") == "M"))["count"][0] is None
    assert recoverable_cells(out, dims=["area", "sex"], margins=["area", "sex"]).height == 0
