"""Disclosure control: small cells hidden, no hidden cell derivable from its totals, rounding applied."""

from __future__ import annotations

import polars as pl

from citizen_view.contract import DisclosureConfig
from citizen_view.disclosure import cells_below_minimum, derived_cells, pinned, protect, recoverable_cells

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
    table = _with_margins(
        {("A", "F"): 4, ("A", "M"): 50, ("B", "F"): 30, ("B", "M"): 40, ("C", "F"): 25, ("C", "M"): 60}
    )
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
    leaky = table.with_columns(
        pl.when((pl.col("area") == "A") & (pl.col("sex") == "F")).then(None).otherwise(pl.col("count")).alias("count")
    )
    lonely = recoverable_cells(leaky, dims=["area", "sex"], margins=["area", "sex"])
    assert lonely.select("area", "sex").rows() == [("A", "F")]


def test_cells_pinned_by_several_lines_together_are_found_though_no_line_holds_one_alone():
    """Red team (second pass): every line held two hidden cells, yet the lines together, and knowing that a hidden
    cell holds somebody where zeros are published, gave cells away (a small town's one resident: her age band and
    sex). Here A's two hidden cells add up to 2, so each is 1; the gate's linear programme finds them."""
    table = _with_margins({("A", "F"): 1, ("A", "M"): 1, ("B", "F"): 30, ("B", "M"): 40})
    hidden = {("A", "F"), ("A", "M"), ("B", "F"), ("B", "M")}
    leaky = table.with_columns(
        pl.when(
            pl.struct("area", "sex").map_elements(lambda r: (r["area"], r["sex"]) in hidden, return_dtype=pl.Boolean)
        )
        .then(None)
        .otherwise(pl.col("count"))
        .alias("count")
    )
    assert recoverable_cells(leaky, dims=["area", "sex"], margins=["area", "sex"]).height == 0  # no line alone
    derived = derived_cells(leaky, dims=["area", "sex"], margins=["area", "sex"])
    assert sorted(derived.select("area", "sex", "low", "high").rows()) == [
        ("A", "F", 1.0, 1.0),
        ("A", "M", 1.0, 1.0),
        ("B", "F", 30.0, 30.0),
        ("B", "M", 40.0, 40.0),
    ]
    # a reader who cannot rule out zeros (zeros suppressed too) pins nothing: each cell could be 0, 1 or 2 ...
    assert derived_cells(leaky, dims=["area", "sex"], margins=["area", "sex"], zeros_published=False).height == 0
    # ... and protect() hides until nothing is pinned, either way
    for rules in (DisclosureConfig(min_cell=3), DisclosureConfig(min_cell=3, suppress_zeros=True)):
        out = protect(table, dims=["area", "sex"], margins=["area", "sex"], rules=rules).table
        assert out.get_column("count").null_count() > 4
        assert (
            derived_cells(
                out, dims=["area", "sex"], margins=["area", "sex"], zeros_published=not rules.suppress_zeros
            ).height
            == 0
        )
        assert recoverable_cells(out, dims=["area", "sex"], margins=["area", "sex"]).height == 0


def test_a_count_is_pinned_only_when_one_whole_number_fits():
    assert pinned(1.0, 1.0) and pinned(0.6, 1.4) and pinned(2.0, 2.0000001)
    assert not pinned(1.0, 2.0) and not pinned(0.0, 9.0) and not pinned(3.0, float("inf"))  # nothing caps it


def test_unprotected_small_cells_are_found_and_zeros_follow_the_rule():
    table = _table([("A", "F", 3), ("A", "M", 0), ("B", "F", 12)])
    assert cells_below_minimum(table, RULES).select("area", "count").rows() == [("A", 3)]
    assert cells_below_minimum(table, DisclosureConfig(min_cell=10, suppress_zeros=True)).height == 2


def test_rounding_to_base_five_keeps_suppression():
    table = _with_margins({("A", "F"): 12, ("A", "M"): 13, ("B", "F"): 27, ("B", "M"): 2})
    out = protect(
        table, dims=["area", "sex"], margins=["area", "sex"], rules=DisclosureConfig(min_cell=10, round_to=5)
    ).table
    published = out.get_column("count").drop_nulls().to_list()
    assert all(v % 5 == 0 for v in published)
    assert out.filter((pl.col("area") == "B") & (pl.col("sex") == "M"))["count"][0] is None
    assert recoverable_cells(out, dims=["area", "sex"], margins=["area", "sex"]).height == 0


def _area_age_sex(cells: dict[tuple[str, str, str], int], province: str) -> pl.DataFrame:
    """Municipality x age x sex with every margin, and the province as the municipalities' parent."""
    areas, ages = sorted({k[0] for k in cells}), sorted({k[1] for k in cells})
    rows = [
        (
            area,
            age,
            sex,
            sum(
                n
                for (a, g, s), n in cells.items()
                if area in (a, province) and age in (g, "Total") and sex in (s, "Total")
            ),
        )
        for area in [*areas, province]
        for age in [*ages, "Total"]
        for sex in ("F", "M", "Total")
    ]
    return pl.DataFrame(rows, schema=["area_code", "age", "sex", "count"], orient="row")


def test_a_small_municipality_takes_one_neighbour_down_with_it_not_all_of_them():
    """A tiny municipality's small cells need partners in its province's lines. Hiding, in one neighbour, the cells
    that mirror the tiny one's closes every line; the smallest cell in each line instead spreads over both
    neighbours (the old rule hid 1,387 people here, this one 830)."""
    big = {"0-17": (141, 139), "18-29": (139, 140), "30-64": (278, 280), "65+": (141, 136)}
    other = {"0-17": (135, 132), "18-29": (133, 138), "30-64": (267, 271), "65+": (132, 137)}
    tiny = {"0-17": (3, 7), "18-29": (2, 1), "30-64": (10, 11), "65+": (5, 5)}
    cells = {
        (area, age, sex): n
        for area, by_age in (("GM1", big), ("GM2", other), ("GM3", tiny))
        for age, pair in by_age.items()
        for sex, n in zip("FM", pair)
    }
    table = _area_age_sex(cells, "PV1")
    dims, hierarchies = ["area_code", "age", "sex"], {"area_code": {"GM1": "PV1", "GM2": "PV1", "GM3": "PV1"}}
    out = protect(table, dims=dims, margins=dims, rules=RULES, hierarchies=hierarchies).table
    hidden = out.filter(pl.col("flag") == "suppressed")
    assert recoverable_cells(out, dims=dims, margins=dims, hierarchies=hierarchies).height == 0
    assert set(hidden["area_code"]) == {"GM2", "GM3"}  # GM1 is published whole
    pattern = {a: set(hidden.filter(pl.col("area_code") == a).select("age", "sex").rows()) for a in ("GM2", "GM3")}
    assert pattern["GM2"] == pattern["GM3"]
